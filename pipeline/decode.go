package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
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
	// Rows is how many rows a batch is expected to hold (0: no guess): the
	// first batch's buffers are made that large.
	Rows int
	// Bytes is how many bytes of lines one batch is to hold, when it holds
	// a whole split (0: unknown): once the first rows show how long a
	// line is, the buffers are made large enough for all, rather than
	// grown (and copied) again and again.
	Bytes int64
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
//
// The decoder writes each row's values in place into the buffers of the
// batch's columns, taken from its allocator, and Flush hands those
// buffers to the record: no builder, and no copy of a value. A row that
// turns out bad leaves what it wrote past the batch's length, where the
// next row overwrites it.
type decoder struct {
	spec   *features.Spec
	schema *arrow.Schema // of the records: the decoded columns, the text columns, the offsets
	mem    memory.Allocator
	kinds  []colKind // per spec column
	out    []int     // per spec column: field index in the records, -1 when skipped

	n, cap int   // rows of the batch, and the rows its buffers hold
	hint   int   // decodeOptions.Rows
	bytes  int64 // decodeOptions.Bytes
	seen   int64 // bytes of the batch's lines, terminators counted

	dbl    []colBuf    // per spec column, colDouble: the values
	dvals  [][]float64 // per spec column: dbl's values
	sdata  []colBuf    // per spec column, colString: the bytes
	soffs  []colBuf    // per spec column, colString: the int32 offsets
	soffv  [][]int32   // per spec column: soffs's values
	offs   colBuf      // the rows' offsets
	offv   []int64
	fields [][]byte // reused field slices of the current line
	spans  []span   // per spec column: the current line's string fields (addPlain)
	// the columns from here on are all colSkip
	skipFrom int
	vals     []float64 // reused parsed doubles of the current line (addGeneral)
	scratch  []byte    // reused buffer for unquoted fields

	// With decodeOptions.Text: the source text of the batch's rows.
	text     bool
	lines    colBuf     // the lines, one after the other
	lineOffs colBuf     // int32 offsets of the lines
	lineOffv []int32    // lineOffs's values
	spanB    []colBuf   // per spec column, colDouble: the Spans
	spanv    [][]uint32 // per spec column: spanB's values
}

// colBuf is the buffer of one column of the batch being decoded. raw is
// the whole buffer, beyond its length.
type colBuf struct {
	buf  *memory.Buffer
	raw  []byte
	want int // the size the last batch's buffer reached
}

// reserve makes the buffer hold at least size bytes, keeping its content.
// Sizes are rounded up to a power of two, so that batches ask for the same
// sizes, which a recycler then hands out again.
func (c *colBuf) reserve(mem memory.Allocator, size int) {
	if c.buf == nil {
		c.buf = memory.NewResizableBuffer(mem)
	}
	if size > len(c.raw) {
		c.buf.Reserve(1 << bits.Len(uint(size-1)))
		c.raw = c.buf.Buf()
	}
}

// take hands the buffer over with its first size bytes as its content;
// the next batch gets a new one, of the size this one reached (want).
func (c *colBuf) take(mem memory.Allocator, size int) *memory.Buffer {
	c.reserve(mem, size)
	b := c.buf
	b.ResizeNoShrink(size)
	c.want = len(c.raw)
	c.buf, c.raw = nil, nil
	return b
}

func (c *colBuf) release() {
	if c.buf != nil {
		c.buf.Release()
		c.buf, c.raw = nil, nil
	}
}

