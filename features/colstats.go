package features

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"slices"
	"sync"
	"unsafe"

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
		var buf [1024]float64
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
// exact totals until they are folded into NumberStats' big integers. (A
// sum at exponent index i may also hold mantissas of higher exponents
// shifted to i, and a sum of squares carries into index i+64.)
//
// Values of one sign whose exponents lie in a window of a few exponents,
// by far the most common, take a fast path (addValues): the window's
// histogram bins are counted in hist, a dense array, until fold moves
// them into NumberStats' histograms.
type accumulator struct {
	sum    [exponents][2]uint64 // lo, hi of a two's complement int128
	sq     [exponents][2]uint64 // lo, hi of a uint128
	pendSq int                  // squares added since the last fold; each < 2^106
	// from, to bound the exponent indices of sum and sq written since
	// the last fold (none when to is 0), which fold reads and clears: a
	// column's values span a few exponents of the 2046.
	from, to int

	// wkey is the histogram key, sign bit included, of the window's
	// first bin; 0 while there is no window. Bin k of hist counts the
	// values of key wkey+k: those of the window's sign with an exponent
	// from its base (wkey>>HistogramBits, sign bit included) to
	// base+window-1. Two copies take alternate values, so that equal
	// neighbours do not wait for each other's count.
	wkey   uint64
	scale  float64               // for sumScaled, or 0
	mn, mx uint64                // the least and greatest bits of the window's values
	hist   [2][windowBins]uint32 // < maxPendingSquares values between folds
	hits   int                   // values in the window and out of it
	misses int

	// lanes hold what countSumLanes counted, when laned, until addValues
	// adds it to the window's sums.
	lanes laneSums
	laned bool
}

// spareAccumulators keeps the accumulators of merged stats, empty, for
// new ones: a task's stats would otherwise take their 76 KB each from
// fresh memory. (Not a sync.Pool: it drops what it holds at every
// garbage collection, several times a second here.)
var spareAccumulators = &accumulators{max: 64}

// accumulators is a free list of empty accumulators, safe for
// concurrent use.
type accumulators struct {
	mu   sync.Mutex
	max  int
	free []*accumulator
}

func (l *accumulators) take() *accumulator {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		a := l.free[n-1]
		l.free = l.free[:n-1]
		return a
	}
	return new(accumulator)
}

// keep takes back a, folded: its sums and histogram are zero.
func (l *accumulators) keep(a *accumulator) {
	a.wkey, a.scale, a.mn, a.mx = 0, 0, 0, 0
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < l.max {
		l.free = append(l.free, a)
	}
}

// exponents is the number of biased exponents of finite float64s, 1 to
// 2046 (subnormals count as exponent 1).
const exponents = 2046

// maxPendingSquares keeps the uint128 sums of squares from overflowing.
const maxPendingSquares = 1 << 21

// accumulate returns n's accumulator, ready for another k values.
func (n *NumberStats) accumulate(k int) *accumulator {
	if n.acc == nil {
		n.acc = spareAccumulators.take()
	}
	if n.acc.pendSq+k > maxPendingSquares {
		n.fold()
	}
	n.acc.pendSq += k
	return n.acc
}

// window is how many binary exponents, from a base up, the fast path of
// addValues sums in registers: a mantissa (< 2^53) shifted left by up
// to window-1 bits stays below 2^63, and its square below 2^126.
const window = 11

// windowProbe is how many values setWindow looks at for the greatest
// exponent.
const windowProbe = 64

// windowBins is the number of histogram bins of a window.
const windowBins = window << HistogramBits

// maxBase is the largest base exponent of a window: its squares' sums
// carry into the exponent 64 above, which must exist, and infinities and
// NaNs (exponent 0x7ff) must fall outside the window.
const maxBase = exponents - 64

