package format

import (
	"context"
	"fmt"
	"io"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/schema"

	"github.com/shardprep/shardprep/features"
)

// parquetWriter gathers rows column by column and writes them to a
// Parquet file one row group at a time, through Arrow's Parquet writer
// (parquet/file: the column writers pqarrow drives, without its Arrow
// schema and IPC layers).
type parquetWriter struct {
	w         *stickyWriter
	fw        *file.Writer
	cols      [][]float64 // the label, then each slot
	groupRows int
}

func newParquetWriter(w io.Writer, names []string, o *Options) (*parquetWriter, error) {
	fields := make(schema.FieldList, len(names))
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if seen[n] {
			return nil, fmt.Errorf("parquet: two columns would be named %q (the label column and the slots must have distinct names)", n)
		}
		seen[n] = true
		fields[i] = schema.NewFloat64Node(n, parquet.Repetitions.Required, -1)
	}
	root, err := schema.NewGroupNode("schema", parquet.Repetitions.Required, fields, -1)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	groupRows := max(1, o.RowGroupBytes/(8*len(names)))
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithAllocator(o.Allocator),
		parquet.WithCreatedBy("shardprep"),
		// Dictionaries cost a hash per value and pay only for columns
		// of few values, which snappy compresses well enough.
		parquet.WithDictionaryDefault(false),
	)
	sw := &stickyWriter{w: w}
	p := &parquetWriter{w: sw, fw: file.NewParquetWriter(sw, root, file.WithWriterProps(props)),
		cols: make([][]float64, len(names)), groupRows: groupRows}
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

// writeGroup writes the gathered rows as one row group, column after
// column.
func (p *parquetWriter) writeGroup() error {
	rg := p.fw.AppendRowGroup()
	for _, c := range p.cols {
		cw, err := rg.NextColumn()
		if err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
		if _, err := cw.(*file.Float64ColumnChunkWriter).WriteBatch(c, nil, nil); err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
		if err := cw.Close(); err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
	}
	if err := rg.Close(); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	for i := range p.cols {
		p.cols[i] = p.cols[i][:0]
	}
	return p.w.err
}

// close writes the last row group and the footer.
func (p *parquetWriter) close() error {
	if len(p.cols[0]) > 0 {
		if err := p.writeGroup(); err != nil {
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

// ParquetLines writes the first n rows of the parquet part r to w as text
// lines, as the text format lays them out: every column, comma-separated,
// every number as Python's repr. Every column must be a required double
// column, as the parquet format writes them.
func ParquetLines(ctx context.Context, r parquet.ReaderAtSeeker, n int, w io.Writer) (err error) {
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.BufferedStreamEnabled = true
	pf, err := file.NewParquetReader(r, file.WithReadProps(props))
	if err != nil {
		return fmt.Errorf("not a parquet file: %w", err)
	}
	defer pf.Close()
	sc := pf.MetaData().Schema
	for i := range sc.NumColumns() {
		if c := sc.Column(i); c.PhysicalType() != parquet.Types.Double || c.MaxDefinitionLevel() != 0 || c.MaxRepetitionLevel() != 0 {
			return fmt.Errorf("column %q is not a required double column: not a shardprep part", c.Name())
		}
	}
	var line []byte
	for g := 0; g < pf.NumRowGroups() && n > 0; g++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		cols, err := readGroup(pf.RowGroup(g), sc.NumColumns(), n)
		if err != nil {
			return err
		}
		for r := 0; r < len(cols[0]) && n > 0; r, n = r+1, n-1 {
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
	return nil
}

// readGroup reads up to n rows of each of the ncols double columns of a
// row group.
func readGroup(rg *file.RowGroupReader, ncols, n int) ([][]float64, error) {
	rows := min(int64(n), rg.NumRows())
	cols := make([][]float64, ncols)
	for i := range cols {
		cr, err := rg.Column(i)
		if err != nil {
			return nil, err
		}
		cols[i] = make([]float64, rows)
		for got := int64(0); got < rows; {
			k, _, err := cr.(*file.Float64ColumnChunkReader).ReadBatch(rows-got, cols[i][got:], nil, nil)
			if err != nil {
				return nil, err
			}
			if k == 0 {
				return nil, fmt.Errorf("column %d ends after %d of %d rows", i, got, rows)
			}
			got += k
		}
	}
	return cols, nil
}
