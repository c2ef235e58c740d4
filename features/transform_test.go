package features

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

func abaloneModel(t testing.TB, rec arrow.Record) *Model {
	t.Helper()
	return fitOn(t, abaloneSpec(t), rec)
}

// fitOn returns the model of spec fitted on rec.
func fitOn(t testing.TB, spec *Spec, rec arrow.Record) *Model {
	t.Helper()
	st := NewStats(spec)
	if err := st.Add(rec); err != nil {
		t.Fatal(err)
	}
	m, err := st.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAbaloneGolden fits and transforms the Abalone data and compares every
// output line with the expected output, byte for byte.
func TestAbaloneGolden(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	want, err := os.ReadFile("testdata/abalone.expected.csv")
	if err != nil {
		t.Fatal(err)
	}
	rec := abaloneRecord(t, mem)
	defer rec.Release()
	m := abaloneModel(t, rec)

	out, err := m.Transform(rec, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if out.NumRows() != 4177 || !out.Schema().Equal(m.OutputSchema()) {
		t.Fatalf("output %d rows, schema %v", out.NumRows(), out.Schema())
	}
	if got := out.Column(1).DataType().(*arrow.FixedSizeListType).Len(); got != 9 {
		t.Errorf("features width %d", got)
	}
	got := AppendRows(nil, out, rowsUpTo(int(out.NumRows())))
	compareLines(t, got, want)
	if all := AppendAll(nil, out); !bytes.Equal(all, got) {
		t.Error("AppendAll differs from AppendRows over every row")
	}

	// Rows picked out of order.
	lines := bytes.SplitAfter(want, []byte("\n"))
	pick := []int{4176, 0, 2, 2, 1000}
	var wantPick []byte
	for _, r := range pick {
		wantPick = append(wantPick, lines[r]...)
	}
	compareLines(t, AppendRows([]byte{}, out, pick), wantPick)
}

func rowsUpTo(n int) []int {
	rows := make([]int, n)
	for i := range rows {
		rows[i] = i
	}
	return rows
}

func compareLines(t *testing.T, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	g, w := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; i < len(g) && i < len(w); i++ {
		if !bytes.Equal(g[i], w[i]) {
			t.Fatalf("line %d:\n got %s\nwant %s", i+1, g[i], w[i])
		}
	}
	t.Fatalf("got %d lines, want %d", len(g), len(w))
}

// TestTransformSlicesAndColumnOrder transforms a slice of the data (Arrow
// offsets) from a record whose columns are in another order with an extra
// column, and the output's own slices.
func TestTransformSlicesAndColumnOrder(t *testing.T) {
	mem := checkedMem(t)
	want, err := os.ReadFile("testdata/abalone.expected.csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(want, []byte("\n"))
	rec := abaloneRecord(t, mem)
	defer rec.Release()
	m := abaloneModel(t, rec)

	// Reverse the columns and add an "__offset" column.
	var fields []arrow.Field
	var cols []arrow.Array
	for i := int(rec.NumCols()) - 1; i >= 0; i-- {
		fields = append(fields, rec.Schema().Field(i))
		cols = append(cols, rec.Column(i))
	}
	ob := array.NewInt64Builder(mem)
	for i := 0; i < int(rec.NumRows()); i++ {
		ob.Append(int64(i) * 50)
	}
	off := ob.NewArray()
	ob.Release()
	defer off.Release()
	fields = append(fields, arrow.Field{Name: "__offset", Type: arrow.PrimitiveTypes.Int64})
	cols = append(cols, off)
	shuffled := array.NewRecord(arrow.NewSchema(fields, nil), cols, rec.NumRows())
	defer shuffled.Release()

	part := shuffled.NewSlice(1000, 1100)
	defer part.Release()
	out, err := m.Transform(part, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	compareLines(t, AppendAll(nil, out), bytes.Join(lines[1000:1100], nil))

	// A slice of the output prints the matching lines.
	sub := out.NewSlice(10, 20)
	defer sub.Release()
	compareLines(t, AppendRows(nil, sub, []int{0, 9}), append(append([]byte{}, lines[1010]...), lines[1019]...))
}

func TestTransformErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	spec := smallSpec(t) // columns a string, x double, b string, y double; categorical b, a; numeric x; label y
	m, err := ReadModel([]byte(`{"version":1,"label":"y","numeric":["x"],"rows":4,"categorical":[` +
		`{"column":"b","labels":[{"label":"u","count":3},{"label":"v","count":1}]},` +
		`{"column":"a","labels":[{"label":"p","count":2},{"label":"q","count":1},{"label":"r","count":1}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(spec); err != nil {
		t.Fatal(err)
	}
	ok := []any{"p", 1.0, "u", 2.0}
	for _, tc := range []struct {
		name string
		rows [][]any
		want RowError
	}{
		{"unseen label", [][]any{ok, ok, {"s", 1.0, "u", 2.0}}, RowError{Row: 2, Column: "a", Value: "s", Reason: ReasonUnseen}},
		{"label with a space", [][]any{{"p", 1.0, " u", 2.0}}, RowError{Row: 0, Column: "b", Value: " u", Reason: ReasonUnseen}},
		{"NaN feature", [][]any{ok, {"p", math.NaN(), "u", 2.0}}, RowError{Row: 1, Column: "x", Value: "NaN", Reason: ReasonNaN}},
		{"NaN label", [][]any{ok, ok, ok, {"p", 1.0, "u", math.NaN()}}, RowError{Row: 3, Column: "y", Value: "NaN", Reason: ReasonNaN}},
		{"null feature", [][]any{{"p", nil, "u", 2.0}}, RowError{Row: 0, Column: "x", Reason: ReasonNull}},
		{"null label", [][]any{ok, {"p", 1.0, "u", nil}}, RowError{Row: 1, Column: "y", Reason: ReasonNull}},
		{"null category", [][]any{ok, {nil, 1.0, "u", 2.0}}, RowError{Row: 1, Column: "a", Reason: ReasonNull}},
		// The first bad row wins, whichever column comes first in the
		// vector; in one row the label, then categorical, then numeric.
		{"first row wins", [][]any{ok, {"p", math.NaN(), "u", 2.0}, {"z", 1.0, "u", 2.0}}, RowError{Row: 1, Column: "x", Value: "NaN", Reason: ReasonNaN}},
		{"first row wins 2", [][]any{ok, {"z", 1.0, "u", 2.0}, {"p", math.NaN(), "u", 2.0}}, RowError{Row: 1, Column: "a", Value: "z", Reason: ReasonUnseen}},
		{"same row", [][]any{{"z", math.NaN(), "w", math.NaN()}}, RowError{Row: 0, Column: "y", Value: "NaN", Reason: ReasonNaN}},
		{"same row 2", [][]any{{"z", math.NaN(), "w", 1.0}}, RowError{Row: 0, Column: "b", Value: "w", Reason: ReasonUnseen}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := recordOf(t, mem, spec.Schema(), tc.rows)
			defer rec.Release()
			out, err := m.Transform(rec, mem)
			if err == nil {
				out.Release()
				t.Fatal("Transform succeeded")
			}
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T) is not a *RowError", err, err)
			}
			if *re != tc.want {
				t.Errorf("RowError %+v, want %+v", *re, tc.want)
			}
			if !strings.Contains(err.Error(), "row ") || !strings.Contains(err.Error(), tc.want.Column) {
				t.Errorf("message %q", err)
			}
		})
	}

	// Schema problems are plain errors.
	for _, tc := range []struct {
		fields []arrow.Field
		row    []any
		want   string
	}{
		{[]arrow.Field{{Name: "a", Type: arrow.BinaryTypes.String}, {Name: "b", Type: arrow.BinaryTypes.String}, {Name: "y", Type: arrow.PrimitiveTypes.Float64}}, []any{"p", "u", 1.0}, `no column "x"`},
		{[]arrow.Field{{Name: "a", Type: arrow.BinaryTypes.String}, {Name: "b", Type: arrow.BinaryTypes.String}, {Name: "x", Type: arrow.PrimitiveTypes.Int64}, {Name: "y", Type: arrow.PrimitiveTypes.Float64}}, []any{"p", "u", int64(1), 1.0}, `column "x" is int64, want float64`},
		{[]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Float64}, {Name: "b", Type: arrow.BinaryTypes.String}, {Name: "x", Type: arrow.PrimitiveTypes.Float64}, {Name: "y", Type: arrow.PrimitiveTypes.Float64}}, []any{1.0, "u", 1.0, 1.0}, `column "a" is float64, want a string column`},
		{[]arrow.Field{{Name: "a", Type: arrow.BinaryTypes.String}, {Name: "b", Type: arrow.BinaryTypes.String}, {Name: "x", Type: arrow.PrimitiveTypes.Float64}, {Name: "x", Type: arrow.PrimitiveTypes.Float64}, {Name: "y", Type: arrow.PrimitiveTypes.Float64}}, []any{"p", "u", 1.0, 1.0, 1.0}, `2 columns called "x"`},
	} {
		rec := recordOf(t, mem, arrow.NewSchema(tc.fields, nil), [][]any{tc.row})
		out, err := m.Transform(rec, mem)
		rec.Release()
		if err == nil {
			out.Release()
			t.Errorf("Transform(%v) succeeded", tc.fields)
			continue
		}
		var re *RowError
		if errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Transform(%v): %v, want %q", tc.fields, err, tc.want)
		}
	}
	var zero Model
	if _, err := zero.Transform(nil, mem); err == nil {
		t.Error("zero Model transformed")
	}
}

func TestTransformEncoding(t *testing.T) {
	mem := checkedMem(t)
	spec := smallSpec(t)
	m, err := ReadModel([]byte(`{"version":1,"label":"y","numeric":["x"],"rows":4,"categorical":[` +
		`{"column":"b","labels":[{"label":"u","count":3},{"label":"v","count":1}]},` +
		`{"column":"a","labels":[{"label":"p","count":2},{"label":"q","count":1},{"label":"r","count":1}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rec := recordOf(t, mem, spec.Schema(), [][]any{
		{"p", 1.5, "u", 2.0},
		{"q", -0.0 * 1, "v", 1e22},
		{"r", math.Inf(1), "u", 1e-05},
		{"r", math.Copysign(0, -1), "v", math.Inf(-1)},
		{"q", 1e16, "v", 0.0},
	})
	defer rec.Release()
	out, err := m.Transform(rec, nil) // nil: the default allocator
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	// Vector: b one-hot (1 slot), a one-hot (2 slots), x.
	want := "2.0,1.0,1.0,0.0,1.5\n" +
		"1e+22,0.0,0.0,1.0,0.0\n" +
		"1e-05,1.0,0.0,0.0,inf\n" +
		"-inf,0.0,0.0,0.0,-0.0\n" +
		"0.0,0.0,0.0,1.0,1e+16\n"
	if got := string(AppendAll(nil, out)); got != want {
		t.Errorf("lines\n%s\nwant\n%s", got, want)
	}
}

func TestTransformEmpty(t *testing.T) {
	mem := checkedMem(t)
	full := abaloneSpec(t)
	empty := recordOf(t, mem, full.Schema(), nil)
	defer empty.Release()
	am, err := ReadModel([]byte(abaloneModelJSON))
	if err != nil {
		t.Fatal(err)
	}
	eo, err := am.Transform(empty, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer eo.Release()
	if eo.NumRows() != 0 || len(AppendAll(nil, eo)) != 0 {
		t.Errorf("empty input gave %d rows", eo.NumRows())
	}
}

// TestWidthZero: a single label and no numeric column leave no feature;
// that is an error, not an empty vector.
func TestWidthZero(t *testing.T) {
	mem := checkedMem(t)
	spec, err := ParseSpec([]byte(`{"columns":[{"name":"c","type":"string"},{"name":"y","type":"double"}],
		"categorical":["c"],"label":"y","splits":[{"name":"s","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rec := recordOf(t, mem, spec.Schema(), [][]any{{"only", 3.0}, {"only", 4.0}})
	defer rec.Release()
	st := NewStats(spec)
	if err := st.Add(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Model(); err == nil || !strings.Contains(err.Error(), "feature vector would be empty") {
		t.Errorf("Model with width 0: %v", err)
	}
	_, err = ReadModel([]byte(`{"version":1,"label":"y","numeric":[],"rows":1,"categorical":[{"column":"c","labels":[{"label":"only","count":1}]}]}`))
	if err == nil || !strings.Contains(err.Error(), "feature vector would be empty") {
		t.Errorf("ReadModel with width 0: %v", err)
	}
}

func TestAppendRowsNoAlloc(t *testing.T) {
	mem := checkedMem(t)
	rec := abaloneRecord(t, mem)
	defer rec.Release()
	out, err := abaloneModel(t, rec).Transform(rec, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	rows := rowsUpTo(int(out.NumRows()))
	buf := AppendRows(nil, out, rows)
	allocs := testing.AllocsPerRun(20, func() {
		buf = AppendRows(buf[:0], out, rows)
	})
	if allocs != 0 {
		t.Errorf("AppendRows over %d rows: %v allocations per call", len(rows), allocs)
	}
}

func BenchmarkTransformAppendRows(b *testing.B) {
	mem := memory.NewGoAllocator()
	rec := abaloneRecord(b, mem)
	defer rec.Release()
	m := abaloneModel(b, rec)
	rows := rowsUpTo(int(rec.NumRows()))
	want, err := os.ReadFile("testdata/abalone.expected.csv")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, len(want))
	b.SetBytes(int64(len(want)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := m.Transform(rec, mem)
		if err != nil {
			b.Fatal(err)
		}
		buf = AppendRows(buf[:0], out, rows)
		out.Release()
	}
	if !bytes.Equal(buf, want) {
		b.Fatal("output differs from the expected lines")
	}
}

func BenchmarkTransform(b *testing.B) {
	mem := memory.NewGoAllocator()
	rec := abaloneRecord(b, mem)
	defer rec.Release()
	m := abaloneModel(b, rec)
	b.SetBytes(rec.NumRows() * 9 * 8)
	b.ReportAllocs()
	for b.Loop() {
		out, err := m.Transform(rec, mem)
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
	}
}

func BenchmarkStatsAdd(b *testing.B) {
	mem := memory.NewGoAllocator()
	rec := abaloneRecord(b, mem)
	defer rec.Release()
	spec := abaloneSpec(b)
	b.ReportAllocs()
	for b.Loop() {
		st := NewStats(spec)
		if err := st.Add(rec); err != nil {
			b.Fatal(err)
		}
	}
}
