package features

import (
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// Source text of numbers.
//
// Most numbers in CSV exports are written the way Python's repr writes
// them ("0.455", "15"): formatting such a value again only reproduces its
// text. A record may therefore carry, beside its float64 columns, the text
// they were read from, and the text writer copies it instead of
// formatting the value:
//
//   - LineColumn, binary: each row's source text (its input line);
//   - TextColumn(X), uint32, for a float64 column X: each row's Span of
//     X's text in the row's line, or 0 when the value is to be formatted.
//
// Whoever builds the record vouches that a non-zero Span holds exactly
// what AppendPyFloat writes for the value (without the ".0" of an integral
// Span). Transform passes these columns on, unchanged and uncopied, to its
// result, as LineColumn, TextColumn(LabelField) and, for the feature slot
// j of a numeric column, TextColumn(FeatureSlot(j)); AppendRows uses them.

// LineColumn names the binary column of each row's source text.
const LineColumn = "__line"

// TextColumn names the uint32 column of the Spans of column name's text.
func TextColumn(name string) string { return name + ".__text" }

// FeatureSlot names slot j of the features vector, for TextColumn.
func FeatureSlot(j int) string { return FeaturesField + "[" + strconv.Itoa(j) + "]" }

// Span packs the place of a number's text in its line: the text is
// line[start:start+n], 1 <= n <= MaxSpanLen, and integral means it has no
// '.' and ".0" follows it in the repr. The zero Span means no text.
func Span(start, n int, integral bool) uint32 {
	s := uint32(start)<<6 | uint32(n)
	if integral {
		s |= 1 << 5
	}
	return s
}

// MaxSpanLen is the longest text a Span holds; MaxSpanStart its largest
// start.
const (
	MaxSpanLen   = 31
	MaxSpanStart = 1<<26 - 1
)

// appendSpan appends the text of span s in the line at data[base:].
// When data and dst have room, it moves 16 bytes at once (a text is
// seldom longer) rather than calling memmove for a few.
func appendSpan(dst, data []byte, base int, s uint32) []byte {
	start, n := base+int(s>>6), int(s&31)
	if n <= 16 && start+16 <= len(data) && cap(dst)-len(dst) >= 16 {
		*(*[16]byte)(dst[len(dst) : len(dst)+16]) = *(*[16]byte)(data[start : start+16])
		dst = dst[:len(dst)+n]
	} else {
		dst = append(dst, data[start:start+n]...)
	}
	if s&(1<<5) != 0 {
		dst = append(dst, '.', '0')
	}
	return dst
}

// textColumns finds the source text columns of rec for the float64
// columns named: the line column and each one's spans (nil when rec has
// none); ok is false when rec carries no source text.
func textColumns(rec arrow.Record, names []string) (lines *array.Binary, spans []*array.Uint32, ok bool) {
	schema := rec.Schema()
	idx := schema.FieldIndices(LineColumn)
	if len(idx) == 0 {
		return nil, nil, false
	}
	lines, ok = rec.Column(idx[0]).(*array.Binary)
	if !ok || lines.NullN() > 0 {
		return nil, nil, false
	}
	spans = make([]*array.Uint32, len(names))
	for i, n := range names {
		if idx := schema.FieldIndices(TextColumn(n)); len(idx) > 0 {
			if s, ok := rec.Column(idx[0]).(*array.Uint32); ok && s.NullN() == 0 {
				spans[i] = s
			}
		}
	}
	return lines, spans, true
}

// passText returns the source text columns of rec, named for the result
// of Transform: the line column, then the label's and each numeric
// column's spans, which it has. They are rec's own arrays; the caller
// must not release them.
func (m *Model) passText(rec arrow.Record) ([]arrow.Field, []arrow.Array) {
	lines, spans, ok := textColumns(rec, append([]string{m.label}, m.numeric...))
	if !ok {
		return nil, nil
	}
	fields := []arrow.Field{{Name: LineColumn, Type: arrow.BinaryTypes.Binary}}
	cols := []arrow.Array{lines}
	slot := m.width - len(m.numeric) // the numeric columns' first slot
	for i, s := range spans {
		if s == nil {
			continue
		}
		name := TextColumn(LabelField)
		if i > 0 {
			name = TextColumn(FeatureSlot(slot + i - 1))
		}
		fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Uint32})
		cols = append(cols, s)
	}
	return fields, cols
}
