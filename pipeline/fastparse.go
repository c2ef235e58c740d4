package pipeline

import (
	"bytes"
	"unicode/utf8"
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
func scanPlain(b []byte) (v float64, n int, ok bool) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	var m uint64
	digits, frac := 0, -1 // frac: digits after the '.', -1 before one
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
		return 0, 0, false
	}
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	if i < len(b) && b[i] != ',' {
		return 0, 0, false
	}
	v = float64(int64(m))
	if frac >= 0 {
		v /= pow10[digits-frac]
	}
	if neg {
		v = -v
	}
	return v, i, true
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
// quote at all.
func (d *decoder) addPlain(line []byte, offset int64) bool {
	if !utf8.Valid(line) {
		return false
	}
	p := 0
	last := len(d.kinds) - 1
	for i, kind := range d.kinds[:d.skipFrom] {
		var end int
		if kind == colDouble {
			v, n, ok := scanPlain(line[p:])
			if !ok {
				return false
			}
			d.vals[i] = v
			end = p + n
		} else {
			if p < len(line) && line[p] == '"' {
				return false
			}
			end = p
			for end < len(line) && line[end] != ',' {
				end++
			}
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
		switch kind {
		case colString:
			d.strs[i].Append(line[d.spans[i].start:d.spans[i].end])
		case colDouble:
			d.doubles[i] = append(d.doubles[i], d.vals[i])
		}
	}
	d.offsets = append(d.offsets, offset)
	d.n++
	return true
}

var comma = []byte{','}
