package features

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"slices"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// ColumnStatsVersion is the version written in ColumnStats JSON.
const ColumnStatsVersion = 1

// HistogramBits is the number of mantissa bits that key a histogram bin:
// each binary octave [2^k, 2^(k+1)) is cut into 2^HistogramBits bins of
// equal width, so a bin is at most 1/128 of its values' magnitude wide.
const HistogramBits = 7

// histShift turns a float64's bits without the sign into its bin key.
const histShift = 52 - HistogramBits

// ColumnStats describe the numbers of a Spec's transformed rows: for each
// numeric column over all rows, and for the label column per split of
// the spec, the count, the missing values (null or NaN), the minimum and
// maximum, the exact sum and sum of squares and a histogram on a fixed
// grid (HistogramBits). Every part is exact, so stats computed over
// disjoint parts of the rows and merged in any order and grouping are
// identical, bit for bit, to the stats of all rows: the same for any
// number of workers and any split size. A ColumnStats is not safe for
// concurrent use; give each goroutine its own and Merge them.
type ColumnStats struct {
	numeric []string
	label   string
	splits  []string
	cols    []NumberStats // numeric columns, in spec order
	labels  []NumberStats // the label column, one per split, in spec order
}

// NumberStats are the statistics of one column's numbers.
type NumberStats struct {
	count, missing int64
	posInf, negInf int64
	min, max       float64
	sum, sumSq     *big.Int // exact: sum = sum·2^-1074, sum of squares = sumSq·2^-2148
	acc            *accumulator
	pos, neg       histWindow // bins of values >= +0 and <= -0, by magnitude
}

// NewColumnStats returns empty column stats for spec, which must be valid.
func NewColumnStats(spec *Spec) *ColumnStats {
	s := &ColumnStats{numeric: slices.Clone(spec.Numeric), label: spec.Label}
	for _, sp := range spec.Splits {
		s.splits = append(s.splits, sp.Name)
	}
	s.cols = make([]NumberStats, len(s.numeric))
	s.labels = make([]NumberStats, len(s.splits))
	for _, n := range [][]NumberStats{s.cols, s.labels} {
		for i := range n {
			n[i].init()
		}
	}
	return s
}

func (n *NumberStats) init() {
	n.min, n.max = math.Inf(1), math.Inf(-1)
	n.sum, n.sumSq = new(big.Int), new(big.Int)
}

// Add adds the rows of rec: every row to the numeric columns' stats, and
// the rows listed in rows[k] (indices into rec) to the label's stats of
// split k. The numeric and label columns are found in rec by name and
// must be float64. rec is only read, never retained.
func (s *ColumnStats) Add(rec arrow.Record, rows [][]int) error {
	if s == nil || s.label == "" {
		return errors.New("features: column stats not initialised (use NewColumnStats or UnmarshalJSON)")
	}
	if len(rows) != len(s.labels) {
		return fmt.Errorf("features: %d row sets for %d splits", len(rows), len(s.labels))
	}
	for i, name := range s.numeric {
		col, err := float64Column(rec, name)
		if err != nil {
			return err
		}
		s.cols[i].addColumn(col)
	}
	col, err := float64Column(rec, s.label)
	if err != nil {
		return err
	}
	for k, rs := range rows {
		s.labels[k].addRows(col, rs)
	}
	return nil
}

// addColumn adds every value of col.
func (n *NumberStats) addColumn(col *array.Float64) {
	if col.NullN() > 0 {
		for r := range col.Len() {
			n.addValue(col, r)
		}
		return
	}
	vals := col.Float64Values()
	n.accumulate(len(vals)).addValues(n, vals)
}

// addRows adds the values of col at rows.
func (n *NumberStats) addRows(col *array.Float64, rows []int) {
	if col.NullN() > 0 {
		for _, r := range rows {
			n.addValue(col, r)
		}
		return
	}
	vals := col.Float64Values()
	for len(rows) > 0 {
		var buf [256]float64
		k := min(len(rows), len(buf))
		for j, r := range rows[:k] {
			buf[j] = vals[r]
		}
		n.accumulate(k).addValues(n, buf[:k])
		rows = rows[k:]
	}
}

func (n *NumberStats) addValue(col *array.Float64, r int) {
	if col.IsNull(r) {
		n.missing++
		return
	}
	n.accumulate(1).add(n, col.Value(r))
}

