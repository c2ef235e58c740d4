package features

import (
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// TestAppendRowsSourceText checks that a number with a span is copied from
// its line (with ".0" after an integral text), one without is formatted,
// a column without spans is formatted, and slices keep their place.
func TestAppendRowsSourceText(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "sex", Type: arrow.BinaryTypes.String},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64},
		{Name: "y", Type: arrow.PrimitiveTypes.Float64},
		{Name: "rings", Type: arrow.PrimitiveTypes.Float64},
		{Name: LineColumn, Type: arrow.BinaryTypes.Binary},
		{Name: TextColumn("x"), Type: arrow.PrimitiveTypes.Uint32},
		{Name: TextColumn("rings"), Type: arrow.PrimitiveTypes.Uint32},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"M", "F", "M"}, nil)
	b.Field(1).(*array.Float64Builder).AppendValues([]float64{0.455, 0.5, 1e-5}, nil)
	b.Field(2).(*array.Float64Builder).AppendValues([]float64{0.25, 2, 3}, nil)
	b.Field(3).(*array.Float64Builder).AppendValues([]float64{15, 7, 9}, nil)
	// The texts are marked so the test sees they were copied: "0.4550" is
	// not a repr, but a span vouches for it.
	b.Field(4).(*array.BinaryBuilder).AppendValues([][]byte{[]byte("M,0.4550,0.25,15"), []byte("F,.5,2,7"), []byte("M,1e-05,3,009")}, nil)
	b.Field(5).(*array.Uint32Builder).AppendValues([]uint32{Span(2, 6, false), 0, Span(2, 5, false)}, nil)
	b.Field(6).(*array.Uint32Builder).AppendValues([]uint32{Span(14, 2, true), 0, Span(10, 3, true)}, nil)
	rec := b.NewRecord()
	defer rec.Release()

	spec := &Spec{Columns: []Column{{Name: "sex", Type: ColumnString}, {Name: "x", Type: ColumnDouble}, {Name: "y", Type: ColumnDouble}, {Name: "rings", Type: ColumnDouble}},
		Categorical: []string{"sex"}, Numeric: []string{"x", "y"}, Label: "rings", Splits: []Split{{Name: "train", Weight: 1}}}
	st := NewStats(spec)
	if err := st.Add(rec); err != nil {
		t.Fatal(err)
	}
	m, err := st.Model()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from int64
		want string
	}{
		{0, "15.0,1.0,0.4550,0.25\n7.0,0.0,0.5,2.0\n009.0,1.0,1e-05,3.0\n"},
		{1, "7.0,0.0,0.5,2.0\n009.0,1.0,1e-05,3.0\n"},
	} {
		s := rec.NewSlice(c.from, rec.NumRows())
		out, err := m.Transform(s, mem)
		s.Release()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(AppendAll(nil, out)); got != c.want {
			t.Errorf("from row %d:\ngot  %q\nwant %q", c.from, got, c.want)
		}
		if got := string(AppendRows(nil, out, []int{int(out.NumRows()) - 1})); got != c.want[len(c.want)-len("009.0,1.0,1e-05,3.0\n"):] {
			t.Errorf("from row %d, last row: got %q", c.from, got)
		}
		out.Release()
	}
}
