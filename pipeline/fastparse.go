package pipeline

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf8"

	"github.com/shardprep/shardprep/features"
)

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}

// scanPlain reads a plain decimal at the start of b: spaces and tabs, an
// optional sign, digits with at most one '.' among or around them (at
// least one digit, at most 19 in all), spaces and tabs. It stops at the
// end of b or at a ',' and returns the value and the number of bytes read.
// ok is false when b does not start that way (an exponent, "inf", '_', a
// quote, any other byte before the stop) or when the digits form a
// mantissa of 2^53 or more; the caller then takes the general path.
//
// When ok, v is bit for bit strconv.ParseFloat of the number: with
// mantissa m < 2^53 and k <= 19 fraction digits, m and 10^k are float64s
// and float64(m)/10^k is the correctly rounded quotient (Clinger's fast
// path), which is what ParseFloat returns; a '-' gives -0 for zero as
// ParseFloat does.
//
// text is the features.Span of the number's text in b when that text is
// already v's Python repr (see reprSpan), else 0.
func scanPlain(b []byte) (v float64, n int, text uint32, ok bool) {
	if v, n, text, ok := scanShort(b); ok {
		return v, n, text, true
	}
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	begin := i
	neg := false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	var m uint64
	digits, frac := 0, -1 // frac: digits before the '.', -1 before one
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c < 10 {
			m = m*10 + uint64(c)
			digits++
			continue
		}
		if b[i] != '.' || frac >= 0 {
			break
		}
		frac = digits
	}
	if digits == 0 || digits > 19 || m >= 1<<53 {
		return 0, 0, 0, false
	}
	end := i
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	if i < len(b) && b[i] != ',' {
		return 0, 0, 0, false
	}
	v = float64(int64(m))
	if frac >= 0 {
		v /= pow10[digits-frac]
	}
	if neg {
		v = -v
	}
	if b[begin] != '+' {
		text = reprSpan(b, begin, end, m, frac)
	}
	return v, i, text, true
}

// scanShort is scanPlain for the common number: no blank, no sign, 1 to
// 7 digits, and when there is a '.', 1 to 7 digits after it, then the end
// of b or a ','. It reads 8 bytes at a time and reports !ok for anything
// else, which scanPlain then reads byte by byte.
//
// The value is computed as scanPlain does (m < 10^14 < 2^53, divided by
// the power of ten of the fraction digits), and the text is the repr
// under reprSpan's rules: an integer without a leading zero (or "0"); a
// decimal without a trailing zero, without a leading zero unless it is
// "0." and not below 1e-4 ("0.0000" starts the fraction of those below).
func scanShort(b []byte) (v float64, n int, text uint32, ok bool) {
	x, past := load8(b)
	k := bits.TrailingZeros64(nonDigits(x)|past) >> 3 // digits before the point
	if k == 0 || k == 8 {
		return 0, 0, 0, false
	}
	ip := digitsValue(x, k)
	if k == len(b) || b[k] == ',' {
		if b[0] != '0' || k == 1 {
			text = features.Span(0, k, true)
		}
		return float64(int64(ip)), k, text, true
	}
	if b[k] != '.' {
		return 0, 0, 0, false
	}
	f := b[k+1:]
	y, past := load8(f)
	j := bits.TrailingZeros64(nonDigits(y)|past) >> 3 // digits after the point
	if j == 0 || j == 8 || (j < len(f) && f[j] != ',') {
		return 0, 0, 0, false
	}
	n = k + 1 + j
	v = float64(int64(ip*pow10u[j]+digitsValue(y, j))) / pow10[j]
	if f[j-1] != '0' && (b[0] != '0' || (k == 1 && (j < 4 || uint32(y) != 0x30303030))) {
		text = features.Span(0, n, false)
	}
	return v, n, text, true
}

// pow10u holds the powers of ten below 10^8.
var pow10u = [8]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7}

// load8 returns b's first 8 bytes as a little-endian word, and a mask
// with the high bit of each of those 8 bytes that b does not have. Past
// len(b) the word holds what b's array holds there when its capacity
// reaches (a line's last field is followed by the rest of the read
// buffer), which the mask tells apart.
func load8(b []byte) (x, past uint64) {
	if len(b) >= 8 {
		return binary.LittleEndian.Uint64(b), 0
	}
	past = 0x8080808080808080 << (8 * len(b))
	if cap(b) >= 8 {
		return binary.LittleEndian.Uint64(b[:8]), past
	}
	var t [8]byte
	copy(t[:], b)
	return binary.LittleEndian.Uint64(t[:]), past
}

// nonDigits returns the high bit of each byte of x that is not an ASCII
// digit. Each byte is tested on its own: no carry crosses bytes.
func nonDigits(x uint64) uint64 {
	const low7, high = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	l := x & low7
	above := l + 0x4646464646464646   // high bit: byte >= '9'+1
	atLeast := l + 0x5050505050505050 // high bit: byte >= '0'
	return (above | ^atLeast | x) & high
}

// digitsValue returns the number that the first k (1 to 8) bytes of x,
// ASCII digits, the first the most significant, spell: the k digits are
// moved to the top of an 8-digit word, below zeros, and combined in pairs,
// fours and eights by multiplication.
func digitsValue(x uint64, k int) uint64 {
	x = (x - 0x3030303030303030) << (64 - 8*uint(k)) // no borrow out of the k digits
	x = x*10 + x>>8
	return ((x&0x000000ff000000ff)*(100+1000000<<32) + (x>>16&0x000000ff000000ff)*(1+10000<<32)) >> 32
}

