package format

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/shardprep/shardprep/features"
)

// parquetWriter gathers rows column by column and writes them to a
// Parquet file one row group at a time.
type parquetWriter struct {
	w         *stickyWriter
	fw        *pqarrow.FileWriter
	schema    *arrow.Schema
	cols      [][]float64 // the label, then each slot
	groupRows int
}

func newParquetWriter(w io.Writer, names []string, o *Options) (*parquetWriter, error) {
	fields := make([]arrow.Field, len(names))
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if seen[n] {
			return nil, fmt.Errorf("parquet: two columns would be named %q (the label column and the slots must have distinct names)", n)
		}
		seen[n] = true
		fields[i] = arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float64}
	}
	schema := arrow.NewSchema(fields, nil)
	groupRows := max(1, o.RowGroupBytes/(8*len(names)))
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithAllocator(o.Allocator),
		parquet.WithMaxRowGroupLength(int64(groupRows)),
		parquet.WithCreatedBy("shardprep"),
	)
	sw := &stickyWriter{w: w}
	fw, err := pqarrow.NewFileWriter(schema, sw, props, pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(o.Allocator)))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	p := &parquetWriter{w: sw, fw: fw, schema: schema, cols: make([][]float64, len(names)), groupRows: groupRows}
	for i := range p.cols {
		p.cols[i] = make([]float64, 0, min(groupRows, 4096))
	}
	return p, nil
}

// add gathers the rows of rec, writing each row group as it fills.
func (p *parquetWriter) add(rec arrow.Record, rows []int) error {
	labels := rec.Column(0).(*array.Float64).Float64Values()
	list := rec.Column(1).(*array.FixedSizeList)
	values := list.ListValues().(*array.Float64).Float64Values()
	width := len(p.cols) - 1
	for len(rows) > 0 {
		n := min(len(rows), p.groupRows-len(p.cols[0]))
		for _, r := range rows[:n] {
			p.cols[0] = append(p.cols[0], labels[r])
		}
		for j := range width {
			col := p.cols[1+j]
			for _, r := range rows[:n] {
				start, _ := list.ValueOffsets(r)
				col = append(col, values[int(start)+j])
			}
			p.cols[1+j] = col
		}
		rows = rows[n:]
		if len(p.cols[0]) == p.groupRows {
			if err := p.writeGroup(); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeGroup writes the gathered rows as one row group.
func (p *parquetWriter) writeGroup() error {
	n := len(p.cols[0])
	arrs := make([]arrow.Array, len(p.cols))
	for i, c := range p.cols {
		// The arrays borrow the gathered values: Write encodes them
		// before it returns, and only then are they overwritten.
		buf := memory.NewBufferBytes(arrow.Float64Traits.CastToBytes(c))
		data := array.NewData(arrow.PrimitiveTypes.Float64, n, []*memory.Buffer{nil, buf}, nil, 0, 0)
		arrs[i] = array.NewFloat64Data(data)
		data.Release()
	}
	rec := array.NewRecord(p.schema, arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	err := p.fw.Write(rec)
	rec.Release()
	for i := range p.cols {
		p.cols[i] = p.cols[i][:0]
	}
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return p.w.err
}

// close writes the last row group and the footer.
func (p *parquetWriter) close() error {
	if len(p.cols[0]) > 0 {
		if err := p.writeGroup(); err != nil {
			p.fw.Close()
			return err
		}
	}
	if err := p.fw.Close(); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return p.w.err
}

// stickyWriter keeps the first error of w and drops what follows it, so
// that the Parquet writer never sees a failed write (it does not recover
// from one); the error is returned after each row group and at close.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err == nil {
		_, s.err = s.w.Write(p)
	}
	return len(p), nil
}

// ParquetLines writes the first n rows of the parquet part r (of size
// bytes) to w as text lines, as the text format lays them out: every
// column, comma-separated, every number as Python's repr. Every column
// must be a double column.
func ParquetLines(ctx context.Context, r parquet.ReaderAtSeeker, n int, w io.Writer) error {
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.BufferedStreamEnabled = true
	pf, err := file.NewParquetReader(r, file.WithReadProps(props))
	if err != nil {
		return fmt.Errorf("not a parquet file: %w", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(min(max(n, 1), 1<<14))}, memory.DefaultAllocator)
	if err != nil {
		return err
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	for n > 0 && rr.Next() {
		rec := rr.Record()
		cols := make([][]float64, rec.NumCols())
		for i, c := range rec.Columns() {
			f, ok := c.(*array.Float64)
			if !ok || f.NullN() > 0 {
				return fmt.Errorf("column %q is %s, not a required double column: not a shardprep part", rec.ColumnName(i), c.DataType())
			}
			cols[i] = f.Float64Values()
		}
		var line []byte
		for r := 0; r < int(rec.NumRows()) && n > 0; r, n = r+1, n-1 {
			line = line[:0]
			for i, c := range cols {
				if i > 0 {
					line = append(line, ',')
				}
				line = features.AppendPyFloat(line, c[r])
			}
			if _, err := w.Write(append(line, '\n')); err != nil {
				return err
			}
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
