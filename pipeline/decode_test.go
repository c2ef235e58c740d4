package pipeline

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

func abaloneSpec() *features.Spec {
	spec := &features.Spec{
		Columns:     []features.Column{{Name: "sex", Type: features.ColumnString}},
		Categorical: []string{"sex"},
		Label:       "rings",
		Splits:      []features.Split{{Name: "train", Weight: 0.8}, {Name: "validation", Weight: 0.2}},
	}
	for _, n := range []string{"length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight", "rings"} {
		spec.Columns = append(spec.Columns, features.Column{Name: n, Type: features.ColumnDouble})
		if n != "rings" {
			spec.Numeric = append(spec.Numeric, n)
		}
	}
	return spec
}

func newChecked(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func TestDecoderAbalone(t *testing.T) {
	spec := abaloneSpec()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	mem := newChecked(t)
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	expected, err := os.ReadFile("testdata/abalone.expected.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(string(expected), "\n"), "\n")

	dec := newDecoder(spec, mem, nil)
	defer dec.Release()
	lr := newLineReader(bytes.NewReader(data), 0, int64(len(data)), nil)
	var recs []arrow.Record
	var wantOffsets []int64
	for {
		line, off, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if fe := dec.Add(line, off); fe != nil {
			t.Fatalf("offset %d: %v", off, fe)
		}
		wantOffsets = append(wantOffsets, off)
		if dec.Len() == 1000 {
			recs = append(recs, dec.Flush())
		}
	}
	recs = append(recs, dec.Flush())
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()

	counts := map[string]int{}
	row := 0
	for _, rec := range recs {
		if !rec.Schema().Equal(arrow.NewSchema(append(spec.Schema().Fields(), arrow.Field{Name: "__offset", Type: arrow.PrimitiveTypes.Int64}), nil)) {
			t.Fatalf("schema %v", rec.Schema())
		}
		sex := rec.Column(0).(*array.String)
		offs := rec.Column(9).(*array.Int64)
		for r := 0; r < int(rec.NumRows()); r++ {
			counts[sex.Value(r)]++
			if offs.Value(r) != wantOffsets[row] {
				t.Fatalf("row %d offset %d, want %d", row, offs.Value(r), wantOffsets[row])
			}
			// The expected output line is rings, two one-hot slots, then the
			// seven numeric columns.
			exp := strings.Split(want[row], ",")
			for c := 1; c <= 8; c++ {
				w := exp[0]
				if c < 8 {
					w = exp[c+2]
				}
				wv, _ := strconv.ParseFloat(w, 64)
				if got := rec.Column(c).(*array.Float64).Value(r); got != wv {
					t.Fatalf("row %d column %d = %v, want %v", row, c, got, wv)
				}
			}
			row++
		}
	}
	if row != 4177 || counts["M"] != 1528 || counts["I"] != 1342 || counts["F"] != 1307 {
		t.Errorf("rows %d, counts %v", row, counts)
	}
	if dec.Len() != 0 {
		t.Errorf("Len after Flush = %d", dec.Len())
	}
}

func TestDecoderErrors(t *testing.T) {
	long := strings.Repeat("9", 150)
	tests := []struct {
		line string
		want fieldError
	}{
		{"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15", fieldError{Value: "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15", Reason: "expected 9 fields, found 8"}},
		{"M,1,2,3,4,5,6,7,8,9", fieldError{Value: "M,1,2,3,4,5,6,7,8,9", Reason: "expected 9 fields, found 10"}},
		{"M,1,2,3,4,5,6,7,8,", fieldError{Value: "M,1,2,3,4,5,6,7,8,", Reason: "expected 9 fields, found 10"}},
		{",1,2,3,4,5,6,7,8", fieldError{Column: "sex", Field: 1, Value: "", Reason: "empty value"}},
		{`"",1,2,3,4,5,6,7,8`, fieldError{Column: "sex", Field: 1, Value: "", Reason: "empty value"}},
		{"M,1,,3,4,5,6,7,8", fieldError{Column: "diameter", Field: 3, Value: "", Reason: "empty number"}},
		{"M,1,2, \t ,4,5,6,7,8", fieldError{Column: "height", Field: 4, Value: " \t ", Reason: "empty number"}},
		{"M,1,2,3,abc,5,6,7,8", fieldError{Column: "whole_weight", Field: 5, Value: "abc", Reason: "not a number"}},
		{"M,1,2,3,4,1_0,6,7,8", fieldError{Column: "shucked_weight", Field: 6, Value: "1_0", Reason: "not a number"}},
		{"M,1,2,3,4,5,6,7,NaN", fieldError{Column: "rings", Field: 9, Value: "NaN", Reason: "NaN is not allowed"}},
		{"M,1,2,3,4,5,6, nan ,8", fieldError{Column: "shell_weight", Field: 8, Value: " nan ", Reason: "NaN is not allowed"}},
		{"M,1,2,3,4,5,6,7," + long + "x", fieldError{Column: "rings", Field: 9, Value: long[:100] + "...", Reason: "not a number"}},
		{"M\xff,1,2,3,4,5,6,7,8", fieldError{Value: "M\xff,1,2,3,4,5,6,7,8", Reason: "invalid UTF-8"}},
		{`"M,1,2,3,4,5,6,7,8`, fieldError{Field: 1, Value: `"M,1,2,3,4,5,6,7,8`, Reason: "unterminated quoted field"}},
		{`M,"1"x,2,3,4,5,6,7,8`, fieldError{Field: 2, Value: `"1"x,2,3,4,5,6,7,8`, Reason: "text after the closing quote of a quoted field"}},
	}
	mem := newChecked(t)
	dec := newDecoder(abaloneSpec(), mem, nil)
	defer dec.Release()
	for _, tt := range tests {
		fe := dec.Add([]byte(tt.line), 7)
		if fe == nil {
			t.Errorf("%q: no error", tt.line)
			continue
		}
		if *fe != tt.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.line, *fe, tt.want)
		}
		if fe.Error() == "" {
			t.Errorf("empty message")
		}
		if dec.Len() != 0 {
			t.Fatalf("%q: a bad line added a row", tt.line)
		}
	}
	// A bad line leaves nothing behind: the next good line is row 0.
	if fe := dec.Add([]byte("F,1,2,3,4,5,6,7,8"), 99); fe != nil {
		t.Fatal(fe)
	}
	rec := dec.Flush()
	defer rec.Release()
	if rec.NumRows() != 1 || rec.Column(0).(*array.String).Value(0) != "F" || rec.Column(9).(*array.Int64).Value(0) != 99 {
		t.Errorf("record after errors: %v", rec)
	}
	for c := 0; c < int(rec.NumCols()); c++ {
		if rec.Column(c).Len() != 1 {
			t.Errorf("column %d has %d values", c, rec.Column(c).Len())
		}
	}
}

