package features

import (
	"math"
	"slices"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// AppendPyFloat appends v as Python's repr(float) spells it and returns the
// extended buffer. The digits are the shortest that read back to v (Go's
// shortest 'e' digits); with value 0.d1d2...dn x 10^decpt they are laid out
// positionally when -4 < decpt <= 16, that is 1e-4 <= |v| < 1e16 (with ".0"
// appended when there is no fraction: "15.0", "0.0001"), and in exponent
// form otherwise, with a sign and at least two exponent digits ("1e-05",
// "1e+16", "5e-324"). -0.0 keeps its sign; infinities are "inf" and "-inf",
// NaN is "nan".
func AppendPyFloat(dst []byte, v float64) []byte {
	switch {
	case v != v:
		return append(dst, "nan"...)
	case math.IsInf(v, 1):
		return append(dst, "inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-inf"...)
	}
	if v == math.Trunc(v) && v > -1e15 && v < 1e15 {
		// Integers below 2^53 are exact and their shortest digits are the
		// integer's own: the common 0.0 and 1.0 need no float formatting.
		if v == 0 && math.Signbit(v) {
			return append(dst, "-0.0"...)
		}
		return append(strconv.AppendInt(dst, int64(v), 10), '.', '0')
	}
	if out, ok := appendShortDecimal(dst, v); ok {
		return out
	}
	return appendPyFloatStrconv(dst, v)
}

// appendPyFloatStrconv is AppendPyFloat for finite v, laid out from
// strconv's shortest 'e' digits.
func appendPyFloatStrconv(dst []byte, v float64) []byte {
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], v, 'e', -1, 64) // [-]d[.ddd]e±dd[d]
	mant := e
	if mant[0] == '-' {
		dst = append(dst, '-')
		mant = mant[1:]
	}
	ep := len(mant) - 4 // 'e' sits 4 or 5 bytes from the end
	if mant[ep] != 'e' {
		ep--
	}
	exp := 0
	for _, c := range mant[ep+2:] {
		exp = exp*10 + int(c-'0')
	}
	if mant[ep+1] == '-' {
		exp = -exp
	}
	decpt := exp + 1
	if decpt < -3 || decpt > 16 {
		// Go's 'e' layout is Python's: d[.ddd]e±dd, two digits at least.
		return append(dst, mant...)
	}
	// Gather the digits without the decimal point.
	var dbuf [17]byte
	digits := append(dbuf[:0], mant[0])
	if ep > 1 {
		digits = append(digits, mant[2:ep]...)
	}
	switch {
	case decpt <= 0: // 0.000ddd
		dst = append(dst, '0', '.')
		for i := decpt; i < 0; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	case decpt >= len(digits): // ddd000.0
		dst = append(dst, digits...)
		for i := len(digits); i < decpt; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, '.', '0')
	default: // dd.ddd
		dst = append(dst, digits[:decpt]...)
		dst = append(dst, '.')
		dst = append(dst, digits[decpt:]...)
	}
	return dst
}

// AppendRows appends one text line per index in rows, in that order, to dst
// and returns the extended buffer: the label, then each feature value,
// comma-separated and '\n'-terminated, every number as AppendPyFloat
// writes it. rec must be a record returned by Model.Transform (or have its
// OutputSchema) and every index must be in [0, rec.NumRows()); anything
// else is a programming error and panics. AppendRows allocates only when
// dst has to grow.
func AppendRows(dst []byte, rec arrow.Record, rows []int) []byte {
	return TextOf(rec).AppendRows(dst, rows)
}

// Text writes the text lines of one transformed record, as AppendRows
// does: made once (TextOf), it finds the record's columns once for any
// number of calls, such as one per output of a batch's rows.
type Text struct{ t text }

// TextOf returns the Text of rec, which must be a record returned by
// Model.Transform (or have its OutputSchema).
func TextOf(rec arrow.Record) *Text { return &Text{textOf(rec)} }

// AppendRows appends the lines of rows, in that order, to dst; see the
// function AppendRows.
func (x *Text) AppendRows(dst []byte, rows []int) []byte {
	for _, r := range rows {
		dst = x.t.appendLine(dst, r)
	}
	return dst
}

// AppendAll appends the lines of all rows of rec, in order; see AppendRows.
func AppendAll(dst []byte, rec arrow.Record) []byte {
	t := textOf(rec)
	for r := range t.labels {
		dst = t.appendLine(dst, r)
	}
	return dst
}

// text reads the columns of a transformed record.
type text struct {
	labels []float64
	list   *array.FixedSizeList
	values []float64
	// The source text, when the record carries it: the lines, and the
	// spans of the label (spans[0]) and of each slot (spans[1+j]), nil
	// for a value to format.
	lines     *array.Binary
	lineData  []byte  // the lines' bytes
	lineStart []int32 // where each line starts, lineStart[0] at lineData[0]
	spans     [][]uint32
	// runEnd[j], for the first slot j of a run, is the slot past its end:
	// a run is two or more slots in a row that all have spans, which a
	// row whose texts for them lie side by side in its line, one comma
	// apart, copies at once (appendRun).
	runEnd []int
}

