package features

import (
	"math"
	"math/bits"
)

// laneSums are what countSumLanes adds up, in eight lanes that each take
// every eighth value. sums holds the mantissas m = a·2^32 + b (a < 2^31,
// b < 2^32) as the sums of b and of a, and their squares, m² = a²·2^64 +
// 2ab·2^32 + b², as the sums of the low and the high 32 bits of a², ab
// and b². Every addend is below 2^32, so no lane can overflow before 2^32
// values, far more than an accumulator takes between reductions (one
// call of addValues). min and max are the least and greatest bits of
// each lane's values.
type laneSums struct {
	sums     [8][8]uint64
	min, max [8]uint64
}

// Rows of laneSums.sums: which sum, and the power of two its lane values
// stand for in the sum of mantissas or of squares.
const (
	laneSumLo = iota // b: 2^0
	laneSumHi        // a: 2^32
	laneAALo         // a² low: 2^64
	laneAAHi         // a² high: 2^96
	laneABLo         // ab low: 2^33 (2ab·2^32)
	laneABHi         // ab high: 2^65
	laneBBLo         // b² low: 2^0
	laneBBHi         // b² high: 2^32
)

// reset empties l.
func (l *laneSums) reset() {
	*l = laneSums{}
	for j := range l.min {
		l.min[j] = math.MaxUint64
	}
}

// reduce adds the lane sums to s and q and the lanes' least and greatest
// bits to mn and mx, and empties l.
func (l *laneSums) reduce(s sum128, q sum192, mn, mx uint64) (sum128, sum192, uint64, uint64) {
	for j := range 8 {
		r := &l.sums
		s = s.addShifted(r[laneSumLo][j], 0)
		s = s.addShifted(r[laneSumHi][j], 32)
		q = q.addShifted(r[laneAALo][j], 64)
		q = q.addShifted(r[laneAAHi][j], 96)
		q = q.addShifted(r[laneABLo][j], 33)
		q = q.addShifted(r[laneABHi][j], 65)
		q = q.addShifted(r[laneBBLo][j], 0)
		q = q.addShifted(r[laneBBHi][j], 32)
		mn, mx = min(mn, l.min[j]), max(mx, l.max[j])
	}
	l.reset()
	return s, q, mn, mx
}

// addShifted returns s + x·2^k, for k < 64.
func (s sum128) addShifted(x uint64, k uint) sum128 {
	var c uint64
	s.lo, c = bits.Add64(s.lo, x<<k, 0)
	s.hi, _ = bits.Add64(s.hi, x>>(64-k), c) // x>>64 is 0
	return s
}

// addShifted returns q + x·2^k, for k < 128.
func (q sum192) addShifted(x uint64, k uint) sum192 {
	var lo, mid, hi uint64
	if k < 64 {
		lo, mid = x<<k, x>>(64-k)
	} else {
		mid, hi = x<<(k-64), x>>(128-k)
	}
	var c uint64
	q.lo, c = bits.Add64(q.lo, lo, 0)
	q.mid, c = bits.Add64(q.mid, mid, c)
	q.hi, _ = bits.Add64(q.hi, hi, c)
	return q
}

// countSumLanesGo is what countSumLanes computes, in Go: its reference in
// tests, on every platform, and its stand-in where it is missing.
func countSumLanesGo(vals []float64, hist *[2][windowBins]uint32, wkey uint64, scale float64, l *laneSums) int {
	done := 0
	for ; done+8 <= len(vals); done += 8 {
		group := vals[done : done+8]
		var keys [8]uint64
		in := true
		for j, v := range group {
			keys[j] = math.Float64bits(v)>>histShift - wkey
			in = in && keys[j] < windowBins
		}
		if !in {
			break
		}
		for j, v := range group {
			b := math.Float64bits(v)
			hist[j&1][keys[j]]++
			l.min[j], l.max[j] = min(l.min[j], b), max(l.max[j], b)
			m := uint64(int64(v * scale))
			a, lo := m>>32, m&(1<<32-1)
			l.sums[laneSumLo][j] += lo
			l.sums[laneSumHi][j] += a
			for r, p := range [3]uint64{a * a, a * lo, lo * lo} {
				l.sums[laneAALo+2*r][j] += p & (1<<32 - 1)
				l.sums[laneAALo+2*r+1][j] += p >> 32
			}
		}
	}
	return done
}