func TestDecoderValues(t *testing.T) {
	mem := newChecked(t)
	dec := newDecoder(abaloneSpec(), mem, nil)
	defer dec.Release()
	lines := []string{
		" M, 1 ,2\t,\t3,inf,-Inf,1e400,-0,0x1p-2",
		`"a,""b""",1,2,3,4,5,6,7,8`,
		`"M",1,2,3,4,5,6,7,"8.5"`,
		`x"y,1,2,3,4,5,6,7,8`,
		`é,1e-5,2,3,4,5,6,7,1E+2`,
	}
	for i, l := range lines {
		if fe := dec.Add([]byte(l), int64(100*i)); fe != nil {
			t.Fatalf("%q: %v", l, fe)
		}
	}
	rec := dec.Flush()
	defer rec.Release()
	sex := rec.Column(0).(*array.String)
	wantSex := []string{" M", `a,"b"`, "M", `x"y`, "é"}
	for i, w := range wantSex {
		if sex.Value(i) != w {
			t.Errorf("row %d sex %q, want %q", i, sex.Value(i), w)
		}
	}
	row0 := []float64{1, 2, 3, math.Inf(1), math.Inf(-1), math.Inf(1), 0, 0.25}
	for c, w := range row0 {
		got := rec.Column(c + 1).(*array.Float64).Value(0)
		if got != w {
			t.Errorf("row 0 column %d = %v, want %v", c+1, got, w)
		}
	}
	if v := rec.Column(7).(*array.Float64).Value(0); !math.Signbit(v) {
		t.Errorf("-0 lost its sign: %v", v)
	}
	if v := rec.Column(8).(*array.Float64).Value(2); v != 8.5 {
		t.Errorf("quoted number %v", v)
	}
	if v := rec.Column(1).(*array.Float64).Value(4); v != 1e-5 {
		t.Errorf("1e-5 -> %v", v)
	}
	if rec.Column(9).(*array.Int64).Value(4) != 400 {
		t.Errorf("offset column %v", rec.Column(9))
	}
	// An empty flush is a valid zero-row record.
	empty := dec.Flush()
	defer empty.Release()
	if empty.NumRows() != 0 || empty.NumCols() != 10 {
		t.Errorf("empty flush %v", empty)
	}
}