// accumulator sums values exactly: per biased binary exponent e of the
// values (e >= 1), the signed sum of their 53-bit integer mantissas and
// the sum of their squares, each a 128-bit integer. A value is
// m·2^(e-1075) and its square m²·2^(2e-2150), so these sums hold the
// exact totals until they are folded into NumberStats' big integers.
type accumulator struct {
	sum    [exponents][2]uint64 // lo, hi of a two's complement int128
	sq     [exponents][2]uint64 // lo, hi of a uint128
	pendSq int                  // squares added since the last fold; each < 2^106
}

// exponents is the number of biased exponents of finite float64s, 1 to
// 2046 (subnormals count as exponent 1).
const exponents = 2046

// maxPendingSquares keeps the uint128 sums of squares from overflowing.
const maxPendingSquares = 1 << 21

// accumulate returns n's accumulator, ready for another k values.
func (n *NumberStats) accumulate(k int) *accumulator {
	if n.acc == nil {
		n.acc = new(accumulator)
	}
	if n.acc.pendSq+k > maxPendingSquares {
		n.fold()
	}
	n.acc.pendSq += k
	return n.acc
}

// addValues adds vals, none of them null. Finite values of positive sign,
// by far the most common, take a path that keeps its state in locals;
// the others go through add.
func (a *accumulator) addValues(n *NumberStats, vals []float64) {
	lo, h := n.pos.lo, n.pos.n
	mn, mx, count := n.min, n.max, n.count
	for _, v := range vals {
		b := math.Float64bits(v)
		e := int(b >> 52)
		if e == 0 || e >= 0x7ff { // zero, subnormal, negative, infinite or NaN
			n.pos.lo, n.pos.n, n.min, n.max, n.count = lo, h, mn, mx, count
			a.add(n, v)
			lo, h, mn, mx, count = n.pos.lo, n.pos.n, n.min, n.max, n.count
			continue
		}
		count++
		if v < mn {
			mn = v
		}
		if v > mx {
			mx = v
		}
		if i := int(b>>histShift) - lo; uint(i) < uint(len(h)) {
			h[i]++
		} else {
			n.pos.grow(int(b>>histShift), 1)
			lo, h = n.pos.lo, n.pos.n
		}
		m := b&(1<<52-1) | 1<<52
		s, q := &a.sum[e-1], &a.sq[e-1]
		var carry uint64
		s[0], carry = bits.Add64(s[0], m, 0)
		s[1] += carry
		hi, l := bits.Mul64(m, m)
		q[0], carry = bits.Add64(q[0], l, 0)
		q[1] += hi + carry
	}
	n.pos.lo, n.pos.n, n.min, n.max, n.count = lo, h, mn, mx, count
}

// add adds one value, which is not null.
func (a *accumulator) add(n *NumberStats, v float64) {
	b := math.Float64bits(v)
	e := int(b>>52) & 0x7ff
	if e == 0x7ff {
		switch {
		case v != v:
			n.missing++
		case v > 0:
			n.posInf++
			n.count++
			n.max = v
		default:
			n.negInf++
			n.count++
			n.min = v
		}
		return
	}
	n.count++
	n.min = min(n.min, v)
	n.max = max(n.max, v)
	key := int((b &^ (1 << 63)) >> histShift)
	m := b & (1<<52 - 1)
	if e == 0 {
		e = 1
	} else {
		m |= 1 << 52
	}
	i := e - 1
	s := &a.sum[i]
	if b>>63 != 0 {
		n.neg.add(key)
		var borrow uint64
		s[0], borrow = bits.Sub64(s[0], m, 0)
		s[1] -= borrow
	} else {
		n.pos.add(key)
		var carry uint64
		s[0], carry = bits.Add64(s[0], m, 0)
		s[1] += carry
	}
	hi, lo := bits.Mul64(m, m)
	q := &a.sq[i]
	var carry uint64
	q[0], carry = bits.Add64(q[0], lo, 0)
	q[1] += hi + carry
}

// fold moves the accumulator's sums into the big integers.
func (n *NumberStats) fold() {
	a := n.acc
	if a == nil {
		return
	}
	var t big.Int
	for i := range a.sum {
		s, q := &a.sum[i], &a.sq[i]
		if s[0]|s[1] != 0 {
			n.sum.Add(n.sum, t.Lsh(int128(s[1], s[0]), uint(i)))
		}
		if q[0]|q[1] != 0 {
			n.sumSq.Add(n.sumSq, t.Lsh(uint128(q[1], q[0]), uint(2*i)))
		}
		*s, *q = [2]uint64{}, [2]uint64{}
	}
	a.pendSq = 0
}

