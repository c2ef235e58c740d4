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
	m := fitOn(t, spec, rec)
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

// TestAppendRowsSourceTextRuns checks the slots whose texts are copied in
// one piece when they lie side by side in the line, and each way a row's
// texts may not: a quoted field, an integral text (".0" to add), a value
// without a span, in the middle or at the end of the run.
func TestAppendRowsSourceTextRuns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	fields := []arrow.Field{{Name: "sex", Type: arrow.BinaryTypes.String}}
	for _, n := range []string{"x", "y", "z", "rings"} {
		fields = append(fields, arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float64})
	}
	fields = append(fields, arrow.Field{Name: LineColumn, Type: arrow.BinaryTypes.Binary})
	for _, n := range []string{"x", "y", "z", "rings"} {
		fields = append(fields, arrow.Field{Name: TextColumn(n), Type: arrow.PrimitiveTypes.Uint32})
	}
	b := array.NewRecordBuilder(mem, arrow.NewSchema(fields, nil))
	defer b.Release()
	rows := []struct {
		line, sex  string
		x, y, z, l float64
		spans      [4]uint32 // x, y, z, rings
		want       string
	}{
		// Side by side: copied, marked text and all ("0.4550" is no repr).
		{"M,0.4550,0.25,0.125,15", "M", 0.455, 0.25, 0.125, 15,
			[4]uint32{Span(2, 6, false), Span(9, 4, false), Span(14, 5, false), Span(20, 2, true)}, "15.0,1.0,0.4550,0.25,0.125\n"},
		{`F,"0.5",0.25,0.125,7`, "F", 0.5, 0.25, 0.125, 7,
			[4]uint32{Span(3, 3, false), Span(8, 4, false), Span(13, 5, false), Span(19, 1, true)}, "7.0,0.0,0.5,0.25,0.125\n"},
		{"M,0.5,2,0.125,9", "M", 0.5, 2, 0.125, 9,
			[4]uint32{Span(2, 3, false), Span(6, 1, true), Span(8, 5, false), Span(14, 1, true)}, "9.0,1.0,0.5,2.0,0.125\n"},
		{"M,0.5,2.50,0.125,9", "M", 0.5, 2.5, 0.125, 9,
			[4]uint32{Span(2, 3, false), 0, Span(11, 5, false), Span(17, 1, true)}, "9.0,1.0,0.5,2.5,0.125\n"},
		{"M,0.5,0.25,3,9", "M", 0.5, 0.25, 3, 9,
			[4]uint32{Span(2, 3, false), Span(6, 4, false), Span(11, 1, true), Span(13, 1, true)}, "9.0,1.0,0.5,0.25,3.0\n"},
		{"F,0.5,0.25,3.5e-9,9", "F", 0.5, 0.25, 3.5e-9, 9,
			[4]uint32{Span(2, 3, false), Span(6, 4, false), 0, Span(18, 1, true)}, "9.0,0.0,0.5,0.25,3.5e-09\n"},
	}
	want := ""
	for _, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.sex)
		for i, v := range []float64{r.x, r.y, r.z, r.l} {
			b.Field(1 + i).(*array.Float64Builder).Append(v)
			b.Field(6 + i).(*array.Uint32Builder).Append(r.spans[i])
		}
		b.Field(5).(*array.BinaryBuilder).Append([]byte(r.line))
		want += r.want
	}
	rec := b.NewRecord()
	defer rec.Release()
	spec := &Spec{Columns: []Column{{Name: "sex", Type: ColumnString}, {Name: "x", Type: ColumnDouble}, {Name: "y", Type: ColumnDouble},
		{Name: "z", Type: ColumnDouble}, {Name: "rings", Type: ColumnDouble}},
		Categorical: []string{"sex"}, Numeric: []string{"x", "y", "z"}, Label: "rings", Splits: []Split{{Name: "train", Weight: 1}}}
	m := fitOn(t, spec, rec)
	for from := range int64(2) {
		s := rec.NewSlice(from, rec.NumRows())
		out, err := m.Transform(s, mem)
		s.Release()
		if err != nil {
			t.Fatal(err)
		}
		w := want[len(rows[0].want)*int(from):]
		if got := string(AppendAll(nil, out)); got != w {
			t.Errorf("from row %d:\ngot  %q\nwant %q", from, got, w)
		}
		// A buffer with just the room a line needs.
		for r := range int(out.NumRows()) {
			line := rows[int(from)+r].want
			if got := string(AppendRows(make([]byte, 0, len(line)), out, []int{r})); got != line {
				t.Errorf("from row %d, row %d alone: got %q, want %q", from, r, got, line)
			}
		}
		out.Release()
	}
}