func TestDecoderFitOnly(t *testing.T) {
	mem := newChecked(t)
	spec := abaloneSpec()
	dec := newDecoder(spec, mem, &decodeOptions{FitOnly: true})
	defer dec.Release()
	want := arrow.NewSchema(append(spec.FitSchema().Fields(), arrow.Field{Name: "__offset", Type: arrow.PrimitiveTypes.Int64}), nil)
	if !dec.Schema().Equal(want) {
		t.Fatalf("schema %v, want %v", dec.Schema(), want)
	}
	// Numbers are not parsed: a bad one does not fail the fit pass.
	if fe := dec.Add([]byte("M,x,,NaN,4,5,6,7,8"), 3); fe != nil {
		t.Fatal(fe)
	}
	// The field count, the categorical values and UTF-8 are still checked.
	if fe := dec.Add([]byte("M,1,2"), 0); fe == nil || fe.Reason != "expected 9 fields, found 3" {
		t.Errorf("got %v", fe)
	}
	if fe := dec.Add([]byte(",1,2,3,4,5,6,7,8"), 0); fe == nil || fe.Column != "sex" {
		t.Errorf("got %v", fe)
	}
	if fe := dec.Add([]byte("M,1,2,3,4,5,6,7,\xc3"), 0); fe == nil || fe.Reason != "invalid UTF-8" {
		t.Errorf("got %v", fe)
	}
	rec := dec.Flush()
	defer rec.Release()
	if rec.NumCols() != 2 || rec.NumRows() != 1 || rec.Column(0).(*array.String).Value(0) != "M" || rec.Column(1).(*array.Int64).Value(0) != 3 {
		t.Errorf("record %v", rec)
	}
}

// A spec with columns the features do not use, declared in a different order.
func TestDecoderFitOnlyColumnOrder(t *testing.T) {
	mem := newChecked(t)
	spec := &features.Spec{
		Columns: []features.Column{
			{Name: "b", Type: features.ColumnString},
			{Name: "y", Type: features.ColumnDouble},
			{Name: "id", Type: features.ColumnString},
			{Name: "a", Type: features.ColumnString},
		},
		Categorical: []string{"a", "b"},
		Label:       "y",
	}
	dec := newDecoder(spec, mem, &decodeOptions{FitOnly: true})
	defer dec.Release()
	if fe := dec.Add([]byte("B1,zz,,A1"), 0); fe != nil {
		t.Fatal(fe)
	}
	rec := dec.Flush()
	defer rec.Release()
	if rec.ColumnName(0) != "b" || rec.ColumnName(1) != "a" || rec.Column(0).(*array.String).Value(0) != "B1" || rec.Column(1).(*array.String).Value(0) != "A1" {
		t.Errorf("record %v", rec)
	}
}