// addValues adds vals, none of them null. Those in the accumulator's
// window go through countWindow and sumWindow, whose loops make no call
// and keep their state in registers; the others through add. The window
// is set around the first finite value that is not zero or subnormal,
// and set anew at the next call when many values missed it (since it was
// set or since the last fold).
func (a *accumulator) addValues(n *NumberStats, vals []float64) {
	if a.wkey == 0 && !a.setWindow(vals) {
		for _, v := range vals {
			a.add(n, v)
		}
		return
	}
	var s sum128
	var q sum192
	counted, missed := 0, 0
	for len(vals) > 0 {
		var k int
		k, s, q = a.countSum(vals, s, q)
		counted += k
		if k == len(vals) {
			break
		}
		a.add(n, vals[k])
		missed++
		vals = vals[k+1:]
	}
	if a.laned {
		s, q, a.mn, a.mx = a.lanes.reduce(s, q, a.mn, a.mx)
		a.laned = false
	}
	a.addWindow(n, s, q, counted)
	a.hits += counted
	a.misses += missed
	if a.misses > 64 && a.misses > a.hits/4 {
		n.flushWindow()
		a.wkey = 0
	}
}

// setWindow sets the window for the first value of vals with an exponent
// from 1 to 0x7fe, if there is one: of its sign, and reaching one
// exponent above the greatest of that sign among the next values
// (windowProbe of them), so that the values below, common in a column of
// decimals such as 0.0019 to 2.97, fall in it too.
func (a *accumulator) setWindow(vals []float64) bool {
	for i, v := range vals {
		b := math.Float64bits(v)
		if e := int(b>>52) & 0x7ff; e >= 1 && e < 0x7ff {
			top := e
			for _, w := range vals[i+1 : min(len(vals), i+windowProbe)] {
				c := math.Float64bits(w)
				if f := int(c>>52) & 0x7ff; c>>63 == b>>63 && f < 0x7ff {
					top = max(top, f)
				}
			}
			base := min(max(top+2-window, 1), maxBase)
			a.wkey = (b>>63<<11 | uint64(base)) << HistogramBits
			a.mn, a.mx = math.MaxUint64, 0
			a.hits, a.misses = 0, 0
			a.scale = 0
			if base >= minScaledBase {
				a.scale = math.Float64frombits(b>>63<<63 | uint64(2098-base)<<52)
			}
			return true
		}
	}
	return false
}

// countSum counts in the window's histogram, and sums, the values from
// the start of vals while each lies in the window; it returns how many it
// took. Groups of 8 values go to countSumLanes where it runs on vector
// units and the window can be scaled; what they leave, to countWindow and
// sumWindow.
func (a *accumulator) countSum(vals []float64, s sum128, q sum192) (int, sum128, sum192) {
	j := 0
	if haveLanes && a.scale != 0 && len(vals) >= 8 {
		if !a.laned {
			a.lanes.reset()
			a.laned = true
		}
		j = countSumLanes(vals, &a.hist, a.wkey, a.scale, &a.lanes)
	}
	k := j + a.countWindow(vals[j:])
	s, q = a.sumWindow(vals[j:k], s, q)
	return k, s, q
}

// countWindow counts, in the window's histogram, the values from the
// start of vals while each lies in the window, and notes their least and
// greatest bits; it returns how many it counted.
func (a *accumulator) countWindow(vals []float64) int {
	// In pairs, as bits: each of a pair goes to its own copy of the
	// histogram.
	var pairs [][2]uint64
	if len(vals) >= 2 { // the first pair's pointer must lie within vals
		pairs = unsafe.Slice((*[2]uint64)(unsafe.Pointer(unsafe.SliceData(vals))), len(vals)/2)
	}
	h0, h1 := &a.hist[0], &a.hist[1]
	wkey, mn, mx := a.wkey, a.mn, a.mx
	span := mx - mn
	i := 0
	for j := range pairs {
		b0, b1 := pairs[j][0], pairs[j][1]
		k0, k1 := b0>>histShift-wkey, b1>>histShift-wkey
		if k0 >= windowBins || k1 >= windowBins {
			break
		}
		h0[k0]++
		h1[k1]++
		// Rarely true once a few values were seen: a branch, not a
		// chain of conditional moves.
		if b0-mn > span || b1-mn > span {
			mn, mx = min(mn, b0, b1), max(mx, b0, b1)
			span = mx - mn
		}
		i += 2
	}
	for ; i < len(vals); i++ {
		b := math.Float64bits(vals[i])
		k := b>>histShift - wkey
		if k >= windowBins {
			break
		}
		h0[k]++
		mn, mx = min(mn, b), max(mx, b)
	}
	a.mn, a.mx = mn, mx
	return i
}