func uint128(hi, lo uint64) *big.Int {
	z := new(big.Int).SetUint64(hi)
	z.Lsh(z, 64)
	return z.Or(z, new(big.Int).SetUint64(lo))
}

func int128(hi, lo uint64) *big.Int {
	if hi>>63 == 0 {
		return uint128(hi, lo)
	}
	lo, borrow := bits.Sub64(0, lo, 0)
	hi, _ = bits.Sub64(0, hi, borrow)
	return uint128(hi, lo).Neg(uint128(hi, lo))
}

// histWindow counts values by bin key over the keys lo..lo+len(n)-1.
type histWindow struct {
	lo int
	n  []int64
}

func (h *histWindow) add(key int) {
	if i := key - h.lo; i >= 0 && i < len(h.n) {
		h.n[i]++
		return
	}
	h.grow(key, 1)
}

// grow adds c to the count of key, widening the window to reach it by
// at least half its size, so that a task's window grows a few times only.
func (h *histWindow) grow(key int, c int64) {
	if len(h.n) == 0 {
		h.lo, h.n = key, make([]int64, 1, 64)
	}
	if key < h.lo {
		lo := max(min(key, h.lo-len(h.n)/2), 0)
		n := make([]int64, h.lo-lo+len(h.n), h.lo-lo+len(h.n)+64)
		copy(n[h.lo-lo:], h.n)
		h.lo, h.n = lo, n
	}
	if i := key - h.lo; i >= len(h.n) {
		// Past len(h.n) the array holds zeros: nothing is written there.
		size := max(i+1, len(h.n)+len(h.n)/2)
		h.n = slices.Grow(h.n, size-len(h.n))[:size]
	}
	h.n[key-h.lo] += c
}

// Merge adds o's stats to s. Merging is associative and commutative and
// exact. It is an error (and s is left unchanged) if o was made for a
// different spec.
func (s *ColumnStats) Merge(o *ColumnStats) error {
	if s == nil || o == nil || s.label == "" || o.label == "" {
		return errors.New("features: column stats not initialised")
	}
	if !slices.Equal(s.numeric, o.numeric) || s.label != o.label || !slices.Equal(s.splits, o.splits) {
		return fmt.Errorf("features: column stats for different specs: numeric %q, label %q, splits %q vs %q, %q, %q",
			s.numeric, s.label, s.splits, o.numeric, o.label, o.splits)
	}
	if o == s {
		c := s.clone()
		o = c
	}
	for i := range s.cols {
		s.cols[i].merge(&o.cols[i])
	}
	for i := range s.labels {
		s.labels[i].merge(&o.labels[i])
	}
	return nil
}

func (s *ColumnStats) clone() *ColumnStats {
	c := &ColumnStats{numeric: s.numeric, label: s.label, splits: s.splits,
		cols: make([]NumberStats, len(s.cols)), labels: make([]NumberStats, len(s.labels))}
	for i := range s.cols {
		c.cols[i].init()
		c.cols[i].merge(&s.cols[i])
	}
	for i := range s.labels {
		c.labels[i].init()
		c.labels[i].merge(&s.labels[i])
	}
	return c
}

func (n *NumberStats) merge(o *NumberStats) {
	n.fold()
	o.fold()
	n.count += o.count
	n.missing += o.missing
	n.posInf += o.posInf
	n.negInf += o.negInf
	n.min, n.max = min(n.min, o.min), max(n.max, o.max)
	n.sum.Add(n.sum, o.sum)
	n.sumSq.Add(n.sumSq, o.sumSq)
	for i, c := range o.pos.n {
		if c != 0 {
			n.pos.grow(o.pos.lo+i, c)
		}
	}
	for i, c := range o.neg.n {
		if c != 0 {
			n.neg.grow(o.neg.lo+i, c)
		}
	}
}

// Numeric returns the stats of the numeric columns, in spec order.
func (s *ColumnStats) Numeric() []ColumnSummary {
	out := make([]ColumnSummary, len(s.cols))
	for i := range s.cols {
		out[i] = s.cols[i].summary(s.numeric[i])
	}
	return out
}

// Label returns the label column's stats of each split, in spec order;
// each summary's Column is the split's name.
func (s *ColumnStats) Label() (column string, splits []ColumnSummary) {
	splits = make([]ColumnSummary, len(s.labels))
	for i := range s.labels {
		splits[i] = s.labels[i].summary(s.splits[i])
	}
	return s.label, splits
}
