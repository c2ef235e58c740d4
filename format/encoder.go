package format

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// Extension is the file name extension of the parts of format f:
// ".parquet" for parquet; none for the line formats (text, csv, libsvm),
// whose parts are named part-NNNNN as the seed job's text parts are.
func Extension(f features.OutputFormat) string {
	if f == features.FormatParquet {
		return ".parquet"
	}
	return ""
}

// Options configure an Encoder; nil means the defaults.
type Options struct {
	// RowGroupBytes bounds a parquet row group: its rows hold at most
	// this many bytes of float64 values (at least one row). Default 8 MiB.
	RowGroupBytes int
	// Allocator is the parquet writer's memory (default:
	// memory.DefaultAllocator).
	Allocator memory.Allocator
}

const defaultRowGroupBytes = 8 << 20

// bufferSize is how much an Encoder buffers before it writes.
const bufferSize = 1 << 20

// Encoder writes transformed rows in one output format; see the package
// documentation.
type Encoder struct {
	w      io.Writer
	format features.OutputFormat
	width  int
	buf    []byte
	pq     *parquetWriter
	closed bool
}

// NewEncoder starts a part in format f on w, for records whose label
// column is named label and whose feature vector has one slot per name in
// slots. The csv header is written with the first rows, or by Close.
func NewEncoder(f features.OutputFormat, w io.Writer, label string, slots []string, opts *Options) (*Encoder, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = defaultRowGroupBytes
	}
	if o.Allocator == nil {
		o.Allocator = memory.DefaultAllocator
	}
	e := &Encoder{w: w, format: f, width: len(slots)}
	switch f {
	case features.FormatText, features.FormatLibSVM:
	case features.FormatCSV:
		e.buf = appendHeader(e.buf, Columns(label, slots))
	case features.FormatParquet:
		pq, err := newParquetWriter(w, Columns(label, slots), &o)
		if err != nil {
			return nil, err
		}
		e.pq = pq
	default:
		return nil, fmt.Errorf("format: unknown output format %q", f)
	}
	return e, nil
}

// Columns are the column names of a part: the label column's name, then
// the slot names, each with any invalid UTF-8 replaced by U+FFFD.
func Columns(label string, slots []string) []string {
	names := make([]string, 0, 1+len(slots))
	for _, n := range append([]string{label}, slots...) {
		names = append(names, strings.ToValidUTF8(n, "\uFFFD"))
	}
	return names
}

// appendHeader appends the csv header row naming cols.
func appendHeader(dst []byte, cols []string) []byte {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.Write(cols) // a bytes.Buffer does not fail
	cw.Flush()
	return append(dst, b.Bytes()...)
}

// Encode writes the rows of rec (a features.Model.Transform result)
// whose indices are in rows, in that order.
func (e *Encoder) Encode(rec arrow.Record, rows []int) error {
	if e.closed {
		return fmt.Errorf("format: %s part already closed", e.format)
	}
	if err := e.check(rec); err != nil {
		return err
	}
	switch e.format {
	case features.FormatParquet:
		return e.pq.add(rec, rows)
	case features.FormatLibSVM:
		e.buf = appendLibSVM(e.buf, rec, rows)
	default:
		e.buf = features.AppendRows(e.buf, rec, rows)
	}
	if len(e.buf) < bufferSize {
		return nil
	}
	return e.flush()
}

// check checks that rec has the shape of a transform result with the
// encoder's width.
func (e *Encoder) check(rec arrow.Record) error {
	if rec.NumCols() >= 2 {
		_, okLabel := rec.Column(0).(*array.Float64)
		list, okList := rec.Column(1).(*array.FixedSizeList)
		if okLabel && okList && int(list.DataType().(*arrow.FixedSizeListType).Len()) == e.width {
			if _, ok := list.ListValues().(*array.Float64); ok {
				return nil
			}
		}
	}
	return fmt.Errorf("format: record of schema %s is not a transform result with %d slots", rec.Schema(), e.width)
}

func (e *Encoder) flush() error {
	if len(e.buf) == 0 {
		return nil
	}
	_, err := e.w.Write(e.buf)
	e.buf = e.buf[:0]
	return err
}

// Close writes what the encoder still holds and the end of the part (a
// parquet footer). It does not close the underlying writer.
func (e *Encoder) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	if e.pq != nil {
		return e.pq.close()
	}
	return e.flush()
}

// appendLibSVM appends the libsvm lines of rows of rec.
func appendLibSVM(dst []byte, rec arrow.Record, rows []int) []byte {
	labels := rec.Column(0).(*array.Float64).Float64Values()
	list := rec.Column(1).(*array.FixedSizeList)
	values := list.ListValues().(*array.Float64).Float64Values()
	for _, r := range rows {
		dst = features.AppendPyFloat(dst, labels[r])
		start, end := list.ValueOffsets(r)
		for j, v := range values[start:end] {
			if v == 0 {
				continue
			}
			dst = append(dst, ' ')
			dst = strconv.AppendInt(dst, int64(j+1), 10)
			dst = append(dst, ':')
			dst = features.AppendPyFloat(dst, v)
		}
		dst = append(dst, '\n')
	}
	return dst
}
