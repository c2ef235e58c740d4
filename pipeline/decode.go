package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// maxValueBytes bounds fieldError.Value.
const maxValueBytes = 100

// fieldError is a line that does not fit the spec. Column is the column
// name, or "" for a problem with the whole line (wrong field count, invalid
// UTF-8, a malformed quoted field); Field is the 1-based position of the
// field in the line, 0 when the whole line is concerned. Value is the
// offending text (the field, or the line for whole-line problems), shortened
// to about 100 bytes with "..." appended when cut.
type fieldError struct {
	Column string
	Field  int
	Value  string
	Reason string
}

func (e *fieldError) Error() string {
	switch {
	case e.Column != "":
		return fmt.Sprintf("column %q (field %d): %s: %q", e.Column, e.Field, e.Reason, e.Value)
	case e.Field > 0:
		return fmt.Sprintf("field %d: %s: %q", e.Field, e.Reason, e.Value)
	}
	return fmt.Sprintf("%s: %q", e.Reason, e.Value)
}

// decodeOptions tunes a decoder. A nil *decodeOptions means the defaults.
type decodeOptions struct {
	// FitOnly decodes only the categorical columns (spec.FitSchema()), for
	// the fit pass. The other fields are still counted, and the line still
	// checked for UTF-8, but their values are not parsed or checked.
	FitOnly bool
	// Text adds the source text of the double columns (features.LineColumn
	// and a features.TextColumn per double column), for the text writer to
	// copy the numbers already written as their repr. Not with FitOnly.
	Text bool
	// Columns, for a spec with stages, are the columns to parse (nil:
	// all); the label is always parsed.
	Columns []string
}

// colKind is what a decoder does with one field of a line.
type colKind uint8

const (
	colSkip colKind = iota
	colString
	colDouble
)

// decoder turns CSV lines into Arrow records, by the rules of Spark's CSV
// reader with an explicit schema: fields are separated by commas; a field
// that starts with a double quote is quoted, ends at the next lone quote
// and may contain commas and "" for a quote (a quoted field cannot span
// lines); the number of fields must equal the number of spec columns; a
// string field is taken verbatim (" M" is not "M") and must not be empty; a
// double field may be surrounded by spaces and tabs and is parsed by
// strconv.ParseFloat ("inf", hexadecimal and out-of-range values such as
// 1e400 are accepted; NaN and '_' digit separators are not). The whole line must be valid UTF-8.
//
// Records hold the decoded columns in file order with the types of
// spec.Schema() (or spec.FitSchema() with FitOnly), no nulls, followed by an
// int64 column "__offset". A decoder is not safe for concurrent use.
type decoder struct {
	spec   *features.Spec
	schema *arrow.Schema // of the records: bld's, with the text columns before the offsets
	bld    *array.RecordBuilder
	mem    memory.Allocator
	kinds  []colKind // per spec column
	out    []int     // per spec column: builder field index, -1 when skipped

	strs    []*array.BinaryBuilder // per spec column, nil unless colString
	doubles [][]float64            // per spec column, pending values of colDouble
	offsets []int64                // pending offsets
	n       int

	fields   [][]byte  // reused field slices of the current line
	spans    []span    // per spec column: the current line's string fields (addPlain)
	skipFrom int       // the columns from here on are all colSkip
	vals     []float64 // reused parsed doubles of the current line
	scratch  []byte    // reused buffer for unquoted fields

	// With decodeOptions.Text: the source text of the pending rows.
	text     bool
	texts    []uint32   // per spec column: the current line's Span (addPlain), 0 otherwise
	lines    []byte     // pending lines, one after the other
	lineEnds []int32    // pending: the end of each line in lines
	spanCols [][]uint32 // per spec column: pending Spans of colDouble
}

