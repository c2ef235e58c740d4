package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// carsSpec is a pipeline of Spark ML stages over a CSV with a header:
// two indexed and one-hot encoded columns (nulls kept), an imputed
// column, an assembler that drops rows with a null weight, and a scaler
// fitted in a second pass.
const carsSpec = `{
  "columns": [{"name": "make", "type": "string"}, {"name": "fuel", "type": "string"},
              {"name": "hp", "type": "double"}, {"name": "weight", "type": "double"},
              {"name": "price", "type": "double"}],
  "header": true,
  "stages": [
    {"stage": "StringIndexer", "inputCols": ["make", "fuel"], "outputCols": ["make_idx", "fuel_idx"], "handleInvalid": "keep"},
    {"stage": "OneHotEncoder", "inputCols": ["make_idx", "fuel_idx"], "outputCols": ["make_vec", "fuel_vec"]},
    {"stage": "Imputer", "inputCols": ["hp"], "outputCols": ["hp_imp"], "strategy": "mean"},
    {"stage": "VectorAssembler", "inputCols": ["make_vec", "fuel_vec", "hp_imp", "weight"], "outputCol": "raw", "handleInvalid": "skip"},
    {"stage": "StandardScaler", "inputCol": "raw", "outputCol": "features", "withMean": true, "withStd": true}
  ],
  "label": "price",
  "features": "features",
  "splits": [{"name": "train", "weight": 0.8}, {"name": "validation", "weight": 0.2}]
}`

// carsRow is one generated row; nil fields are empty in the CSV.
type carsRow struct {
	make, fuel        string
	hp, weight, price *float64
}

var (
	carsOnce sync.Once
	carsDir  string
	carsRows []carsRow
)

// carsData writes 20,000 generated rows with nulls (empty and "" fields),
// NaN and Inf spellings, once; it returns the folder with cars.csv and
// cars.spec.json.
func carsData(t *testing.T) string {
	t.Helper()
	carsOnce.Do(func() {
		carsDir = filepath.Join(binDir, "cars")
		os.MkdirAll(carsDir, 0o755)
		rng := rand.New(rand.NewPCG(3, 4))
		makes := []string{"toyota", "honda", "bmw", "ford", "kia", ""}
		fuels := []string{"gas", "diesel", `""`, "electric"}
		var b strings.Builder
		b.WriteString("make,fuel,hp,weight,price\n")
		num := func(p float64, lo, hi float64, digits int) (*float64, string) {
			if rng.Float64() < p {
				return nil, ""
			}
			v := lo + rng.Float64()*(hi-lo)
			s := strconv.FormatFloat(v, 'f', digits, 64)
			v, _ = strconv.ParseFloat(s, 64)
			return &v, s
		}
		for i := 0; i < 20000; i++ {
			r := carsRow{make: makes[rng.IntN(len(makes))], fuel: fuels[rng.IntN(len(fuels))]}
			var hp, w, p string
			r.hp, hp = num(0.1, 40, 400, 3)
			if i%97 == 5 {
				hp = "NaN" // imputed like a null, left out of the fit
			}
			r.weight, w = num(0.02, 700, 3000, 2)
			r.price, p = num(0.01, 3, 90, 2)
			fmt.Fprintf(&b, "%s,%s,%s,%s,%s\n", r.make, r.fuel, hp, w, p)
			carsRows = append(carsRows, r)
		}
		os.WriteFile(filepath.Join(carsDir, "cars.csv"), []byte(b.String()), 0o644)
		os.WriteFile(filepath.Join(carsDir, "cars.spec.json"), []byte(carsSpec), 0o644)
	})
	return carsDir
}

// sameRows fails unless the parts of each split folder of got, put
// together in order, are the bytes of want's (split sizes differ, so the
// parts do).
func sameRows(t *testing.T, want, got string) {
	t.Helper()
	for _, split := range []string{"train", "validation", "_rejected"} {
		w, g := joinedParts(t, want, split), joinedParts(t, got, split)
		if w != g || split == "train" && len(w) == 0 {
			t.Errorf("%s: %d bytes, want %d, and they differ", split, len(g), len(w))
		}
	}
}