func TestLooksLikeHeader(t *testing.T) {
	spec := abaloneSpec()
	tests := []struct {
		line string
		want bool
	}{
		{"sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings", true},
		{"Sex, Length ,DIAMETER,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings\t", true},
		{`"sex","length",diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings`, true},
		{"sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight", false},
		{"sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,rings,shell_weight", false},
		{"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15", false},
		{"", false},
		{`"sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings`, false},
	}
	for _, tt := range tests {
		if got := looksLikeHeader(spec, []byte(tt.line)); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestShorten(t *testing.T) {
	if got := shorten([]byte(strings.Repeat("é", 60))); got != strings.Repeat("é", 50)+"..." {
		t.Errorf("got %q", got)
	}
	if got := shorten([]byte("a" + strings.Repeat("é", 60))); got != "a"+strings.Repeat("é", 49)+"..." {
		t.Errorf("got %q", got)
	}
}

func BenchmarkDecoder(b *testing.B) {
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		b.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	for _, fit := range []bool{false, true} {
		name := "full"
		if fit {
			name = "fit"
		}
		b.Run(name, func(b *testing.B) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			dec := newDecoder(abaloneSpec(), mem, &decodeOptions{FitOnly: fit})
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				for i, l := range lines {
					if fe := dec.Add(l, int64(i)); fe != nil {
						b.Fatal(fe)
					}
					if dec.Len() == 8192 {
						dec.Flush().Release()
					}
				}
			}
			dec.Flush().Release()
			dec.Release()
			mem.AssertSize(b, 0)
		})
	}
}

// sizeLog is an allocator that notes the size of every allocation.
type sizeLog struct {
	memory.Allocator
	sizes []int
}

func (a *sizeLog) Allocate(n int) []byte {
	a.sizes = append(a.sizes, n)
	return a.Allocator.Allocate(n)
}

func (a *sizeLog) Reallocate(n int, b []byte) []byte {
	a.sizes = append(a.sizes, n)
	return a.Allocator.Reallocate(n, b)
}

// TestDecoderFirstBatchLines: a batch's lines buffer starts large enough
// for the hinted rows at about the first line's length, rather than
// doubling from 64 KiB, and no larger than firstBatchLines for a long
// first line.
func TestDecoderFirstBatchLines(t *testing.T) {
	for _, tc := range []struct {
		name      string
		first     string
		most, max int // the largest allocation, at least and at most
	}{
		{"short lines", "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15", 256 << 10, 512 << 10},
		{"a long first line", "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15" + strings.Repeat(" ", 1<<10), firstBatchLines, firstBatchLines},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := &sizeLog{Allocator: newChecked(t)}
			dec := newDecoder(abaloneSpec(), mem, &decodeOptions{Text: true, Rows: 8192})
			defer dec.Release()
			line := "F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21,9"
			if err := dec.Add([]byte(tc.first), 0); err != nil {
				t.Fatal(err)
			}
			for i := 1; i < 8192; i++ {
				if err := dec.Add([]byte(line), int64(i)); err != nil {
					t.Fatal(err)
				}
			}
			rec := dec.Flush()
			defer rec.Release()
			if top := slices.Max(mem.sizes); top < tc.most || top > tc.max {
				t.Errorf("largest allocation %d bytes, want %d to %d", top, tc.most, tc.max)
			}
			// Every column but the lines takes 64 KiB or less (8192
			// numbers, spans, offsets); the lines take one allocation,
			// not a chain of doublings.
			large := 0
			for _, n := range mem.sizes {
				if n > 64<<10 {
					large++
				}
			}
			if large != 1 {
				t.Errorf("%d allocations over 64 KiB (%v), want one, the lines'", large, mem.sizes)
			}
		})
	}
}