// newDecoder returns a decoder for lines of spec's columns; record buffers
// come from mem. opts may be nil. The spec must be valid.
func newDecoder(spec *features.Spec, mem memory.Allocator, opts *decodeOptions) *decoder {
	fitOnly := opts != nil && opts.FitOnly
	base := spec.Schema()
	if fitOnly {
		base = spec.FitSchema()
	}
	offsetField := arrow.Field{Name: offsetColumn, Type: arrow.PrimitiveTypes.Int64}
	bldSchema := arrow.NewSchema(append(base.Fields(), offsetField), nil)
	text := opts != nil && opts.Text && !fitOnly

	d := &decoder{
		spec:    spec,
		schema:  bldSchema,
		bld:     array.NewRecordBuilder(mem, bldSchema),
		kinds:   make([]colKind, len(spec.Columns)),
		out:     make([]int, len(spec.Columns)),
		strs:    make([]*array.BinaryBuilder, len(spec.Columns)),
		doubles: make([][]float64, len(spec.Columns)),
		fields:  make([][]byte, 0, len(spec.Columns)),
		spans:   make([]span, len(spec.Columns)),
		vals:    make([]float64, len(spec.Columns)),
		texts:   make([]uint32, len(spec.Columns)),
		mem:     mem,
	}
	for i, c := range spec.Columns {
		d.out[i] = -1
		idx := base.FieldIndices(c.Name)
		if len(idx) == 0 {
			continue
		}
		d.out[i] = idx[0]
		if c.Type == features.ColumnString {
			d.kinds[i] = colString
			d.strs[i] = d.bld.Field(idx[0]).(*array.StringBuilder).BinaryBuilder
		} else {
			d.kinds[i] = colDouble
		}
	}
	d.skipFrom = len(d.kinds)
	for d.skipFrom > 0 && d.kinds[d.skipFrom-1] == colSkip {
		d.skipFrom--
	}
	if text {
		d.withText(base, offsetField)
	}
	return d
}

// withText makes the decoder add the source text columns, after the
// decoded columns of base and before offsetField.
func (d *decoder) withText(base *arrow.Schema, offsetField arrow.Field) {
	d.text = true
	d.spanCols = make([][]uint32, len(d.kinds))
	fields := append(base.Fields(), arrow.Field{Name: features.LineColumn, Type: arrow.BinaryTypes.Binary})
	for i, c := range d.spec.Columns {
		if d.kinds[i] == colDouble {
			fields = append(fields, arrow.Field{Name: features.TextColumn(c.Name), Type: arrow.PrimitiveTypes.Uint32})
		}
	}
	d.schema = arrow.NewSchema(append(fields, offsetField), nil)
}

// Schema returns the schema of the records Flush returns.
func (d *decoder) Schema() *arrow.Schema { return d.schema }

// Len returns the number of rows added since the last Flush.
func (d *decoder) Len() int { return d.n }

// Add decodes one line, without its terminator, found at offset in its
// object. On a bad line it returns a *fieldError and adds nothing; the
// decoder stays usable.
func (d *decoder) Add(line []byte, offset int64) *fieldError {
	if d.addPlain(line, offset) {
		return nil
	}
	return d.addGeneral(line, offset)
}

// addGeneral is Add by the general rules, for any line.
func (d *decoder) addGeneral(line []byte, offset int64) *fieldError {
	if !utf8.Valid(line) {
		return &fieldError{Value: shorten(line), Reason: "invalid UTF-8"}
	}
	fields, fe := d.split(line)
	if fe != nil {
		return fe
	}
	if len(fields) != len(d.kinds) {
		return &fieldError{Value: shorten(line), Reason: fmt.Sprintf("expected %d fields, found %d", len(d.kinds), len(fields))}
	}
	// Check every field before appending any, so a bad line adds nothing.
	for i, f := range fields {
		switch d.kinds[i] {
		case colString:
			if len(f) == 0 {
				return d.fieldError(i, f, "empty value")
			}
		case colDouble:
			v, reason := parseDouble(f)
			if reason != "" {
				return d.fieldError(i, f, reason)
			}
			d.vals[i] = v
		}
	}
	for i, f := range fields {
		switch d.kinds[i] {
		case colString:
			d.strs[i].Append(f)
		case colDouble:
			d.doubles[i] = append(d.doubles[i], d.vals[i])
			d.texts[i] = 0 // formatted from the value
		}
	}
	d.addRow(line, offset)
	return nil
}