func joinedParts(t *testing.T, dir, split string) string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, split, "part-*"))
	var b strings.Builder
	for _, n := range names { // Glob sorts
		data, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	if split != "_rejected" {
		return b.String()
	}
	// Rows a stage drops are rejected when their batch is transformed,
	// rows that do not decode as they are read: their order follows the
	// batches, which follow the split size. Compare them sorted, each
	// part's header line once.
	lines := strings.Split(b.String(), "\n")
	slices.Sort(lines)
	return strings.Join(slices.Compact(lines), "\n")
}

func runCars(t *testing.T, out string, args ...string) {
	t.Helper()
	dir := carsData(t)
	argv := append([]string{"run", "--input", filepath.Join(dir, "cars.csv"), "--output", out, "--seed", "3", "--on-invalid", "skip", "--quiet"}, args...)
	if _, stderr, code := runBin(t, baseEnv(), argv...); code != 0 {
		t.Fatalf("run %v: exit %d\n%s", args, code, stderr)
	}
}

// TestStagesSameBytes runs the pipeline with 1, 2 and 8 workers and
// several split sizes, and in a coordinator with two worker processes:
// every run writes the same bytes.
func TestStagesSameBytes(t *testing.T) {
	dir := carsData(t)
	spec := filepath.Join(dir, "cars.spec.json")
	ref := filepath.Join(t.TempDir(), "ref")
	runCars(t, ref, "--spec", spec, "--workers", "1", "--split-size", "64KiB")
	for _, c := range []struct{ workers, size string }{{"2", "64KiB"}, {"8", "64KiB"}, {"2", "300KiB"}, {"8", "1MiB"}} {
		out := filepath.Join(t.TempDir(), "out")
		runCars(t, out, "--spec", spec, "--workers", c.workers, "--split-size", c.size)
		t.Run(c.workers+"x"+c.size, func(t *testing.T) { sameRows(t, ref, out) })
	}
	m := readManifest(t, ref)
	if m.FitPasses != 2 || m.Totals.Rejected == 0 || m.Totals.RowsIn+m.Totals.Rejected != int64(len(carsRows)) {
		t.Errorf("manifest: %d fit passes, %d rows in, %d rejected of %d", m.FitPasses, m.Totals.RowsIn, m.Totals.Rejected, len(carsRows))
	}

	out := filepath.Join(t.TempDir(), "cluster")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", filepath.Join(dir, "cars.csv"),
		"--output", out, "--spec", spec, "--seed", "3", "--split-size", "128KiB", "--workers", "0", "--on-invalid", "skip")
	w1 := startWorker(t, clusterEnv(), nil, "http://"+addr, "w1")
	w2 := startWorker(t, clusterEnv(), nil, "http://"+addr, "w2")
	if code := coord.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, coord.errText())
	}
	for _, w := range []*proc{w1, w2} {
		if code := w.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit %d\n%s", w.name, code, w.errText())
		}
	}
	sameRows(t, ref, out)
	if !strings.Contains(coord.errText(), "StandardScaler[fit pass 2]") {
		t.Errorf("the coordinator's plan does not show the fit passes:\n%s", coord.errText())
	}

	// The model alone (no --spec) transforms new data the same way.
	again := filepath.Join(t.TempDir(), "again")
	runCars(t, again, "--model", filepath.Join(ref, "_shardprep", "model.json"), "--workers", "2")
	sameRows(t, ref, again)
}

