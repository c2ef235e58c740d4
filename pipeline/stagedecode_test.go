package pipeline

import (
	"math"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

func TestSparkDouble(t *testing.T) {
	inf, ninf := math.Inf(1), math.Inf(-1)
	ok := map[string]float64{"1.5": 1.5, " 1.5 ": 1.5, "NaN": math.NaN(), " NaN": math.NaN(), "Inf": inf, "-Inf": ninf,
		"Infinity": inf, "+Infinity": inf, "-Infinity": ninf, " Infinity\t": inf, "1e3": 1000, "1.5d": 1.5, "2F": 2,
		"0x1p3": 8, "1e400": inf, "-0": math.Copysign(0, -1)}
	for in, want := range ok {
		got, err := features.SparkDouble([]byte(in))
		if err != nil || math.Float64bits(got) != math.Float64bits(want) && !(got != got && want != want) {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"inf", "nan", "+Inf", " Inf", "infinity", "1_000", "abc", "1.5x", "d"} {
		if v, err := features.SparkDouble([]byte(in)); err == nil {
			t.Errorf("%q: %v, want an error", in, v)
		}
	}
}

func TestNullDecoder(t *testing.T) {
	spec, err := features.ParseSpec([]byte(`{"columns":[{"name":"s","type":"string"},{"name":"x","type":"double"},{"name":"y","type":"double"}],
	  "stages":[{"stage":"VectorAssembler","inputCols":["x"],"outputCol":"features","handleInvalid":"keep"}],
	  "label":"y","splits":[{"name":"all","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := newNullDecoder(spec, mem, []string{"x"})
	defer d.Release()
	for i, line := range []string{`a,1,2`, `,,3`, `"",NaN,4`, `" b",-Inf,5`} {
		if fe := d.Add([]byte(line), int64(i)); fe != nil {
			t.Fatalf("%s: %v", line, fe)
		}
	}
	for _, bad := range []string{`a,1,`, `a,1,""`, `a,x,1`, `a,1`, `a,1,2,3`} {
		if fe := d.Add([]byte(bad), 9); fe == nil {
			t.Errorf("%s decoded", bad)
		}
	}
	rec := d.Flush()
	defer rec.Release()
	// Only x and the label are parsed.
	if rec.NumCols() != 3 || rec.Schema().Field(0).Name != "x" || rec.NumRows() != 4 {
		t.Fatalf("record %v", rec.Schema())
	}
	x := rec.Column(0).(*array.Float64)
	if x.IsNull(0) || x.Value(0) != 1 || !x.IsNull(1) || !math.IsNaN(x.Value(2)) || !math.IsInf(x.Value(3), -1) {
		t.Errorf("x = %v", x)
	}
	all := newNullDecoder(spec, mem, nil)
	defer all.Release()
	all.Add([]byte(`"",1,2`), 0)
	all.Add([]byte(` b,1,2`), 1)
	r2 := all.Flush()
	defer r2.Release()
	s := r2.Column(0).(*array.String)
	if !s.IsNull(0) || s.Value(1) != " b" {
		t.Errorf("s = %v", s)
	}
}
