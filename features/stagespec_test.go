package features

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
)

func TestStageSpecErrors(t *testing.T) {
	cols := `[{"name":"s","type":"string"},{"name":"x","type":"double"},{"name":"y","type":"double"}]`
	spec := func(stages string, extra string) string {
		return fmt.Sprintf(`{"columns": %s, "stages": %s, "label": "y", "splits": [{"name":"all","weight":1}]%s}`, cols, stages, extra)
	}
	asm := `{"stage":"VectorAssembler","inputCols":["x"],"outputCol":"features"}`
	cases := []struct{ name, json, want string }{
		{"unknown stage", spec(`[{"stage":"PCA","inputCol":"x"}]`, ``), `stages[0]: unknown stage "PCA"`},
		{"unknown param", spec(`[{"stage":"Imputer","inputCol":"x","outputCol":"xi","strateg":"mean"},`+asm+`]`, ``),
			`stages[0] (Imputer): unknown param "strateg"`},
		{"bad value", spec(`[{"stage":"Imputer","inputCol":"x","outputCol":"xi","strategy":"avg"},`+asm+`]`, ``),
			`stages[0] (Imputer): param strategy: "avg": want one of mean, median, mode`},
		{"missing outputCol", spec(`[{"stage":"StandardScaler","inputCol":"x"}]`, ``), `stages[0] (StandardScaler): param outputCol: is required`},
		{"used before made", spec(`[{"stage":"VectorAssembler","inputCols":["xi"],"outputCol":"features"},{"stage":"Imputer","inputCol":"x","outputCol":"xi"}]`, ``),
			`stages[0] (VectorAssembler): input column "xi" is neither a CSV column nor made by an earlier stage`},
		{"made twice", spec(`[{"stage":"Imputer","inputCol":"x","outputCol":"xi"},{"stage":"Imputer","inputCol":"x","outputCol":"xi"},`+asm+`]`, ``),
			`stages[1] (Imputer): output column "xi" is already made by stages[0]`},
		{"overwrites a CSV column", spec(`[{"stage":"Imputer","inputCol":"x","outputCol":"s"},`+asm+`]`, ``),
			`stages[0] (Imputer): output column "s" is a CSV column`},
		{"type mismatch", spec(`[{"stage":"StandardScaler","inputCol":"x","outputCol":"features"}]`, ``),
			`stages[0] (StandardScaler): input column "x" is a double column; StandardScaler takes vector`},
		{"string into assembler", spec(`[{"stage":"VectorAssembler","inputCols":["s"],"outputCol":"features"}]`, ``),
			`stages[0] (VectorAssembler): input column "s" is a string column; VectorAssembler takes double or vector`},
		{"no features", spec(`[{"stage":"Imputer","inputCol":"x","outputCol":"xi"}]`, ``), `spec: features "features" is not made by any stage`},
		{"both forms", spec(`[`+asm+`]`, `,"numeric":["x"]`), `stages and categorical/numeric are two forms`},
		{"bad splits", spec(`[{"stage":"Bucketizer","inputCol":"x","outputCol":"b","splits":[0,1]},{"stage":"VectorAssembler","inputCols":["b"],"outputCol":"features"}]`, ``),
			`stages[0] (Bucketizer): param splits: [0 1]: want at least 3 split points`},
		{"OneHotEncoder skip", spec(`[{"stage":"OneHotEncoder","inputCol":"x","outputCol":"features","handleInvalid":"skip"}]`, ``),
			`stages[0] (OneHotEncoder): param handleInvalid: "skip": want one of error, keep`},
		{"inputCol and inputCols", spec(`[{"stage":"Imputer","inputCol":"x","inputCols":["x"],"outputCols":["a"]},`+asm+`]`, ``),
			`set both inputCol and inputCols`},
		{"label made by a stage", strings.Replace(spec(`[`+asm+`]`, ``), `"label": "y"`, `"label": "features"`, 1),
			`label "features": want a double column of the CSV`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant one with %s", err, c.want)
			}
		})
	}
}