// addRow ends a row whose fields are added: its offset and, with text,
// its line and the Spans of its doubles in d.texts.
func (d *decoder) addRow(line []byte, offset int64) {
	d.offsets = append(d.offsets, offset)
	d.n++
	if !d.text {
		return
	}
	if len(d.lines)+len(line) > math.MaxInt32 { // past the offsets of a binary array
		line = nil
		clear(d.texts)
	}
	d.lines = append(d.lines, line...)
	d.lineEnds = append(d.lineEnds, int32(len(d.lines)))
	for i, k := range d.kinds {
		if k == colDouble {
			d.spanCols[i] = append(d.spanCols[i], d.texts[i])
		}
	}
}

func (d *decoder) fieldError(i int, f []byte, reason string) *fieldError {
	return &fieldError{Column: d.spec.Columns[i].Name, Field: i + 1, Value: shorten(f), Reason: reason}
}

// parseDouble parses a double field; reason is "" on success.
func parseDouble(f []byte) (v float64, reason string) {
	f = trimBlanks(f)
	if len(f) == 0 {
		return 0, "empty number"
	}
	if v, n, _, ok := scanPlain(f); ok && n == len(f) {
		return v, ""
	}
	if bytes.IndexByte(f, '_') >= 0 { // ParseFloat takes Go's digit separators
		return 0, "not a number"
	}
	// The string aliases f only for the call: ParseFloat's error, which
	// may keep it, is dropped here.
	v, err := strconv.ParseFloat(unsafe.String(&f[0], len(f)), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, "not a number"
	}
	if math.IsNaN(v) {
		return 0, "NaN is not allowed"
	}
	return v, ""
}

// trimBlanks removes leading and trailing spaces and tabs.
func trimBlanks(f []byte) []byte {
	for len(f) > 0 && (f[0] == ' ' || f[0] == '\t') {
		f = f[1:]
	}
	for len(f) > 0 && (f[len(f)-1] == ' ' || f[len(f)-1] == '\t') {
		f = f[:len(f)-1]
	}
	return f
}

// Flush returns the rows added since the last Flush as a record with the
// decoded columns and "__offset" (each row's line offset), and starts a new
// batch. The record has zero rows when nothing was added. The caller owns
// the record and must Release it; it does not depend on the decoder.
func (d *decoder) Flush() arrow.Record {
	for i, k := range d.kinds {
		if k == colDouble {
			d.bld.Field(d.out[i]).(*array.Float64Builder).AppendValues(d.doubles[i], nil)
			d.doubles[i] = d.doubles[i][:0]
		}
	}
	d.bld.Field(len(d.bld.Schema().Fields())-1).(*array.Int64Builder).AppendValues(d.offsets, nil)
	d.offsets = d.offsets[:0]
	n := d.n
	d.n = 0
	rec := d.bld.NewRecord()
	if !d.text {
		return rec
	}
	defer rec.Release()
	cols := rec.Columns()
	all := append(make([]arrow.Array, 0, len(d.schema.Fields())), cols[:len(cols)-1]...)
	all = append(all, newBinary(d.mem, d.lines, d.lineEnds))
	for i, k := range d.kinds {
		if k == colDouble {
			all = append(all, newUint32s(d.mem, d.spanCols[i]))
			d.spanCols[i] = d.spanCols[i][:0]
		}
	}
	d.lines, d.lineEnds = d.lines[:0], d.lineEnds[:0]
	out := array.NewRecord(d.schema, append(all, cols[len(cols)-1]), int64(n))
	for _, a := range all[len(cols)-1:] {
		a.Release()
	}
	return out
}

// newBinary returns a binary array of the values data[ends[i-1]:ends[i]]
// (from 0 for the first), in buffers from mem.
func newBinary(mem memory.Allocator, data []byte, ends []int32) arrow.Array {
	offs := memory.NewResizableBuffer(mem)
	defer offs.Release()
	offs.Resize((len(ends) + 1) * arrow.Int32SizeBytes)
	o := arrow.Int32Traits.CastFromBytes(offs.Bytes())
	o[0] = 0
	copy(o[1:], ends)
	vals := memory.NewResizableBuffer(mem)
	defer vals.Release()
	vals.Resize(len(data))
	copy(vals.Bytes(), data)
	d := array.NewData(arrow.BinaryTypes.Binary, len(ends), []*memory.Buffer{nil, offs, vals}, nil, 0, 0)
	defer d.Release()
	return array.NewBinaryData(d)
}

