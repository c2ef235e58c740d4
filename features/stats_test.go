package features

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

func checkedMem(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func TestStatsAbalone(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	spec := abaloneSpec(t)
	rec := abaloneRecord(t, mem)
	defer rec.Release()

	st := NewStats(spec)
	if err := st.Add(rec); err != nil {
		t.Fatal(err)
	}
	if st.Rows() != 4177 {
		t.Errorf("Rows = %d, want 4177", st.Rows())
	}
	m, err := st.Model()
	if err != nil {
		t.Fatal(err)
	}
	labels, counts := m.Labels("sex")
	if !slices.Equal(labels, []string{"M", "I", "F"}) || !slices.Equal(counts, []int64{1528, 1342, 1307}) {
		t.Errorf("sex labels %q counts %v, want [M I F] [1528 1342 1307]", labels, counts)
	}
	if m.Width() != 9 {
		t.Errorf("Width = %d, want 9", m.Width())
	}
	if err := m.Check(spec); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// TestStatsFitSchemaRecord fits from a record holding only the fit columns
// plus an extra column, as the fit pass produces.
func TestStatsFitSchemaRecord(t *testing.T) {
	mem := checkedMem(t)
	spec := smallSpec(t)
	fields := append(spec.FitSchema().Fields(), arrow.Field{Name: "__offset", Type: arrow.PrimitiveTypes.Int64})
	rec := recordOf(t, mem, arrow.NewSchema(fields, nil), [][]any{
		{"p", "u", int64(0)}, {"q", "u", int64(4)}, {"q", "v", int64(8)},
	})
	defer rec.Release()
	st := NewStats(spec)
	if err := st.Add(rec); err != nil {
		t.Fatal(err)
	}
	m, err := st.Model()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(m), `label=y numeric=["x"] rows=3 width=3 b=["u" "v"]/[2 1] a=["q" "p"]/[2 1]`; got != want {
		t.Errorf("model = %s\nwant      %s", got, want)
	}
}

func TestStatsAddErrors(t *testing.T) {
	mem := checkedMem(t)
	spec := smallSpec(t)
	st := NewStats(spec)

	rec := recordOf(t, mem, spec.Schema(), [][]any{{"p", 1.0, "u", 2.0}, {"p", 1.0, nil, 2.0}, {nil, 1.0, "u", 2.0}})
	defer rec.Release()
	err := st.Add(rec)
	var re *RowError
	if !errors.As(err, &re) || re.Row != 1 || re.Column != "b" || re.Reason != ReasonNull {
		t.Fatalf("Add with nulls: %v", err)
	}
	if st.Rows() != 0 {
		t.Errorf("a failed Add counted %d rows", st.Rows())
	}
	if _, err := st.Model(); err == nil || !strings.Contains(err.Error(), "no rows were fitted") {
		t.Errorf("Model of empty stats: %v", err)
	}

	noB := recordOf(t, mem, arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.BinaryTypes.String}}, nil), [][]any{{"p"}})
	defer noB.Release()
	if err := st.Add(noB); err == nil || !strings.Contains(err.Error(), `no column "b"`) {
		t.Errorf("missing column: %v", err)
	}
	wrongType := recordOf(t, mem, arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.BinaryTypes.String}, {Name: "b", Type: arrow.PrimitiveTypes.Float64}}, nil), [][]any{{"p", 1.0}})
	defer wrongType.Release()
	if err := st.Add(wrongType); err == nil || !strings.Contains(err.Error(), `column "b" is float64, want a string column`) {
		t.Errorf("wrong type: %v", err)
	}
	var zero Stats
	if err := zero.Add(rec); err == nil || !strings.Contains(err.Error(), "not initialised") {
		t.Errorf("zero Stats: %v", err)
	}
}