// sum128 is a 128-bit sum of mantissas, sum192 a 192-bit sum of their
// squares. (Apart, each is small enough to live in registers.)
type (
	sum128 struct{ lo, hi uint64 }
	sum192 struct{ lo, mid, hi uint64 }
)

// sumWindow adds to s the mantissas of vals, values of the window,
// shifted to its base exponent, and to q their squares.
func (a *accumulator) sumWindow(vals []float64, s sum128, q sum192) (sum128, sum192) {
	if a.scale != 0 {
		return sumScaled(vals, a.scale, s, q)
	}
	return sumShifted(vals, a.wkey>>HistogramBits, s, q)
}

// minScaledBase is the least base exponent of a window that sumScaled
// can sum: 2^(1075-base) is a float64.
const minScaledBase = 52

// sumScaled sums values whose mantissas, shifted to their window's base
// exponent, are the values times scale = ±2^(1075-base) (of the window's
// sign), exactly: integers below 2^63.
func sumScaled(vals []float64, scale float64, s sum128, q sum192) (sum128, sum192) {
	for _, v := range vals {
		m := uint64(int64(v * scale))
		s, q = addMantissa(s, q, m)
	}
	return s, q
}

// addMantissa adds m to s and its square to q (small enough to inline
// into the loops above).
func addMantissa(s sum128, q sum192, m uint64) (sum128, sum192) {
	var c uint64
	s.lo, c = bits.Add64(s.lo, m, 0)
	s.hi, _ = bits.Add64(s.hi, 0, c)
	hi, lo := bits.Mul64(m, m)
	q.lo, c = bits.Add64(q.lo, lo, 0)
	q.mid, c = bits.Add64(q.mid, hi, c)
	q.hi, _ = bits.Add64(q.hi, 0, c)
	return s, q
}

// sumShifted is sumScaled for any window: base is its base exponent,
// sign bit included.
func sumShifted(vals []float64, base uint64, s sum128, q sum192) (sum128, sum192) {
	for _, v := range vals {
		b := math.Float64bits(v)
		m := (b&(1<<52-1) | 1<<52) << ((b>>52 - base) & 63)
		s, q = addMantissa(s, q, m)
	}
	return s, q
}

// addWindow adds to n and a the sums of count values of the window.
func (a *accumulator) addWindow(n *NumberStats, s sum128, q sum192, count int) {
	if count == 0 {
		return
	}
	n.count += int64(count)
	lo, hi := math.Float64frombits(a.mn), math.Float64frombits(a.mx)
	base := int(a.wkey>>HistogramBits) & 0x7ff
	sum := &a.sum[base-1]
	a.used(base - 1)
	var c uint64
	if a.wkey>>(11+HistogramBits) != 0 { // negative: the least bits are the greatest value
		lo, hi = hi, lo
		sum[0], c = bits.Sub64(sum[0], s.lo, 0)
		sum[1] -= s.hi + c
	} else {
		sum[0], c = bits.Add64(sum[0], s.lo, 0)
		sum[1] += s.hi + c
	}
	n.min, n.max = min(n.min, lo), max(n.max, hi)
	a.addSquares(base-1, q.mid, q.lo)
	a.addSquares(base-1+64, 0, q.hi) // 2^128 at exponent index i is 1 at i+64
}

