package features

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// withLanes runs f with the vector path of the column stats on or off.
func withLanes(t *testing.T, on bool, f func()) {
	t.Helper()
	saved := haveLanes
	haveLanes = on
	defer func() { haveLanes = saved }()
	f()
}

// TestCountSumLanesMatchesGo runs the vector kernel and its Go reference
// over adversarial streams, from windows set at random values of each, in
// chunks of random lengths: both take as many values, count the same
// histogram and leave the same lane sums, least and greatest bits.
func TestCountSumLanesMatchesGo(t *testing.T) {
	if !haveLanes {
		t.Skip("no AVX-512 on this machine: countSumLanes is countSumLanesGo")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	streams := adversarial(rng)
	streams["decimals in one window"] = nil
	for range 50000 {
		streams["decimals in one window"] = append(streams["decimals in one window"], float64(1+rng.IntN(9999))/1e4)
	}
	for name, vals := range streams {
		for round := range 20 {
			var a, b accumulator
			if !a.setWindow(vals[rng.IntN(len(vals)):]) || a.scale == 0 {
				continue
			}
			a.lanes.reset()
			b = a
			for rest := vals[rng.IntN(len(vals)):]; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(600))
				got := countSumLanes(rest[:n], &a.hist, a.wkey, a.scale, &a.lanes)
				want := countSumLanesGo(rest[:n], &b.hist, b.wkey, b.scale, &b.lanes)
				if got != want || a.hist != b.hist || a.lanes != b.lanes {
					t.Fatalf("%s, round %d: took %d values, want %d; lanes %+v, want %+v", name, round, got, want, a.lanes, b.lanes)
				}
				if got < n&^7 { // stopped at a group with a value out of the window
					n = got + 1
				}
				rest = rest[n:]
			}
		}
	}
}

// TestCountSumLanesExact: the lane sums reduce to the exact sums of the
// mantissas and of their squares, for the largest mantissas a window
// takes (just below 2^63) and the smallest.
func TestCountSumLanesExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	// The window of 32 is 2^-4 up to 2^6; its greatest value's mantissa,
	// shifted to the base, is just below 2^63.
	top := math.Float64frombits(math.Float64bits(64) - 1)
	for _, vals := range [][]float64{
		slicesRepeat(top, 4096),
		slicesRepeat(0x1p-4, 4096),
		randomIn(rng, 0x1p-4, 64, 8000),
	} {
		var a accumulator
		a.setWindow([]float64{32})
		a.lanes.reset()
		n := countSumLanesGo(vals, &a.hist, a.wkey, a.scale, &a.lanes)
		s, q, _, _ := a.lanes.reduce(sum128{}, sum192{}, math.MaxUint64, 0)
		ws, wq := sumScaled(vals[:n], a.scale, sum128{}, sum192{})
		if n != len(vals)&^7 || s != ws || q != wq {
			t.Errorf("took %d of %d values: sums %v %v, want %v %v", n, len(vals), s, q, ws, wq)
		}
	}
}

func slicesRepeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func randomIn(rng *rand.Rand, lo, hi float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + rng.Float64()*(hi-lo)
	}
	return out
}

// TestColumnStatsLanesMatchScalar adds every adversarial stream, and
// more values than the accumulator holds between folds, in random chunks
// with the vector path on and off: the stats are identical, bit for bit.
func TestColumnStatsLanesMatchScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	streams := adversarial(rng)
	streams["folds"] = randomIn(rng, 0.001, 3, maxPendingSquares*3/2)
	for name, vals := range streams {
		var on, off []byte
		seed := rng.Uint64()
		withLanes(t, haveLanes, func() { on = summaryJSON(t, fastStats(rand.New(rand.NewPCG(seed, 1)), vals)) })
		withLanes(t, false, func() { off = summaryJSON(t, fastStats(rand.New(rand.NewPCG(seed, 1)), vals)) })
		if !bytes.Equal(on, off) {
			t.Errorf("%s: with lanes\n%s\nwithout\n%s", name, on, off)
		}
	}
}