func TestStageFitPasses(t *testing.T) {
	spec, err := ParseSpec([]byte(issueSpecJSON))
	if err != nil {
		t.Fatal(err)
	}
	if n := spec.FitPasses(); n != 2 {
		t.Errorf("fit passes %d, want 2 (the scaler needs the imputer)", n)
	}
	want := "StringIndexer[fit pass 1] -> OneHotEncoder -> Imputer[fit pass 1] -> VectorAssembler -> StandardScaler[fit pass 2]"
	if got := spec.StagePlan(); got != want {
		t.Errorf("plan %s\nwant %s", got, want)
	}
	p, _ := newPipe(spec)
	// Pass 1 reads the indexed and imputed columns (and the label), pass
	// 2 everything the scaler's input needs.
	if got := strings.Join(p.decodeColumns(1), ","); got != "make,fuel,hp,price" {
		t.Errorf("pass 1 reads %s", got)
	}
	if got := strings.Join(p.decodeColumns(2), ","); got != "make,fuel,hp,weight,price" {
		t.Errorf("pass 2 reads %s", got)
	}
	// A stage after one that drops rows is fitted after it.
	skip := strings.Replace(issueSpecJSON, `"handleInvalid": "keep"`, `"handleInvalid": "skip"`, 1)
	skip = strings.Replace(skip, `{"stage": "Imputer", "inputCols": ["hp"], "outputCols": ["hp_imp"], "strategy": "mean"},`, ``, 1)
	skip = strings.Replace(skip, `"hp_imp", "weight"`, `"weight"`, 1)
	skip = strings.Replace(skip, `"stages": [`, `"stages": [{"stage": "Imputer", "inputCols": ["hp"], "outputCols": ["hp_imp"]},`, 1)
	s2, err := ParseSpec([]byte(skip))
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.StagePlan(); !strings.HasPrefix(got, "Imputer[fit pass 1] -> StringIndexer[fit pass 1]") || s2.FitPasses() != 2 {
		t.Errorf("plan %s, %d passes", got, s2.FitPasses())
	}
}

// TestStageStatsExact checks the scaler's mean and std and the imputer's
// mean against math/big, for several cuts of the rows merged in several
// orders: the fitted values are the same bits for every cut.
func TestStageStatsExact(t *testing.T) {
	spec := stagesSpec(t, xzCols, `[{"stage":"Imputer","inputCols":["x"],"outputCols":["xi"]},
	   {"stage":"VectorAssembler","inputCols":["xi","z"],"outputCol":"raw"},
	   {"stage":"StandardScaler","inputCol":"raw","outputCol":"f","withMean":true}]`, "f")
	rng := rand.New(rand.NewPCG(1, 2))
	var rows [][]any
	var xs, zs []float64
	for i := 0; i < 3000; i++ {
		x := (rng.Float64() - 0.3) * math.Pow(10, float64(rng.IntN(30)-10))
		z := float64(rng.IntN(1000)) / 7
		var cell any = x
		if i%17 == 0 {
			cell = nil
		} else {
			xs = append(xs, x)
		}
		zs = append(zs, z)
		rows = append(rows, []any{cell, z, 1.0})
	}
	imean := ratMean(xs...)
	// The imputed column: nulls take the exact mean.
	var xi []float64
	for _, r := range rows {
		if r[0] == nil {
			xi = append(xi, imean)
		} else {
			xi = append(xi, r[0].(float64))
		}
	}
	want := fmt.Sprintf("surrogates %v mean [%v %v] std [%v %v]", imean, ratMean(xi...), ratMean(zs...), ratStd(xi...), ratStd(zs...))
	mem := checkedMem(t)
	rec := recordOf(t, mem, spec.Schema(), rows)
	defer rec.Release()
	for _, cuts := range [][]int{{3000}, {1, 2999}, {1500, 1500}, {7, 1000, 993, 1000}} {
		var parts []arrow.Record
		at := int64(0)
		for _, n := range cuts {
			parts = append(parts, rec.NewSlice(at, at+int64(n)))
			at += int64(n)
		}
		// Reverse the order of the parts: merging commutes.
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
		m, err := fitRecords(spec, parts...)
		for _, p := range parts {
			p.Release()
		}
		if err != nil {
			t.Fatal(err)
		}
		fs, sc := m.pipe.fits[0], m.pipe.fits[2]
		got := fmt.Sprintf("surrogates %v mean %v std %v", fs.surrogates[0], sc.mean, sc.std)
		if got != want {
			t.Errorf("cuts %v:\n%s\nwant\n%s", cuts, got, want)
		}
		b, _ := json.Marshal(m)
		back, err := ReadModel(b)
		if err != nil {
			t.Fatal(err)
		}
		if b2, _ := json.Marshal(back); string(b2) != string(b) {
			t.Errorf("model JSON round trip differs")
		}
	}
}
