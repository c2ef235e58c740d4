package format_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	pqformat "github.com/parquet-go/parquet-go/format"

	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/format"
)

// job is a fitted model and the transform of a batch by it.
type job struct {
	model *features.Model
	out   arrow.Record
}

// abalone fits the model of the Abalone spec on the bundled sample and
// transforms it.
func abalone(t testing.TB, mem memory.Allocator) job {
	t.Helper()
	data, err := os.ReadFile("../cmd/shardprep/sample/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("../cmd/shardprep/sample/abalone.spec.json")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return fit(t, mem, string(spec), lines)
}

// fit fits the model of spec on rows of CSV cells and transforms them.
func fit(t testing.TB, mem memory.Allocator, specJSON string, rows [][]string) job {
	t.Helper()
	spec, err := features.ParseSpec([]byte(specJSON))
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(mem, spec.Schema())
	defer b.Release()
	for _, row := range rows {
		for j, cell := range row {
			switch fb := b.Field(j).(type) {
			case *array.StringBuilder:
				fb.Append(cell)
			case *array.Float64Builder:
				v, err := strconv.ParseFloat(cell, 64)
				if err != nil {
					t.Fatal(err)
				}
				fb.Append(v)
			}
		}
	}
	rec := b.NewRecord()
	defer rec.Release()
	stats := features.NewStats(spec)
	if err := stats.Add(rec); err != nil {
		t.Fatal(err)
	}
	model, err := stats.Model()
	if err != nil {
		t.Fatal(err)
	}
	out, err := model.Transform(rec, mem)
	if err != nil {
		t.Fatal(err)
	}
	return job{model: model, out: out}
}

// oddValues is a job whose numbers include signed zeros, tiny, huge and
// infinite values, and a label of one-hot slots named with a comma.
func oddValues(t *testing.T, mem memory.Allocator) job {
	spec := `{"columns": [{"name": "kind", "type": "string"}, {"name": "x", "type": "double"}, {"name": "y", "type": "double"}, {"name": "target", "type": "double"}],
	  "categorical": ["kind"], "numeric": ["x", "y"], "label": "target",
	  "splits": [{"name": "train", "weight": 1}]}`
	vals := []string{"0", "-0", "1e-05", "1e16", "0.1", "-2.5", "inf", "-inf", "123456789.125", "5e-324", "1.7976931348623157e308"}
	kinds := []string{"a,b", "c\"d", "e", "a,b"}
	var rows [][]string
	for i := range 200 {
		rows = append(rows, []string{kinds[i%len(kinds)], vals[i%len(vals)], vals[(i*7+3)%len(vals)], vals[(i*5+1)%len(vals)]})
	}
	return fit(t, mem, spec, rows)
}

func allRows(rec arrow.Record) []int {
	rows := make([]int, rec.NumRows())
	for i := range rows {
		rows[i] = i
	}
	return rows
}

// encode writes rows of j in format f, in batches of at most chunk rows.
func encode(t *testing.T, f features.OutputFormat, j job, rows []int, chunk int, opts *format.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	e, err := format.NewEncoder(f, &buf, j.model.LabelColumn(), j.model.SlotNames(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for len(rows) > 0 {
		n := min(chunk, len(rows))
		if err := e.Encode(j.out, rows[:n]); err != nil {
			t.Fatal(err)
		}
		rows = rows[n:]
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// expected returns the label and slot values of rows of j, read from the
// transform's columns.
func expected(j job, rows []int) [][]float64 {
	labels := j.out.Column(0).(*array.Float64).Float64Values()
	list := j.out.Column(1).(*array.FixedSizeList)
	values := list.ListValues().(*array.Float64).Float64Values()
	var want [][]float64
	for _, r := range rows {
		start, end := list.ValueOffsets(r)
		want = append(want, append([]float64{labels[r]}, values[start:end]...))
	}
	return want
}

// parseFloat reads a number as Python's float() reads repr's text.
func parseFloat(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("number %q: %v", s, err)
	}
	return v
}

func sameBits(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

// someRows picks rows in a shuffled order with repeats, as a split's
// draws would visit a batch, plus every row once.
func someRows(n int) []int {
	r := rand.New(rand.NewPCG(1, 2))
	rows := r.Perm(n)
	for range n / 3 {
		rows = append(rows, r.IntN(n))
	}
	return rows
}

func jobs(t *testing.T, mem memory.Allocator) map[string]job {
	return map[string]job{"abalone": abalone(t, mem), "odd values": oddValues(t, mem)}
}

func TestCSVIsTheTextLinesUnderAHeader(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	for name, j := range jobs(t, mem) {
		t.Run(name, func(t *testing.T) {
			defer j.out.Release()
			rows := someRows(int(j.out.NumRows()))
			text := encode(t, features.FormatText, j, rows, 100, nil)
			got := encode(t, features.FormatCSV, j, rows, 100, nil)
			header, body, _ := bytes.Cut(got, []byte("\n"))
			if !bytes.Equal(body, text) {
				t.Fatalf("csv body differs from the text lines")
			}
			r := csv.NewReader(bytes.NewReader(got))
			recs, err := r.ReadAll()
			if err != nil {
				t.Fatalf("csv does not parse: %v", err)
			}
			wantHeader := append([]string{j.model.LabelColumn()}, j.model.SlotNames()...)
			if !slices.Equal(recs[0], wantHeader) {
				t.Fatalf("header %q (line %q), want %q", recs[0], header, wantHeader)
			}
			want := expected(j, rows)
			if len(recs)-1 != len(want) {
				t.Fatalf("%d rows, want %d", len(recs)-1, len(want))
			}
			for i, rec := range recs[1:] {
				got := make([]float64, len(rec))
				for k, s := range rec {
					got[k] = parseFloat(t, s)
				}
				if !sameBits(got, want[i]) {
					t.Fatalf("row %d: %v, want %v", i, got, want[i])
				}
			}
		})
	}
}

func TestOddSlotNamesAreQuotedInTheHeader(t *testing.T) {
	j := oddValues(t, memory.DefaultAllocator)
	defer j.out.Release()
	got := encode(t, features.FormatCSV, j, nil, 1, nil)
	// The labels by count: "a,b" (100), then "c\"d" and "e" (50 each, by
	// byte order); the last is dropped.
	if want := "target,\"kind_vec_a,b\",\"kind_vec_c\"\"d\",x,y\n"; string(got) != want {
		t.Fatalf("empty csv part = %q, want %q", got, want)
	}
}

// readLibSVM parses libsvm lines independently: label, then 1-based
// index:value pairs in increasing index order.
func readLibSVM(t *testing.T, data []byte, width int) [][]float64 {
	t.Helper()
	var rows [][]float64
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		fields := strings.Split(line, " ")
		row := make([]float64, 1+width)
		row[0] = parseFloat(t, fields[0])
		last := 0
		for _, f := range fields[1:] {
			is, vs, ok := strings.Cut(f, ":")
			idx, err := strconv.Atoi(is)
			if !ok || err != nil || idx <= last || idx > width {
				t.Fatalf("line %d: bad pair %q after index %d", i+1, f, last)
			}
			v := parseFloat(t, vs)
			if v == 0 {
				t.Fatalf("line %d: a zero is written: %q", i+1, f)
			}
			row[idx], last = v, idx
		}
		rows = append(rows, row)
	}
	return rows
}

func TestLibSVMReadsBackToTheSameNumbers(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	for name, j := range jobs(t, mem) {
		t.Run(name, func(t *testing.T) {
			defer j.out.Release()
			rows := someRows(int(j.out.NumRows()))
			got := readLibSVM(t, encode(t, features.FormatLibSVM, j, rows, 1000, nil), j.model.Width())
			want := expected(j, rows)
			for i := range want {
				for k, v := range want[i] {
					if k > 0 && v == 0 {
						want[i][k] = 0 // -0.0 is left out, and so reads back as 0
					}
				}
				if !sameBits(got[i], want[i]) {
					t.Fatalf("row %d: %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestLibSVMLineLayout(t *testing.T) {
	j := abalone(t, memory.DefaultAllocator)
	defer j.out.Release()
	// The sample's first line: M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15
	got := string(encode(t, features.FormatLibSVM, j, []int{0}, 1, nil))
	if want := "15.0 1:1.0 3:0.455 4:0.365 5:0.095 6:0.514 7:0.2245 8:0.101 9:0.15\n"; got != want {
		t.Fatalf("libsvm line %q, want %q", got, want)
	}
}

// parquetFile opens data with parquet-go, a reader independent of the
// writer, after checking the file's magic numbers.
func parquetFile(t *testing.T, data []byte) *pq.File {
	t.Helper()
	if len(data) < 12 || string(data[:4]) != "PAR1" || string(data[len(data)-4:]) != "PAR1" {
		t.Fatalf("no PAR1 magic at both ends of %d bytes", len(data))
	}
	f, err := pq.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("parquet-go cannot open the part: %v", err)
	}
	return f
}

// parquetRows reads every row of f as float64s, through parquet-go.
func parquetRows(t *testing.T, f *pq.File) [][]float64 {
	t.Helper()
	r := pq.NewReader(f)
	defer r.Close()
	var rows [][]float64
	buf := make([]pq.Row, 64)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			vals := make([]float64, len(row))
			for _, v := range row {
				vals[v.Column()] = v.Double()
			}
			rows = append(rows, vals)
		}
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// checkParquetLayout checks the footer: one required double column per
// name, in order, every column chunk snappy-compressed, row groups of
// groupRows rows but the last, rows rows in all.
func checkParquetLayout(t *testing.T, f *pq.File, names []string, rows, groupRows int) {
	t.Helper()
	md := f.Metadata()
	leaves := md.Schema[1:]
	if len(leaves) != len(names) {
		t.Fatalf("%d columns, want %d", len(leaves), len(names))
	}
	for i, el := range leaves {
		if el.Name != names[i] || el.Type != thrift.New(pqformat.Double) || el.RepetitionType != thrift.New(pqformat.Required) {
			t.Fatalf("column %d: %s, want required double %q", i, el.Name, names[i])
		}
	}
	if md.NumRows != int64(rows) {
		t.Fatalf("footer says %d rows, want %d", md.NumRows, rows)
	}
	wantGroups := (rows + groupRows - 1) / groupRows
	if len(md.RowGroups) != wantGroups {
		t.Fatalf("%d row groups, want %d", len(md.RowGroups), wantGroups)
	}
	for g, rg := range md.RowGroups {
		if want := min(groupRows, rows-g*groupRows); rg.NumRows != int64(want) {
			t.Fatalf("row group %d: %d rows, want %d", g, rg.NumRows, want)
		}
		for c, cc := range rg.Columns {
			if cc.MetaData.Codec != pqformat.Snappy {
				t.Fatalf("row group %d column %d: codec %v, want SNAPPY", g, c, cc.MetaData.Codec)
			}
			if cc.MetaData.NumValues != rg.NumRows {
				t.Fatalf("row group %d column %d: %d values for %d rows", g, c, cc.MetaData.NumValues, rg.NumRows)
			}
		}
	}
}

func TestParquetReadsBackWithAnotherReader(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	for name, j := range jobs(t, mem) {
		t.Run(name, func(t *testing.T) {
			defer j.out.Release()
			cols := format.Columns(j.model.LabelColumn(), j.model.SlotNames())
			// Row groups of 100 rows, filled across Encode calls of 37.
			groupBytes := 100 * 8 * len(cols)
			rows := someRows(int(j.out.NumRows()))
			data := encode(t, features.FormatParquet, j, rows, 37, &format.Options{RowGroupBytes: groupBytes, Allocator: mem})
			f := parquetFile(t, data)
			checkParquetLayout(t, f, cols, len(rows), 100)
			got, want := parquetRows(t, f), expected(j, rows)
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for i := range want {
				if !sameBits(got[i], want[i]) {
					t.Fatalf("row %d: %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestEmptyParts(t *testing.T) {
	j := abalone(t, memory.DefaultAllocator)
	defer j.out.Release()
	cols := format.Columns(j.model.LabelColumn(), j.model.SlotNames())
	f := parquetFile(t, encode(t, features.FormatParquet, j, nil, 1, nil))
	checkParquetLayout(t, f, cols, 0, 1)
	if got := parquetRows(t, f); len(got) != 0 {
		t.Fatalf("empty part holds %d rows", len(got))
	}
	if got, want := string(encode(t, features.FormatCSV, j, nil, 1, nil)), strings.Join(cols, ",")+"\n"; got != want {
		t.Fatalf("empty csv part %q, want %q", got, want)
	}
	for _, f := range []features.OutputFormat{features.FormatText, features.FormatLibSVM} {
		if got := encode(t, f, j, nil, 1, nil); len(got) != 0 {
			t.Fatalf("empty %s part holds %q", f, got)
		}
	}
}

func TestParquetLinesAreTheTextLines(t *testing.T) {
	j := abalone(t, memory.DefaultAllocator)
	defer j.out.Release()
	rows := someRows(int(j.out.NumRows()))
	data := encode(t, features.FormatParquet, j, rows, 500, &format.Options{RowGroupBytes: 1000 * 80})
	text := encode(t, features.FormatText, j, rows, 500, nil)
	for _, n := range []int{0, 1, 5, 999, 1000, 1001, len(rows), len(rows) + 1} {
		var got bytes.Buffer
		if err := format.ParquetLines(t.Context(), bytes.NewReader(data), n, &got); err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(text), "\n")
		if want := strings.Join(lines[:min(n, len(rows))], ""); got.String() != want {
			t.Fatalf("first %d lines differ: got %d bytes, want %d", n, got.Len(), len(want))
		}
	}
	err := format.ParquetLines(t.Context(), bytes.NewReader(text), 5, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not a parquet file") {
		t.Fatalf("a text part read as parquet: %v", err)
	}
}

func TestEncoderRefusals(t *testing.T) {
	j := abalone(t, memory.DefaultAllocator)
	defer j.out.Release()
	if _, err := format.NewEncoder(features.FormatParquet, io.Discard, "length", j.model.SlotNames(), nil); err == nil || !strings.Contains(err.Error(), `two columns would be named "length"`) {
		t.Fatalf("duplicate column names: %v", err)
	}
	if _, err := format.NewEncoder("json", io.Discard, "rings", j.model.SlotNames(), nil); err == nil {
		t.Fatal("an unknown format was accepted")
	}
	for _, f := range features.OutputFormats {
		e, err := format.NewEncoder(f, io.Discard, "rings", j.model.SlotNames()[1:], nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Encode(j.out, []int{0}); err == nil || !strings.Contains(err.Error(), "not a transform result with 8 slots") {
			t.Fatalf("%s: a record of another width: %v", f, err)
		}
	}
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, fmt.Errorf("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteErrorsAreReturned(t *testing.T) {
	j := abalone(t, memory.DefaultAllocator)
	defer j.out.Release()
	rows := someRows(int(j.out.NumRows()))
	for _, f := range features.OutputFormats {
		e, err := format.NewEncoder(f, &failingWriter{n: 100}, "rings", j.model.SlotNames(), &format.Options{RowGroupBytes: 1 << 10})
		if err != nil {
			t.Fatal(err)
		}
		for range 300 {
			if err = e.Encode(j.out, rows); err != nil {
				break
			}
		}
		if err == nil {
			err = e.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("%s: a failing writer gave %v", f, err)
		}
	}
}

func TestExtension(t *testing.T) {
	got, _ := json.Marshal(map[features.OutputFormat]string{
		features.FormatText: format.Extension(features.FormatText), features.FormatCSV: format.Extension(features.FormatCSV),
		features.FormatLibSVM: format.Extension(features.FormatLibSVM), features.FormatParquet: format.Extension(features.FormatParquet)})
	if want := `{"csv":"","libsvm":"","parquet":".parquet","text":""}`; string(got) != want {
		t.Fatalf("extensions %s, want %s", got, want)
	}
}

// BenchmarkEncode encodes the transform of the Abalone sample, 4177 rows
// of 9 slots, in each format; bytes are the text output's.
func BenchmarkEncode(b *testing.B) {
	j := abalone(b, memory.DefaultAllocator)
	defer j.out.Release()
	rows := allRows(j.out)
	size := len(features.AppendRows(nil, j.out, rows))
	for _, f := range features.OutputFormats {
		b.Run(string(f), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				e, err := format.NewEncoder(f, io.Discard, j.model.LabelColumn(), j.model.SlotNames(), nil)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < len(rows); i += 1000 {
					if err := e.Encode(j.out, rows[i:min(i+1000, len(rows))]); err != nil {
						b.Fatal(err)
					}
				}
				if err := e.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