// newUint32s returns a uint32 array of vals, in a buffer from mem.
func newUint32s(mem memory.Allocator, vals []uint32) arrow.Array {
	buf := memory.NewResizableBuffer(mem)
	defer buf.Release()
	buf.Resize(len(vals) * arrow.Uint32SizeBytes)
	copy(arrow.Uint32Traits.CastFromBytes(buf.Bytes()), vals)
	d := array.NewData(arrow.PrimitiveTypes.Uint32, len(vals), []*memory.Buffer{nil, buf}, nil, 0, 0)
	defer d.Release()
	return array.NewUint32Data(d)
}

// Release frees the decoder's builders, dropping rows not yet flushed.
// Records returned by Flush are not affected. The decoder must not be used
// afterwards.
func (d *decoder) Release() {
	if d.bld != nil {
		d.bld.Release()
		d.bld = nil
	}
}

// split cuts line into fields, unquoting quoted ones. The returned slices
// alias line or d.scratch and are valid until the next call.
func (d *decoder) split(line []byte) ([][]byte, *fieldError) {
	fields, scratch, fe := splitFields(line, d.fields[:0], d.scratch[:0])
	d.fields, d.scratch = fields[:0], scratch[:0]
	return fields, fe
}

// splitFields appends the fields of line to fields; unquoted copies of
// quoted fields are appended to scratch.
func splitFields(line []byte, fields [][]byte, scratch []byte) ([][]byte, []byte, *fieldError) {
	if bytes.IndexByte(line, '"') < 0 {
		for {
			i := bytes.IndexByte(line, ',')
			if i < 0 {
				return append(fields, line), scratch, nil
			}
			fields = append(fields, line[:i])
			line = line[i+1:]
		}
	}
	for {
		if len(line) == 0 || line[0] != '"' {
			i := bytes.IndexByte(line, ',')
			if i < 0 {
				return append(fields, line), scratch, nil
			}
			fields = append(fields, line[:i])
			line = line[i+1:]
			continue
		}
		// Quoted field: up to the next quote not followed by a quote.
		field := len(fields) + 1
		start := len(scratch)
		rest := line[1:]
		for {
			j := bytes.IndexByte(rest, '"')
			if j < 0 {
				return fields, scratch, &fieldError{Field: field, Value: shorten(line), Reason: "unterminated quoted field"}
			}
			scratch = append(scratch, rest[:j]...)
			if j+1 < len(rest) && rest[j+1] == '"' {
				scratch = append(scratch, '"')
				rest = rest[j+2:]
				continue
			}
			rest = rest[j+1:]
			break
		}
		// scratch may have moved: fields already taken from it keep
		// pointing at their (unchanged) bytes in the old array.
		fields = append(fields, scratch[start:len(scratch):len(scratch)])
		switch {
		case len(rest) == 0:
			return fields, scratch, nil
		case rest[0] == ',':
			line = rest[1:]
		default:
			return fields, scratch, &fieldError{Field: field, Value: shorten(line), Reason: "text after the closing quote of a quoted field"}
		}
	}
}

// shorten returns b as a string of at most about maxValueBytes bytes, cut
// on a UTF-8 boundary, with "..." appended when cut.
func shorten(b []byte) string {
	if len(b) <= maxValueBytes {
		return string(b)
	}
	i := maxValueBytes
	for j := i; j > i-utf8.UTFMax && j > 0; j-- {
		if utf8.RuneStart(b[j]) {
			i = j
			break
		}
	}
	return string(b[:i]) + "..."
}

// looksLikeHeader reports whether line is a header row of spec: it has one
// field per column and each field, quotes removed and spaces and tabs
// trimmed, equals its column's name ignoring case.
func looksLikeHeader(spec *features.Spec, line []byte) bool {
	fields, _, fe := splitFields(line, nil, nil)
	if fe != nil || len(fields) != len(spec.Columns) {
		return false
	}
	for i, f := range fields {
		if !strings.EqualFold(string(trimBlanks(f)), spec.Columns[i].Name) {
			return false
		}
	}
	return true
}