func textOf(rec arrow.Record) text {
	list := rec.Column(1).(*array.FixedSizeList)
	t := text{
		labels: rec.Column(0).(*array.Float64).Float64Values(),
		list:   list,
		values: list.ListValues().(*array.Float64).Float64Values(),
	}
	if rec.NumCols() == 2 {
		return t
	}
	w := list.DataType().(*arrow.FixedSizeListType).Len()
	names := make([]string, 1+w)
	names[0] = LabelField
	for j := range int(w) {
		names[1+j] = FeatureSlot(j)
	}
	lines, spans, ok := textColumns(rec, names)
	if !ok {
		return t
	}
	t.lines, t.spans = lines, make([][]uint32, len(spans))
	t.lineData, t.lineStart = lines.ValueBytes(), lines.ValueOffsets()
	for i, s := range spans {
		if s != nil {
			t.spans[i] = s.Uint32Values()
		}
	}
	t.runEnd = make([]int, w)
	for j := 0; j < int(w); {
		k := j
		for k < int(w) && t.spans[1+k] != nil {
			k++
		}
		if k-j >= 2 {
			t.runEnd[j] = k
		}
		j = max(k, j+1)
	}
	return t
}

func (t *text) appendLine(dst []byte, r int) []byte {
	start, end := t.list.ValueOffsets(r)
	if t.lines != nil {
		return t.appendLineText(dst, r, t.values[start:end])
	}
	dst = AppendPyFloat(dst, t.labels[r])
	for _, v := range t.values[start:end] {
		dst = appendNumber(dst, v)
	}
	return append(dst, '\n')
}

// appendLineText is appendLine for a record with source text: a value
// with a span is copied from the row's line.
func (t *text) appendLineText(dst []byte, r int, values []float64) []byte {
	data, base := t.lineData, int(t.lineStart[r]-t.lineStart[0])
	dst = slices.Grow(dst, 24*(len(values)+1)) // appendSpan's room, for most lines
	if s := t.spans[0]; s != nil && s[r] != 0 {
		dst = appendSpan(dst, data, base, s[r])
	} else {
		dst = AppendPyFloat(dst, t.labels[r])
	}
	for j := 0; j < len(values); {
		if k := t.runEnd[j]; k != 0 {
			if out, ok := t.appendRun(dst, data, base, r, j, k); ok {
				dst, j = out, k
				continue
			}
		}
		if s := t.spans[1+j]; s != nil && s[r] != 0 {
			dst = append(dst, ',')
			dst = appendSpan(dst, data, base, s[r])
		} else {
			dst = appendNumber(dst, values[j])
		}
		j++
	}
	return append(dst, '\n')
}

// appendRun appends ',' and the texts of row r's slots j to k-1 when they
// all have a span without ".0" to add and lie side by side in the line at
// data[base:], one comma apart, as the slots' output writes them: one copy
// instead of one per value. ok is false, and dst unchanged, otherwise.
func (t *text) appendRun(dst, data []byte, base, r, j, k int) (out []byte, ok bool) {
	first := t.spans[1+j][r]
	if first == 0 {
		return dst, false
	}
	start := int(first >> 6)
	next := start // where the next slot's text must start
	for _, s := range t.spans[1+j : 1+k] {
		v := s[r]
		if v&(1<<5) != 0 || int(v>>6) != next {
			return dst, false
		}
		next += int(v&31) + 1
	}
	dst = append(dst, ',')
	return appendBytes(dst, data[base+start:base+next-1]), true
}

// appendBytes appends b, 16 bytes at a time while dst has room for them
// and b's array goes on past them (a run is seldom longer than 64 bytes).
func appendBytes(dst, b []byte) []byte {
	n := len(b)
	if cap(dst)-len(dst) < n+16 || cap(b) < n+16 {
		return append(dst, b...)
	}
	b = b[:n+16]
	out := dst[len(dst) : len(dst)+n+16]
	for i := 0; i < n; i += 16 {
		*(*[16]byte)(out[i:]) = *(*[16]byte)(b[i:])
	}
	return dst[:len(dst)+n]
}

// appendNumber appends ',' and v as AppendPyFloat writes it; the one-hot
// slots' 0 and 1 take no call.
func appendNumber(dst []byte, v float64) []byte {
	switch math.Float64bits(v) {
	case 0:
		return append(dst, ",0.0"...)
	case 0x3ff0000000000000: // 1
		return append(dst, ",1.0"...)
	}
	return AppendPyFloat(append(dst, ','), v)
}