// newDecoder returns a decoder for lines of spec's columns; record buffers
// come from mem. opts may be nil. The spec must be valid.
func newDecoder(spec *features.Spec, mem memory.Allocator, opts *decodeOptions) *decoder {
	var o decodeOptions
	if opts != nil {
		o = *opts
	}
	base := spec.Schema()
	if o.FitOnly {
		base = spec.FitSchema()
	}
	offsetField := arrow.Field{Name: offsetColumn, Type: arrow.PrimitiveTypes.Int64}
	k := len(spec.Columns)
	d := &decoder{
		spec:   spec,
		schema: arrow.NewSchema(append(base.Fields(), offsetField), nil),
		mem:    mem,
		hint:   o.Rows,
		bytes:  o.Bytes,
		kinds:  make([]colKind, k),
		out:    make([]int, k),
		dbl:    make([]colBuf, k), dvals: make([][]float64, k),
		sdata: make([]colBuf, k), soffs: make([]colBuf, k), soffv: make([][]int32, k),
		fields: make([][]byte, 0, k),
		spans:  make([]span, k),
		vals:   make([]float64, k),
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
		} else {
			d.kinds[i] = colDouble
		}
	}
	d.skipFrom = len(d.kinds)
	for d.skipFrom > 0 && d.kinds[d.skipFrom-1] == colSkip {
		d.skipFrom--
	}
	if o.Text && !o.FitOnly {
		d.withText(base, offsetField)
	}
	return d
}

// withText makes the decoder add the source text columns, after the
// decoded columns of base and before offsetField.
func (d *decoder) withText(base *arrow.Schema, offsetField arrow.Field) {
	d.text = true
	d.spanB = make([]colBuf, len(d.kinds))
	d.spanv = make([][]uint32, len(d.kinds))
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

// grow makes the batch's buffers hold at least one more row: the hinted
// batch size at first, then twice as many rows each time.
func (d *decoder) grow() {
	c := max(2*d.cap, d.hint, 1024)
	if d.bytes > 0 && d.n > 0 && d.seen > 0 {
		c = max(c, int(float64(d.n)*float64(d.bytes)/float64(d.seen)*1.05))
	}
	for i, k := range d.kinds {
		switch k {
		case colDouble:
			d.dbl[i].reserve(d.mem, c*arrow.Float64SizeBytes)
			d.dvals[i] = arrow.Float64Traits.CastFromBytes(d.dbl[i].raw)[:c]
			if d.text {
				d.spanB[i].reserve(d.mem, c*arrow.Uint32SizeBytes)
				d.spanv[i] = arrow.Uint32Traits.CastFromBytes(d.spanB[i].raw)[:c]
			}
		case colString:
			d.soffv[i] = growOffsets(d.mem, &d.soffs[i], c, d.cap)
		}
	}
	d.offs.reserve(d.mem, c*arrow.Int64SizeBytes)
	d.offv = arrow.Int64Traits.CastFromBytes(d.offs.raw)[:c]
	if d.text {
		d.lineOffv = growOffsets(d.mem, &d.lineOffs, c, d.cap)
	}
	d.cap = c
}

// growOffsets makes c hold the int32 offsets of rows rows and returns
// them; a new buffer (old == 0) starts at offset 0.
func growOffsets(mem memory.Allocator, c *colBuf, rows, old int) []int32 {
	c.reserve(mem, (rows+1)*arrow.Int32SizeBytes)
	v := arrow.Int32Traits.CastFromBytes(c.raw)[:rows+1]
	if old == 0 {
		v[0] = 0
	}
	return v
}

// firstBatchLines bounds the lines buffer that a task's first batch starts
// with.
const firstBatchLines = 4 << 20

// appendVar appends p to the variable-length column of data and offs
// (values offv) as the value of row n. It reports false, appending
// nothing, when the column would pass the 2 GiB that int32 offsets reach.
func (d *decoder) appendVar(data *colBuf, offv []int32, p []byte) bool {
	end := int(offv[d.n])
	if end+len(p) > math.MaxInt32 {
		return false
	}
	if end+len(p) > len(data.raw) {
		size := max(2*len(data.raw), end+len(p), data.want, 64<<10)
		switch {
		case data != &d.lines:
		case d.bytes > 0 && d.bytes < math.MaxInt32:
			size = max(size, int(d.bytes)+len(p)) // the split's lines, and the last one's end
		case data.want == 0 && end == 0 && d.hint > 0:
			// A task's first batch: room for the hinted rows at an
			// eighth more than the first line, rather than doubling
			// from 64 KiB (each time a copy, and fresh memory); a long
			// first line does not make it larger than firstBatchLines.
			size = max(size, min(d.hint*(len(p)+1)*9/8, firstBatchLines))
		}
		data.reserve(d.mem, size)
	}
	copy(data.raw[end:], p)
	offv[d.n+1] = int32(end + len(p))
	return true
}

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
	if d.n == d.cap {
		d.grow()
	}
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
	// Check every field before adding any, so a bad line adds nothing.
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
			if !d.appendVar(&d.sdata[i], d.soffv[i], f) {
				return d.fieldError(i, f, "the batch's text is over 2 GiB")
			}
		case colDouble:
			d.dvals[i][d.n] = d.vals[i]
			if d.text {
				d.spanv[i][d.n] = 0 // formatted from the value
			}
		}
	}
	d.addRow(line, offset)
	return nil
}