// TestStatsTies checks equal counts are ordered by ascending bytes, not by
// first appearance or by Unicode collation.
func TestStatsTies(t *testing.T) {
	mem := checkedMem(t)
	spec, err := ParseSpec([]byte(`{"columns":[{"name":"c","type":"string"},{"name":"y","type":"double"}],
		"categorical":["c"],"label":"y","splits":[{"name":"s","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// "b" x3; then "é" (0xc3 0xa9), "a", " M", "M", "Z" once each, in an order
	// that is not the byte order; "a" and "Z" x2.
	var rows [][]any
	for _, l := range []string{"é", "b", "a", "M", "Z", " M", "b", "a", "b", "Z"} {
		rows = append(rows, []any{l, 0.0})
	}
	rec := recordOf(t, mem, spec.Schema(), rows)
	defer rec.Release()
	st := NewStats(spec)
	if err := st.Add(rec); err != nil {
		t.Fatal(err)
	}
	m, err := st.Model()
	if err != nil {
		t.Fatal(err)
	}
	labels, counts := m.Labels("c")
	if want := []string{"b", "Z", "a", " M", "M", "é"}; !slices.Equal(labels, want) {
		t.Errorf("labels %q, want %q", labels, want)
	}
	if want := []int64{3, 2, 2, 1, 1, 1}; !slices.Equal(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	if m.Width() != 5 {
		t.Errorf("Width = %d, want 5", m.Width())
	}
}

// statsOf fits spec over rec[i:j].
func statsOf(t *testing.T, spec *Spec, rec arrow.Record, i, j int) *Stats {
	t.Helper()
	part := sliceRecord(rec, i, j)
	defer part.Release()
	st := NewStats(spec)
	if err := st.Add(part); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStatsMergeOrder(t *testing.T) {
	mem := checkedMem(t)
	spec := abaloneSpec(t)
	rec := abaloneRecord(t, mem)
	defer rec.Release()

	whole := statsOf(t, spec, rec, 0, int(rec.NumRows()))
	wantModel, err := whole.Model()
	if err != nil {
		t.Fatal(err)
	}
	wantStats := mustJSON(t, whole)

	bounds := []int{0, 1, 700, 701, 2048, 3000, 4177}
	chunks := func() []*Stats {
		var cs []*Stats
		for k := 0; k+1 < len(bounds); k++ {
			cs = append(cs, statsOf(t, spec, rec, bounds[k], bounds[k+1]))
		}
		return cs
	}
	check := func(name string, got *Stats) {
		t.Helper()
		if got.Rows() != 4177 {
			t.Errorf("%s: rows %d", name, got.Rows())
		}
		if b := mustJSON(t, got); !bytes.Equal(b, wantStats) {
			t.Errorf("%s: stats %s\nwant %s", name, b, wantStats)
		}
		m, err := got.Model()
		if err != nil {
			t.Fatal(err)
		}
		if describe(m) != describe(wantModel) {
			t.Errorf("%s: model %s\nwant %s", name, describe(m), describe(wantModel))
		}
	}

	// Left fold in order.
	cs := chunks()
	acc := NewStats(spec)
	for _, c := range cs {
		if err := acc.Merge(c); err != nil {
			t.Fatal(err)
		}
	}
	check("left fold", acc)

	// Right fold in reverse order: c5 <- c4 <- ... (different grouping and order).
	cs = chunks()
	for k := len(cs) - 2; k >= 0; k-- {
		if err := cs[k].Merge(cs[k+1]); err != nil {
			t.Fatal(err)
		}
	}
	check("right fold", cs[0])

	// Tree: (c0+c3) + ((c5+c1) + (c2+c4)).
	cs = chunks()
	for _, p := range [][2]int{{0, 3}, {5, 1}, {2, 4}, {5, 2}, {0, 5}} {
		if err := cs[p[0]].Merge(cs[p[1]]); err != nil {
			t.Fatal(err)
		}
	}
	check("tree", cs[0])

	// Through JSON, as stats travel between processes.
	cs = chunks()
	acc = NewStats(spec)
	for k := len(cs) - 1; k >= 0; k-- {
		var c Stats
		if err := json.Unmarshal(mustJSON(t, cs[k]), &c); err != nil {
			t.Fatal(err)
		}
		if err := acc.Merge(&c); err != nil {
			t.Fatal(err)
		}
	}
	check("json", acc)

	// Merging into itself doubles.
	half := statsOf(t, spec, rec, 0, 2)
	if err := half.Merge(half); err != nil {
		t.Fatal(err)
	}
	if half.Rows() != 4 {
		t.Errorf("self merge rows %d", half.Rows())
	}
}

func TestStatsMergeDifferentSpecs(t *testing.T) {
	a := NewStats(abaloneSpec(t))
	for _, edit := range []func(*Spec){
		func(s *Spec) { s.Categorical = nil },
		func(s *Spec) { s.Numeric = s.Numeric[1:] },
		func(s *Spec) { s.Numeric[0], s.Numeric[1] = s.Numeric[1], s.Numeric[0] },
		func(s *Spec) { s.Label = "length"; s.Numeric = append(s.Numeric[1:], "rings") },
	} {
		other := abaloneSpec(t)
		edit(other)
		if err := a.Merge(NewStats(other)); err == nil || !strings.Contains(err.Error(), "different specs") {
			t.Errorf("Merge of stats for %+v: %v", other, err)
		}
	}
	if err := a.Merge(&Stats{}); err == nil {
		t.Error("Merge of zero Stats succeeded")
	}
}

func TestStatsJSON(t *testing.T) {
	mem := checkedMem(t)
	spec := smallSpec(t)
	// Labels that are not valid UTF-8 must survive exactly.
	rec := recordOf(t, mem, spec.Schema(), [][]any{
		{"p", 1.0, "\xff\xfe", 2.0}, {"q<&>", 1.0, "u", 2.0}, {"p", 1.0, "", 2.0}, {"p", 1.0, "\xff\xfe", 2.0},
	})
	defer rec.Release()
	st := NewStats(spec)
	if err := st.Add(rec); err != nil {
		t.Fatal(err)
	}
	b1 := mustJSON(t, st)
	want := `{"version":1,"label":"y","numeric":["x"],"rows":4,"categorical":[` +
		`{"column":"b","labels":[{"label":"","count":1},{"label":"u","count":1},{"label_base64":"//4=","count":2}]},` +
		`{"column":"a","labels":[{"label":"p","count":3},{"label":"q\u003c\u0026\u003e","count":1}]}]}`
	if string(b1) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b1, want)
	}
	var back Stats
	if err := json.Unmarshal(b1, &back); err != nil {
		t.Fatal(err)
	}
	if b2 := mustJSON(t, &back); !bytes.Equal(b1, b2) {
		t.Errorf("round trip\n%s\n%s", b1, b2)
	}
	m1, err := st.Model()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := back.Model()
	if err != nil {
		t.Fatal(err)
	}
	if describe(m1) != describe(m2) {
		t.Errorf("models differ: %s vs %s", describe(m1), describe(m2))
	}
	if l, _ := m2.Labels("b"); !slices.Equal(l, []string{"\xff\xfe", "", "u"}) {
		t.Errorf("labels after round trip %q", l)
	}
}

func TestStatsUnmarshalErrors(t *testing.T) {
	good := `{"version":1,"label":"y","numeric":["x"],"rows":2,"categorical":[{"column":"a","labels":[{"label":"p","count":2}]}]}`
	var st Stats
	if err := json.Unmarshal([]byte(good), &st); err != nil {
		t.Fatalf("good stats: %v", err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{`"version":1`, `"version":2`, "version 2"},
		{`"rows":2`, `"rows":3`, `counts add up to 2, want rows = 3`},
		{`"rows":2`, `"rows":-1`, "negative"},
		{`"count":2}`, `"count":2},{"label":"p","count":1}`, `label "p" is listed twice`},
		{`"count":2`, `"count":0`, "count 0"},
		{`{"label":"p","count":2}`, `{"count":2}`, "label (or label_base64) is missing"},
		{`{"label":"p","count":2}`, `{"label":"p"}`, "count is missing"},
		{`{"label":"p","count":2}`, `{"label":"p","label_base64":"//4=","count":2}`, "both"},
		{`{"label":"p","count":2}`, `{"label_base64":"cA==","count":2}`, "valid UTF-8"},
		{`"label":"y"`, `"label":""`, "label is empty"},
		{`"column":"a"`, `"column":"x"`, `"x" is already numeric`},
		{`"column":"a"`, `"column":"a","extra":1`, "unknown field"},
		{`"numeric":["x"]`, `"numeric":["x","x"]`, `numeric[1] "x" is already the numeric`},
	} {
		if !strings.Contains(good, tc.old) {
			t.Fatalf("%q not in %s", tc.old, good)
		}
		data := strings.Replace(good, tc.old, tc.new, 1)
		var s Stats
		err := json.Unmarshal([]byte(data), &s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", data, err, tc.want)
		}
	}
}
