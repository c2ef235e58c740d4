package pipeline

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// sampleModel returns the model the Abalone sample fits.
func sampleModel(t *testing.T) *features.Model {
	t.Helper()
	store := newMemStore()
	job := abaloneJob(t, store, &Settings{Seed: 1})
	task := &splitTask{job: job, split: job.Splits[0], src: store, mem: memory.NewGoAllocator(), ctr: &counters{}}
	res, err := task.runFit(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := res.Stats.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sparkOutcome is what the Spark mode's transform of one object made.
type sparkOutcome struct {
	parts map[string]string // staged parts by key
	res   string            // the task's result, as JSON
	err   string
}

// runSpark runs the Spark mode's transform pass of model over the object
// name holding data, read in runs runs (below 0: as one batch), with
// settings s.
func runSpark(t *testing.T, model *features.Model, name string, data []byte, s Settings, runs int) sparkOutcome {
	t.Helper()
	return runSparkSpec(t, sparkObject{testSpec, name, data}, model, s, runs)
}

// sparkObject is an object and the spec of its job.
type sparkObject struct {
	spec, name string
	data       []byte
}

// sparkJob returns the Spark mode's job of spec over the object name
// holding data, in store.
func sparkJob(t *testing.T, spec string, store *memStore, name string, data []byte, s Settings) *Job {
	t.Helper()
	url := "in/" + name
	store.objects[url] = data
	sp, err := features.ParseSpec([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	s.SplitMode = SplitSpark
	job, err := NewJob(sp, []Object{{URL: url, Name: name, Size: int64(len(data)), Root: "in/"}}, &s)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// runSparkSpec is runSpark of the object o under its spec.
func runSparkSpec(t *testing.T, o sparkObject, model *features.Model, s Settings, runs int) sparkOutcome {
	t.Helper()
	store := newMemStore()
	job := sparkJob(t, o.spec, store, o.name, o.data, s)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	task := &splitTask{job: job, fit: &fitResult{model: model}, split: job.Splits[0], src: store, mem: mem,
		ctr: &counters{}, sparkRuns: runs}
	res, parts, err := task.runTransform(context.Background(), store, "s", false)
	out := sparkOutcome{parts: map[string]string{}}
	if err != nil {
		out.err = err.Error()
		return out
	}
	for _, p := range parts {
		out.parts[p.Key] = string(store.stages[memStage{Key: p.Key, Stage: "s"}])
	}
	// The column stats apart: their JSON refuses a min or max that is
	// infinite, which then has to fail alike.
	cols := res.Columns
	res.Columns = nil
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(cols)
	out.res = fmt.Sprintf("%s\ncolumns %s %v", b, c, err)
	return out
}

// sparkRows returns n rows of the Abalone columns, seeded by seed:
// numbers from few values (many rows tie in every column) or, with wide,
// from many (then more ranks than a sort key holds); each line ends in
// eol.
func sparkRows(seed uint64, n int, wide bool, eol string) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	few := []string{"0", "-0", "0.0", "-0.0", "0.5", "1", "1.5", "-2", "1e3", "0.25", " 0.5", "inf", "-inf", "3.0000"}
	var b bytes.Buffer
	for range n {
		b.WriteString([]string{"M", "F", "I"}[rng.IntN(3)])
		for range 8 {
			b.WriteByte(',')
			switch {
			case wide:
				fmt.Fprintf(&b, "%.*f", 1+rng.IntN(16), rng.Float64())
			default:
				b.WriteString(few[rng.IntN(len(few))])
			}
		}
		b.WriteString(eol)
	}
	return b.Bytes()
}

// sparkDecimals returns n rows whose numbers are mostly decimals of two
// digits after the point in the first half of the rows and of four in the
// second (so the runs choose different scales for their direct ids), with
// some negative, -0.0, infinite, large or long ones among them.
func sparkDecimals(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 9))
	odd := []string{"-0.0", "0", "-1.25", "inf", "1e9", "0.123456789", "131071", "1310.71", "5e-324"}
	var b bytes.Buffer
	for i := range n {
		b.WriteString([]string{"M", "F", "I"}[rng.IntN(3)])
		for range 8 {
			b.WriteByte(',')
			switch digits := 2 + 2*(2*i/n); {
			case rng.IntN(10) == 0:
				b.WriteString(odd[rng.IntN(len(odd))])
			default:
				fmt.Fprintf(&b, "%.*f", digits, float64(rng.IntN(300))/math.Pow(10, float64(digits)-1))
			}
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// oneWide returns the rows of data with the length of each a number of
// its own, in no order.
func oneWide(data []byte) []byte {
	lines := strings.SplitAfter(string(data), "\n")
	perm := rand.New(rand.NewPCG(5, 6)).Perm(len(lines))
	for i, l := range lines {
		if f := strings.Split(l, ","); len(f) > 2 {
			f[1] = fmt.Sprintf("%d.25", perm[i])
			lines[i] = strings.Join(f, ",")
		}
	}
	return []byte(strings.Join(lines, ""))
}

// TestSparkRunsSameBytes checks that the Spark mode writes the same parts
// and reports the same result whether it reads an object in one run or
// several, and the same as a whole split decoded as one batch: with rows
// tied in every column, -0.0 beside 0.0, infinities, numbers not in their
// repr form, ranks wider than a sort key holds, more distinct values in a
// column than 16 bits number, CRLF line ends, a header, gzip, and fewer
// rows than runs.
func TestSparkRunsSameBytes(t *testing.T) {
	model := sampleModel(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(sparkRows(3, 3000, false, "\n"))
	zw.Close()
	cases := []struct {
		name, object string
		data         []byte
		s            Settings
	}{
		{"ties", "a.csv", sparkRows(1, 70000, false, "\n"), Settings{Seed: 3}}, // more rows than gathered at once
		{"wide", "a.csv", sparkRows(2, 20000, true, "\n"), Settings{Seed: 4}},
		// More distinct values in a column than 16-bit ids hold, in one
		// run and in all.
		{"wider", "a.csv", sparkRows(10, 100000, true, "\n"), Settings{Seed: 10}},
		// As many in one column alone: the keys still hold every rank.
		{"one-wide", "a.csv", oneWide(sparkRows(11, 70000, false, "\n")), Settings{Seed: 11}},
		{"crlf-header", "a.csv", append([]byte("sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings\r\n"),
			sparkRows(5, 3000, false, "\r\n")...), Settings{Seed: 5, Header: true}},
		{"gzip", "a.csv.gz", gz.Bytes(), Settings{Seed: 6}},
		// Short decimals, numbered through direct ids, beside numbers
		// that are not.
		{"decimals", "a.csv", sparkDecimals(12, 40000), Settings{Seed: 12}},
		{"few-rows", "a.csv", sparkRows(7, 2, false, "\n"), Settings{Seed: 7}},
		{"one-row", "a.csv", sparkRows(8, 1, true, ""), Settings{Seed: 8}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := runSpark(t, model, c.object, c.data, c.s, -1)
			if want.err != "" || len(want.parts) == 0 {
				t.Fatalf("one batch: %v, %d parts", want.err, len(want.parts))
			}
			for _, runs := range []int{1, 2, 3, 5} {
				got := runSpark(t, model, c.object, c.data, c.s, runs)
				checkSparkOutcome(t, runs, got, want)
			}
			checkSparkFit(t, testSpec, c.object, c.data, c.s)
		})
	}
}

// fitSpark runs the Spark mode's fit pass of spec over the object name
// holding data in runs runs (below 0: in one) and returns its result and
// statistics as JSON, or its error.
func fitSpark(t *testing.T, spec, name string, data []byte, s Settings, runs int) string {
	t.Helper()
	store := newMemStore()
	job := sparkJob(t, spec, store, name, data, s)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	task := &splitTask{job: job, split: job.Splits[0], src: store, mem: mem, ctr: &counters{}, sparkRuns: runs}
	res, err := task.runFit(context.Background(), s.OnInvalid == PolicySkip)
	if err != nil {
		return "error " + err.Error()
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkSparkFit checks that the fit pass of the Spark mode finds the same
// in 1 to 4 runs as in one.
func checkSparkFit(t *testing.T, spec, name string, data []byte, s Settings) {
	t.Helper()
	want := fitSpark(t, spec, name, data, s, -1)
	for _, runs := range []int{1, 2, 3, 4} {
		if got := fitSpark(t, spec, name, data, s, runs); got != want {
			t.Errorf("fit in %d runs:\n%s\nwant\n%s", runs, got, want)
		}
	}
}

func checkSparkOutcome(t *testing.T, runs int, got, want sparkOutcome) {
	t.Helper()
	if got.err != want.err {
		t.Fatalf("%d runs: error %q, want %q", runs, got.err, want.err)
	}
	if got.res != want.res {
		t.Errorf("%d runs: result\n%s\nwant\n%s", runs, got.res, want.res)
	}
	if len(got.parts) != len(want.parts) {
		t.Errorf("%d runs: %d parts, want %d", runs, len(got.parts), len(want.parts))
	}
	for key, w := range want.parts {
		if g, ok := got.parts[key]; !ok || g != w {
			t.Errorf("%d runs: part %s differs (%d bytes, want %d)", runs, key, len(g), len(w))
		}
	}
}

// TestSparkRunsRejectedRows checks the rows the decoder and the model
// refuse, in several runs, against a whole split read as one batch: the
// same rejected rows part, in the same order, and counts under the skip
// policy; the same first error under the error policy, where a row the
// decoder refuses comes before one the model refuses earlier in the
// object.
func TestSparkRunsRejectedRows(t *testing.T) {
	model := sampleModel(t)
	lines := strings.SplitAfter(string(sparkRows(9, 3000, false, "\n")), "\n")
	lines[100] = "X,0.1,0.2,0.3,0.4,0.1,0.1,0.1,3\n"   // a sex the model does not know
	lines[900] = "M,0.1,0.2,0.3,x,0.1,0.1,0.1,3\n"     // not a number
	lines[1700] = "M,0.1,0.2\n"                        // too few fields
	lines[2100] = "Q,0.1,0.2,0.3,0.4,0.1,0.1,0.1,4\n"  // unknown again
	lines[2500] = "F,0.1,0.2,0.3,0.4,0.1,0.1,NaN,5\n"  // NaN
	lines[2998] = "I,0.1,0.2,0.3,0.4,0.1,0.1,0.1,,3\n" // too many fields
	data := []byte(strings.Join(lines, ""))
	for _, policy := range []Policy{PolicySkip, PolicyError} {
		t.Run(string(policy), func(t *testing.T) {
			s := Settings{Seed: 11, OnInvalid: policy}
			want := runSpark(t, model, "r.csv", data, s, -1)
			switch {
			case policy == PolicySkip && (want.err != "" || !strings.Contains(want.parts[partKey(rejectedFolder, 0, "")], "not in the fitted model")):
				t.Fatalf("one batch: %v, parts %v", want.err, want.parts)
			case policy == PolicyError && !strings.Contains(want.err, "line 901"):
				t.Fatalf("one batch: error %q, want the row at line 901", want.err)
			}
			for _, runs := range []int{1, 2, 3, 4} {
				checkSparkOutcome(t, runs, runSpark(t, model, "r.csv", data, s, runs), want)
			}
			checkSparkFit(t, testSpec, "r.csv", data, s)
		})
	}
}

// TestKeyOrderWide checks the order of rows whose ranks are wider than a
// sort key holds, so that rows tie in their keys and differ in the ranks
// cut off, against a sort of the whole ranks, then the run, then the row.
func TestKeyOrderWide(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	widths := []int{2, 30, 30, 30, 30, 30}
	values := []uint32{0, 1, 2, 1 << 29, 1<<30 - 1, 1<<30 - 2}
	var runs []*sparkRun
	type row struct{ run, row int }
	var all []row
	for run, n := range []int{300, 1, 0, 250} {
		r := &sparkRun{rows: n, keys: make([]keyColumn, len(widths)), ids: idMatrix{cols: len(widths)}}
		r.ids.grow(n)
		for c, w := range widths {
			k := &r.keys[c]
			if w < 30 {
				// A narrow column, ranked as numbered.
				k.rank = []uint32{0, 1, 2, 3}
			} else {
				// A wide one: id i has rank values[i].
				k.rank, k.wide = values, make([]uint32, n)
			}
			for i := range n {
				id := uint32(rng.IntN(len(k.rank)))
				if k.wide != nil {
					k.wide[i] = id
				} else {
					r.ids.ids[i*r.ids.cols+c] = uint16(id)
				}
				if c == 0 {
					all = append(all, row{run, i})
				}
			}
		}
		runs = append(runs, r)
	}
	o := newKeyOrder(runs, widths)
	if o.exact {
		t.Fatal("the keys hold every rank")
	}
	sorted := make([][]sparkKey, len(runs))
	for i := range runs {
		sorted[i] = o.keys(i)
		o.sort(sorted[i], i)
	}
	// Merged a few rows at a time.
	m := &keyMerge{o: o, sorted: sorted}
	var got []uint64
	for buf := make([]uint64, 0, 7); ; got = append(got, buf...) {
		if buf, _ = m.next(buf[:0], nil); len(buf) == 0 {
			break
		}
	}
	slices.SortFunc(all, func(a, b row) int {
		for c := range widths {
			if x := cmp.Compare(runs[a.run].rankOf(c, a.row), runs[b.run].rankOf(c, b.row)); x != 0 {
				return x
			}
		}
		return cmp.Or(cmp.Compare(a.run, b.run), cmp.Compare(a.row, b.row))
	})
	if len(got) != len(all) {
		t.Fatalf("%d rows, want %d", len(got), len(all))
	}
	for i, w := range all {
		if g := (row{int(got[i] >> 32), int(uint32(got[i]))}); g != w {
			t.Fatalf("row %d of the order is %v, want %v", i, g, w)
		}
	}
}

// TestRadixSort checks radixSort against a comparison sort of keys that
// share leading bits, tie in their first 64 or in all 128, and of sizes
// around those it sorts by comparing alone.
func TestRadixSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	byBits := func(a, b sparkKey) int { return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo)) }
	for _, n := range []int{0, 1, 2, 24, 25, 300, 5000} {
		for _, shape := range []string{"spread", "shared", "hi-ties", "all-ties"} {
			keys := make([]sparkKey, n)
			for i := range keys {
				k := sparkKey{rng.Uint64(), rng.Uint64()}
				switch shape {
				case "shared":
					k.hi = 5<<60 | k.hi>>40
				case "hi-ties":
					k.hi = uint64(rng.IntN(3))
				case "all-ties":
					k = sparkKey{7, uint64(rng.IntN(4)) << 60}
				}
				keys[i] = k
			}
			want := slices.Clone(keys)
			slices.SortFunc(want, byBits)
			radixSort(keys, byBits)
			if !slices.Equal(keys, want) {
				t.Errorf("%d keys, %s: not sorted", n, shape)
			}
		}
	}
}

// imputeSpec reads nulls where a number is empty and imputes them: the
// rows keep their nulls, which sort first.
const imputeSpec = `{"columns":[{"name":"sex","type":"string"},{"name":"length","type":"double"},{"name":"diameter","type":"double"},
{"name":"height","type":"double"},{"name":"whole_weight","type":"double"},{"name":"shucked_weight","type":"double"},
{"name":"viscera_weight","type":"double"},{"name":"shell_weight","type":"double"},{"name":"rings","type":"double"}],
"stages":[{"stage":"Imputer","inputCols":["length","diameter"],"outputCols":["length_i","diameter_i"]},
 {"stage":"StringIndexer","inputCol":"sex","outputCol":"sex_idx"},
 {"stage":"VectorAssembler","inputCols":["sex_idx","length_i","diameter_i","height"],"outputCol":"features"}],
"label":"rings","splits":[{"name":"train","weight":0.8},{"name":"validation","weight":0.2}]}`

// TestSparkRunsNulls checks a spec with stages, whose rows may hold nulls
// (sorted before every value), in several runs against one batch.
func TestSparkRunsNulls(t *testing.T) {
	lines := strings.SplitAfter(string(sparkRows(12, 5000, false, "\n")), "\n")
	for i := 0; i < len(lines)-1; i += 7 {
		f := strings.Split(lines[i], ",")
		f[1+i%2] = "" // length or diameter
		lines[i] = strings.Join(f, ",")
	}
	// No infinities: their mean, the nulls' value, would be NaN.
	data := []byte(strings.NewReplacer(",-inf", ",-4", ",inf", ",4").Replace(strings.Join(lines, "")))
	// The fit passes, as the coordinator runs them.
	store := newMemStore()
	job := sparkJob(t, imputeSpec, store, "n.csv", data, Settings{})
	var model *features.Model
	for pass := 0; model == nil || model.NextStats() != nil; pass++ {
		if pass == 3 {
			t.Fatal("the fit does not end")
		}
		task := &splitTask{job: job, fit: &fitResult{model: model}, split: job.Splits[0], src: store,
			mem: memory.NewGoAllocator(), ctr: &counters{}}
		res, err := task.runFit(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		if model, err = res.Stats.Model(); err != nil {
			t.Fatal(err)
		}
	}
	s := Settings{Seed: 13, OnInvalid: PolicySkip}
	o := sparkObject{imputeSpec, "n.csv", data}
	want := runSparkSpec(t, o, model, s, -1)
	if want.err != "" || len(want.parts) != 2 {
		t.Fatalf("one batch: %v, %d parts", want.err, len(want.parts))
	}
	for _, runs := range []int{1, 2, 3} {
		checkSparkOutcome(t, runs, runSparkSpec(t, o, model, s, runs), want)
	}
	checkSparkFit(t, imputeSpec, "n.csv", data, s)
}