// flushWindow moves the counts of the window's histogram into n's.
func (n *NumberStats) flushWindow() {
	a := n.acc
	if a == nil || a.wkey == 0 {
		return
	}
	h := &n.pos
	if a.wkey>>(11+HistogramBits) != 0 {
		h = &n.neg
	}
	if a.mn > a.mx {
		return // nothing counted since the window was set
	}
	// The bins written lie between those of the least and the greatest
	// bits seen, often a few exponents of the window's eleven.
	first, last := int(a.mn>>histShift-a.wkey), int(a.mx>>histShift-a.wkey)
	key := int(a.wkey & (1<<(11+HistogramBits) - 1))
	h.grow(key+first, 0)
	h.grow(key+last, 0)
	n0, h0, h1 := h.n[key+first-h.lo:key+last+1-h.lo], a.hist[0][first:last+1], a.hist[1][first:last+1]
	for i := range n0 {
		n0[i] += int64(h0[i] + h1[i])
		h0[i], h1[i] = 0, 0
	}
}

// addSquares adds the 128-bit hi, lo to the sum of squares of exponent
// index i; a carry out of it goes on, as 1, to index i+64, which stands
// for 2^128 times as much, when there is one. (Above that, the sums stay
// below 2^128 by maxPendingSquares.)
func (a *accumulator) addSquares(i int, hi, lo uint64) {
	for {
		a.used(i)
		q := &a.sq[i]
		var c uint64
		q[0], c = bits.Add64(q[0], lo, 0)
		q[1], c = bits.Add64(q[1], hi, c)
		if c == 0 || i+64 >= exponents {
			return
		}
		i, hi, lo = i+64, 0, 1
	}
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
	a.used(i)
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
	a.addSquares(i, hi, lo)
}

// fold moves the accumulator's sums into the big integers.
func (n *NumberStats) fold() {
	a := n.acc
	if a == nil {
		return
	}
	n.flushWindow()
	a.hits, a.misses = 0, 0
	var t big.Int
	for i := a.from; i < a.to; i++ {
		s, q := &a.sum[i], &a.sq[i]
		if s[0]|s[1] != 0 {
			n.sum.Add(n.sum, t.Lsh(int128(s[1], s[0]), uint(i)))
		}
		if q[0]|q[1] != 0 {
			n.sumSq.Add(n.sumSq, t.Lsh(uint128(q[1], q[0]), uint(2*i)))
		}
		*s, *q = [2]uint64{}, [2]uint64{}
	}
	a.pendSq, a.from, a.to = 0, 0, 0
}

// used notes that exponent index i of sum or sq is written.
func (a *accumulator) used(i int) {
	if a.to == 0 {
		a.from, a.to = i, i+1
		return
	}
	a.from, a.to = min(a.from, i), max(a.to, i+1)
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

// histWindow counts values by bin key over the keys lo..lo+len(n)-1,
// and zeros (key 0) apart: a window from zero to the keys of common
// values would be some 2^17 bins wide.
type histWindow struct {
	lo   int
	n    []int64
	zero int64
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
	if key == 0 {
		h.zero += c
		return
	}
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

// settle folds n's pending sums and gives its accumulator back.
func (n *NumberStats) settle() {
	n.fold()
	if n.acc != nil {
		spareAccumulators.keep(n.acc)
		n.acc = nil
	}
}

func (n *NumberStats) merge(o *NumberStats) {
	n.fold()
	o.settle()
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
	n.pos.zero += o.pos.zero
	n.neg.zero += o.neg.zero
}

// Settle folds the sums still pending into s and gives back the memory
// that held them. Reading settled stats (Numeric, Label, MarshalJSON,
// MarshalBinary) changes nothing in them, so goroutines may read them at
// once until the next Add or Merge; reading stats that are not settled
// folds them, which writes.
func (s *ColumnStats) Settle() {
	for _, ns := range [][]NumberStats{s.cols, s.labels} {
		for i := range ns {
			ns[i].settle()
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

// Counts returns how many rows each numeric column (in spec order) and
// the label of each split counted, values and missing ones together: what
// Numeric and Label would count, without summarising the sums.
func (s *ColumnStats) Counts() (numeric, label []int64) {
	numeric, label = make([]int64, len(s.cols)), make([]int64, len(s.labels))
	for i := range s.cols {
		numeric[i] = s.cols[i].count + s.cols[i].missing
	}
	for i := range s.labels {
		label[i] = s.labels[i].count + s.labels[i].missing
	}
	return numeric, label
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
