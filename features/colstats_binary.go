package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
)

// columnStatsBinary is the first byte of the binary form, its version.
const columnStatsBinary = 1

// MarshalBinary encodes the stats compactly: what MarshalJSON writes,
// with the histograms as runs of counts over their bins rather than a
// decimal edge per bin, in about a fifth of the bytes and of the time to
// read back. It is the form between processes of one
// version, not a file format: UnmarshalBinary reads only its own version.
func (s *ColumnStats) MarshalBinary() ([]byte, error) {
	if s == nil || s.label == "" {
		return nil, errors.New("features: column stats not initialised")
	}
	b := []byte{columnStatsBinary}
	b = appendString(b, s.label)
	for _, names := range [][]string{s.numeric, s.splits} {
		b = binary.AppendUvarint(b, uint64(len(names)))
		for _, n := range names {
			b = appendString(b, n)
		}
	}
	for _, ns := range [][]NumberStats{s.cols, s.labels} {
		for i := range ns {
			b = ns[i].appendBinary(b)
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendBinary appends n, folded, to b.
func (n *NumberStats) appendBinary(b []byte) []byte {
	n.fold()
	for _, c := range []int64{n.count, n.missing, n.posInf, n.negInf} {
		b = binary.AppendUvarint(b, uint64(c))
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(n.min))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(n.max))
	for _, x := range []*big.Int{n.sum, n.sumSq} {
		b = append(b, byte(x.Sign()+1))
		mag := x.Bytes()
		b = append(binary.AppendUvarint(b, uint64(len(mag))), mag...)
	}
	// A histogram as its zeros, then its bins with values: how many,
	// and for each the distance from the last one's key (from 0 for the
	// first) and its count.
	for _, h := range []*histWindow{&n.pos, &n.neg} {
		b = binary.AppendUvarint(b, uint64(h.zero))
		bins := 0
		for _, c := range h.n {
			if c != 0 {
				bins++
			}
		}
		b = binary.AppendUvarint(b, uint64(bins))
		last := 0
		for i, c := range h.n {
			if c != 0 {
				b = binary.AppendUvarint(b, uint64(h.lo+i-last))
				b = binary.AppendUvarint(b, uint64(c))
				last = h.lo + i
			}
		}
	}
	return b
}

// UnmarshalBinary replaces s with the stats encoded by MarshalBinary. It
// checks them as UnmarshalJSON does (NumberStats.check), and that the
// histogram's bins are on the grid, in order, with values.
func (s *ColumnStats) UnmarshalBinary(data []byte) error {
	r := binReader{b: data}
	if v := r.byte(); v != columnStatsBinary {
		return fmt.Errorf("column stats: binary version %d, want %d", v, columnStatsBinary)
	}
	n := ColumnStats{label: r.string()}
	if r.err == nil && n.label == "" {
		return errors.New("column stats: no label column")
	}
	n.numeric, n.splits = r.strings(), r.strings()
	n.cols = make([]NumberStats, len(n.numeric))
	n.labels = make([]NumberStats, len(n.splits))
	for _, ns := range [][]NumberStats{n.cols, n.labels} {
		for i := range ns {
			if r.err != nil {
				break
			}
			if err := ns[i].readBinary(&r); err != nil {
				return fmt.Errorf("column stats: %w", err)
			}
		}
	}
	if r.err == nil && r.off != len(r.b) {
		r.err = fmt.Errorf("%d bytes after the stats", len(r.b)-r.off)
	}
	if r.err != nil {
		return fmt.Errorf("column stats: %w", r.err)
	}
	*s = n
	return nil
}

// readBinary reads what appendBinary wrote into n, and checks it.
func (n *NumberStats) readBinary(r *binReader) error {
	n.init()
	n.count, n.missing, n.posInf, n.negInf = r.count(), r.count(), r.count(), r.count()
	n.min, n.max = math.Float64frombits(r.uint64()), math.Float64frombits(r.uint64())
	for _, x := range []*big.Int{n.sum, n.sumSq} {
		sign := int(r.byte()) - 1
		mag := r.bytes()
		if r.err != nil {
			return r.err
		}
		if sign < -1 || sign > 1 || (sign == 0) != (len(mag) == 0) || len(mag) > 0 && mag[0] == 0 {
			return errors.New("malformed sum")
		}
		x.SetBytes(mag)
		if sign < 0 {
			x.Neg(x)
		}
	}
	var total int64
	for _, h := range []*histWindow{&n.pos, &n.neg} {
		h.zero = r.count()
		total += h.zero
		bins := r.count()
		if r.err == nil && bins > int64(len(r.b)-r.off)/2 { // two bytes a bin at least
			r.fail("histogram")
		}
		// Read twice: first for the range of the keys, so that the
		// window is made once, at its size, then for the counts.
		from := r.off
		first, last := int64(0), int64(0)
		for i := int64(0); i < bins && r.err == nil; i++ {
			step, c := r.count(), r.count()
			// Keys ascend from above zero's (counted apart) to below
			// the exponent of infinities; every listed bin has values.
			if last += step; step < 1 || last >= 0x7ff<<HistogramBits || c < 1 {
				return errors.New("histogram bin off the grid")
			}
			if i == 0 {
				first = last
			}
		}
		if r.err != nil || bins == 0 {
			continue
		}
		r.off = from
		h.lo, h.n = int(first), make([]int64, last-first+1)
		key := int64(0)
		for range bins {
			step, c := r.count(), r.count()
			key += step
			h.n[key-first] += c
			total += c
		}
	}
	if r.err != nil {
		return r.err
	}
	return n.check(total)
}

// binReader reads the binary form, keeping the first error.
type binReader struct {
	b   []byte
	off int
	err error
}

func (r *binReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or malformed %s at byte %d", what, r.off)
	}
}

func (r *binReader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("byte")
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *binReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.off += n
	return v
}

// count reads a number that must fit an int64.
func (r *binReader) count() int64 {
	v := r.uvarint()
	if v > math.MaxInt64 {
		r.fail("count")
		return 0
	}
	return int64(v)
}

func (r *binReader) uint64() uint64 {
	if r.err != nil || len(r.b)-r.off < 8 {
		r.fail("float")
		return 0
	}
	r.off += 8
	return binary.LittleEndian.Uint64(r.b[r.off-8:])
}

func (r *binReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)-r.off) {
		r.fail("bytes")
		return nil
	}
	r.off += int(n)
	return r.b[r.off-int(n) : r.off]
}

func (r *binReader) string() string { return string(r.bytes()) }

func (r *binReader) strings() []string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)-r.off) { // each takes a byte at least
		r.fail("names")
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.string()
	}
	return out
}