// TestStagesExactStatistics checks the fitted imputer mean and the
// scaler's mean and std against math/big over the generated rows.
func TestStagesExactStatistics(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	runCars(t, out, "--spec", filepath.Join(carsData(t), "cars.spec.json"), "--workers", "3", "--split-size", "64KiB")
	b, err := os.ReadFile(filepath.Join(out, "_shardprep", "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	var model struct {
		Stages []struct {
			Surrogates []float64 `json:"surrogates"`
			Mean, Std  []float64
		} `json:"stages"`
	}
	if err := json.Unmarshal(b, &model); err != nil {
		t.Fatal(err)
	}
	// Rows with a null price are invalid (rejected before any fit).
	var hp []float64
	for i, r := range carsRows {
		if r.price != nil && r.hp != nil && i%97 != 5 {
			hp = append(hp, *r.hp)
		}
	}
	surrogate := bigMean(hp)
	// The scaler is fitted on the rows the assembler keeps (a weight).
	var hpImp, weight []float64
	for i, r := range carsRows {
		if r.price == nil || r.weight == nil {
			continue
		}
		v := surrogate
		if r.hp != nil && i%97 != 5 {
			v = *r.hp
		}
		hpImp, weight = append(hpImp, v), append(weight, *r.weight)
	}
	imp, sc := model.Stages[2], model.Stages[4]
	n := len(sc.Mean)
	got := fmt.Sprint(imp.Surrogates, sc.Mean[n-2:], sc.Std[n-2:])
	want := fmt.Sprint([]float64{surrogate}, []float64{bigMean(hpImp), bigMean(weight)}, []float64{bigStd(hpImp), bigStd(weight)})
	if got != want {
		t.Errorf("fitted %s\nwant   %s", got, want)
	}
}

func bigMean(v []float64) float64 {
	s := new(big.Rat)
	for _, x := range v {
		s.Add(s, new(big.Rat).SetFloat64(x))
	}
	f, _ := s.Quo(s, big.NewRat(int64(len(v)), 1)).Float64()
	return f
}

func bigStd(v []float64) float64 {
	s, q := new(big.Rat), new(big.Rat)
	for _, x := range v {
		r := new(big.Rat).SetFloat64(x)
		s.Add(s, r)
		q.Add(q, new(big.Rat).Mul(r, r))
	}
	n := big.NewRat(int64(len(v)), 1)
	mean := new(big.Rat).Quo(s, n)
	// sum (x - mean)² / (n-1) = (q - s·mean) / (n-1)
	varr := new(big.Rat).Sub(q, new(big.Rat).Mul(s, mean))
	varr.Quo(varr, big.NewRat(int64(len(v)-1), 1))
	f, _ := varr.Float64()
	return math.Sqrt(f)
}

// TestStagesRefuseOtherColumns: a model's data must have its spec's
// columns, which the header names.
func TestStagesRefuseOtherColumns(t *testing.T) {
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref")
	runCars(t, ref, "--spec", filepath.Join(carsData(t), "cars.spec.json"))
	other := filepath.Join(dir, "other.csv")
	os.WriteFile(other, []byte("make,fuel,horsepower,weight,price\ntoyota,gas,100,1000,9\n"), 0o644)
	_, stderr, code := runBin(t, baseEnv(), "run", "--input", other, "--output", filepath.Join(dir, "o"),
		"--model", filepath.Join(ref, "_shardprep", "model.json"), "--quiet")
	if code == 0 || !strings.Contains(stderr, "make,fuel,horsepower,weight,price") || !strings.Contains(stderr, "make,fuel,hp,weight,price") {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
}

// TestStagesRowError: a row a stage refuses fails the job with its
// object, line, column and stage.
func TestStagesRowError(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.json")
	os.WriteFile(spec, []byte(strings.Replace(carsSpec, `"handleInvalid": "skip"`, `"handleInvalid": "error"`, 1)), 0o644)
	in := filepath.Join(dir, "in.csv")
	os.WriteFile(in, []byte("make,fuel,hp,weight,price\na,x,1,2,3\nb,y,,5,6\nc,,7,,9\n"), 0o644)
	_, stderr, code := runBin(t, baseEnv(), "run", "--input", in, "--spec", spec, "--output", filepath.Join(dir, "o"), "--quiet")
	want := `in.csv: line 4, column "weight": stages[3] (VectorAssembler): null value`
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %s\nwant %s", code, stderr, want)
	}
}
