package pipeline

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// rowDecoder turns lines into record batches: the flat form's decoder or
// the null-aware one of specs with stages.
type rowDecoder interface {
	Add(line []byte, offset int64) *fieldError
	Len() int
	Flush() arrow.Record
	Release()
}

// newRowDecoder returns the decoder for t's spec: for a spec with stages
// one that reads nulls as Spark's CSV reader does, of the columns cols
// (nil: all).
func newRowDecoder(spec *features.Spec, mem memory.Allocator, o *decodeOptions) rowDecoder {
	if !spec.HasStages() {
		return newDecoder(spec, mem, o)
	}
	return newNullDecoder(spec, mem, o.Columns)
}

// nullDecoder decodes the lines of a spec with stages by the rules of
// Spark's CSV reader with an explicit schema: an empty field, quoted or
// not, is null for string and double columns; a double field may have
// surrounding spaces (characters up to U+0020, which Java's parseDouble
// trims) and reads "NaN", "Inf", "-Inf", "Infinity", "+Infinity" and
// "-Infinity" as Spark does; a trailing d, D, f or F is taken (Java's
// parseDouble takes it). Any other text that is not a number, a wrong
// number of fields, a bad quote or invalid UTF-8 make the line invalid,
// as does a null label (where Spark would fail the job later). Only the
// columns asked for are parsed; the records hold them in file order with
// the types of spec.Schema(), nullable, then "__offset".
type nullDecoder struct {
	spec   *features.Spec
	bld    *array.RecordBuilder
	out    []int // per spec column: builder field, -1 when not decoded
	label  int   // spec column index of the label
	fields [][]byte
	scr    []byte
	vals   []float64
	nulls  []bool
	n      int
}

func newNullDecoder(spec *features.Spec, mem memory.Allocator, cols []string) *nullDecoder {
	var fields []arrow.Field
	d := &nullDecoder{spec: spec, out: make([]int, len(spec.Columns)), vals: make([]float64, len(spec.Columns)), nulls: make([]bool, len(spec.Columns))}
	for i, c := range spec.Schema().Fields() {
		d.out[i] = -1
		if c.Name == spec.Label {
			d.label = i
		}
		if cols == nil || slices.Contains(cols, c.Name) || c.Name == spec.Label {
			d.out[i] = len(fields)
			fields = append(fields, c)
		}
	}
	fields = append(fields, arrow.Field{Name: offsetColumn, Type: arrow.PrimitiveTypes.Int64})
	d.bld = array.NewRecordBuilder(mem, arrow.NewSchema(fields, nil))
	return d
}

func (d *nullDecoder) Len() int { return d.n }

func (d *nullDecoder) Release() {
	if d.bld != nil {
		d.bld.Release()
		d.bld = nil
	}
}

func (d *nullDecoder) Flush() arrow.Record {
	d.n = 0
	return d.bld.NewRecord()
}

func (d *nullDecoder) Add(line []byte, offset int64) *fieldError {
	if !utf8.Valid(line) {
		return &fieldError{Value: shorten(line), Reason: "invalid UTF-8"}
	}
	fields, scr, fe := splitFields(line, d.fields[:0], d.scr[:0])
	d.fields, d.scr = fields[:0], scr[:0]
	if fe != nil {
		return fe
	}
	if len(fields) != len(d.spec.Columns) {
		return &fieldError{Value: shorten(line), Reason: fmt.Sprintf("expected %d fields, found %d", len(d.spec.Columns), len(fields))}
	}
	for i, f := range fields {
		c := d.spec.Columns[i]
		if d.out[i] < 0 {
			continue
		}
		d.nulls[i] = len(f) == 0
		if i == d.label && d.nulls[i] {
			return &fieldError{Column: c.Name, Field: i + 1, Reason: "null label (an empty field)"}
		}
		if c.Type == features.ColumnDouble && !d.nulls[i] {
			v, err := features.SparkDouble(f)
			if err != nil {
				return &fieldError{Column: c.Name, Field: i + 1, Value: shorten(f), Reason: err.Error()}
			}
			d.vals[i] = v
		}
	}
	for i, f := range fields {
		k := d.out[i]
		if k < 0 {
			continue
		}
		switch b := d.bld.Field(k).(type) {
		case *array.StringBuilder:
			if d.nulls[i] {
				b.AppendNull()
			} else {
				b.BinaryBuilder.Append(f)
			}
		case *array.Float64Builder:
			if d.nulls[i] {
				b.AppendNull()
			} else {
				b.Append(d.vals[i])
			}
		}
	}
	d.bld.Field(len(d.bld.Schema().Fields()) - 1).(*array.Int64Builder).Append(offset)
	d.n++
	return nil
}