// addRow ends a row whose fields are added: its offset and, with text,
// its line (the Spans of its doubles are in place).
func (d *decoder) addRow(line []byte, offset int64) {
	d.offv[d.n] = offset
	d.seen += int64(len(line)) + 1
	if d.text && !d.appendVar(&d.lines, d.lineOffv, line) {
		// Past the offsets of a binary array: the row's numbers are
		// formatted from their values.
		d.appendVar(&d.lines, d.lineOffv, nil)
		for i, k := range d.kinds {
			if k == colDouble {
				d.spanv[i][d.n] = 0
			}
		}
	}
	d.n++
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
	if d.cap == 0 {
		d.grow()
	}
	n := d.n
	fields := d.schema.Fields()
	cols := make([]arrow.Array, 0, len(fields))
	for i, k := range d.kinds {
		switch k {
		case colDouble:
			cols = append(cols, d.fixedArray(fields[len(cols)].Type, &d.dbl[i], n*arrow.Float64SizeBytes))
		case colString:
			cols = append(cols, d.varArray(fields[len(cols)].Type, &d.soffs[i], &d.sdata[i], d.soffv[i][n]))
		}
	}
	if d.text {
		cols = append(cols, d.varArray(arrow.BinaryTypes.Binary, &d.lineOffs, &d.lines, d.lineOffv[n]))
		for i, k := range d.kinds {
			if k == colDouble {
				cols = append(cols, d.fixedArray(arrow.PrimitiveTypes.Uint32, &d.spanB[i], n*arrow.Uint32SizeBytes))
			}
		}
	}
	cols = append(cols, d.fixedArray(arrow.PrimitiveTypes.Int64, &d.offs, n*arrow.Int64SizeBytes))
	rec := array.NewRecord(d.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	d.n, d.cap, d.seen = 0, 0, 0
	return rec
}

// fixedArray returns the array of type dt over the first size bytes of
// c's buffer, which it takes.
func (d *decoder) fixedArray(dt arrow.DataType, c *colBuf, size int) arrow.Array {
	buf := c.take(d.mem, size)
	defer buf.Release()
	data := array.NewData(dt, size/(dt.(arrow.FixedWidthDataType).BitWidth()/8), []*memory.Buffer{nil, buf}, nil, 0, 0)
	defer data.Release()
	return array.MakeFromData(data)
}

// varArray returns the array of type dt (string or binary) of the
// batch's rows over the offsets in offs and the first size bytes of
// data, whose buffers it takes.
func (d *decoder) varArray(dt arrow.DataType, offs, data *colBuf, size int32) arrow.Array {
	ob := offs.take(d.mem, (d.n+1)*arrow.Int32SizeBytes)
	defer ob.Release()
	db := data.take(d.mem, int(size))
	defer db.Release()
	ad := array.NewData(dt, d.n, []*memory.Buffer{nil, ob, db}, nil, 0, 0)
	defer ad.Release()
	return array.MakeFromData(ad)
}

// Release frees the buffers of the rows not yet flushed. Records returned
// by Flush are not affected. The decoder must not be used afterwards.
func (d *decoder) Release() {
	for _, cs := range [][]colBuf{d.dbl, d.sdata, d.soffs, d.spanB} {
		for i := range cs {
			cs[i].release()
		}
	}
	d.offs.release()
	d.lines.release()
	d.lineOffs.release()
	d.n, d.cap = 0, 0
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