// reprSpan returns the features.Span of b[begin:end], a number scanPlain
// has read (an optional '-', then digits and at most one '.'; mantissa
// m < 2^53, frac digits before the '.' or -1 without one), when that text
// is the Python repr of its value
// (with ".0" appended to an integer), else 0. It is when
//
//   - an integer has no leading zero (unless it is "0"): m < 2^53 is the
//     value exactly, below 1e16, so its repr is its digits and ".0";
//   - a decimal has a digit on each side of the '.', no leading zero
//     before it (unless it is "0." and the value is at least 1e-4, the
//     least that Python writes positionally), no trailing zero after it,
//     and at most 15 significant digits (m < 10^15; leading zeros add
//     nothing to m): any decimal of at most 15 significant digits reads
//     back from the double nearest to it (15 is DBL_DIG), so no two of
//     them share a double and no shorter decimal reads back to v: v's
//     shortest digits are these, and the positional layout puts them
//     where they are.
func reprSpan(b []byte, begin, end int, m uint64, frac int) uint32 {
	if end-begin > features.MaxSpanLen || begin > features.MaxSpanStart {
		return 0
	}
	first, digits := begin, end-begin
	if b[begin] == '-' {
		first++
		digits--
	}
	if frac >= 0 {
		digits-- // the '.'
	}
	lead := b[first] == '0' // first is a digit: a '.' there means frac == 0
	if frac < 0 {
		if lead && digits > 1 {
			return 0
		}
		return features.Span(begin, end-begin, true)
	}
	if frac == 0 || frac == digits || b[end-1] == '0' || m >= 1e15 {
		return 0
	}
	if lead && (frac > 1 || (end-first >= 6 && string(b[first+2:first+6]) == "0000")) {
		return 0
	}
	return features.Span(begin, end-begin, false)
}

// span is a field's place in its line, line[start:end]. (Offsets rather
// than slices: storing them needs no write barrier.)
type span struct{ start, end int }

// addPlain is Add for the common line: no field starts with a quote and
// every double field is a plain decimal (see scanPlain). It reports false,
// having added nothing, for any other line, which Add then decodes by the
// general rules; when it reports true the row is exactly what the general
// path would add. Columns from d.skipFrom on are all skipped (the fit
// pass's numbers): for them it only counts the commas, in a line with no
// quote at all. The row's values go in place, at row d.n of the batch's
// buffers; they count only once addRow has ended the row.
func (d *decoder) addPlain(line []byte, offset int64) bool {
	if !validUTF8(line) {
		return false
	}
	if d.n == d.cap {
		d.grow()
	}
	p := 0
	last := len(d.kinds) - 1
	row := d.n
	for i, kind := range d.kinds[:d.skipFrom] {
		var end int
		if kind == colDouble {
			v, n, text, ok := scanShort(line[p:])
			if !ok {
				if v, n, text, ok = scanPlain(line[p:]); !ok {
					return false
				}
			}
			d.dvals[i][row] = v
			if d.text {
				if text != 0 {
					text += uint32(p) << 6 // the Span's start, from the field's to the line's
				}
				d.spanv[i][row] = text
			}
			end = p + n
		} else {
			if p < len(line) && line[p] == '"' {
				return false
			}
			end = p + fieldEnd(line[p:])
			if kind == colString {
				if end == p {
					return false
				}
				d.spans[i] = span{p, end}
			}
		}
		if i == last {
			if end != len(line) {
				return false
			}
		} else {
			if end == len(line) {
				return false
			}
			p = end + 1
		}
	}
	if d.skipFrom <= last {
		rest := line[p:]
		if bytes.IndexByte(rest, '"') >= 0 || bytes.Count(rest, comma) != last-d.skipFrom {
			return false
		}
	}
	for i, kind := range d.kinds[:d.skipFrom] {
		if kind == colString && !d.appendVar(&d.sdata[i], d.soffv[i], line[d.spans[i].start:d.spans[i].end]) {
			return false
		}
	}
	d.addRow(line, offset)
	return true
}

// fieldEnd returns the length of the unquoted field at the start of b: the
// index of the first ',', or len(b).
func fieldEnd(b []byte) int {
	// Short fields (a label) are the rule: look at a few bytes before
	// calling IndexByte.
	for i := 0; i < 4; i++ {
		if i == len(b) || b[i] == ',' {
			return i
		}
	}
	if j := bytes.IndexByte(b[4:], ','); j >= 0 {
		return 4 + j
	}
	return len(b)
}

var comma = []byte{','}

// validUTF8 is utf8.Valid, faster for the common line of ASCII bytes of
// some length: it ORs them together 16 at a time (the last 8 read again
// where they overlap), and leaves any other line to utf8.Valid.
func validUTF8(b []byte) bool {
	if len(b) < 8 {
		return utf8.Valid(b)
	}
	or := binary.LittleEndian.Uint64(b[len(b)-8:])
	i := 0
	for ; i+16 <= len(b); i += 16 {
		or |= binary.LittleEndian.Uint64(b[i:]) | binary.LittleEndian.Uint64(b[i+8:])
	}
	if i+8 <= len(b) {
		or |= binary.LittleEndian.Uint64(b[i:])
	}
	return or&0x8080808080808080 == 0 || utf8.Valid(b)
}
