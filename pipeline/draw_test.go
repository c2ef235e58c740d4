package pipeline

import (
	"math"
	"slices"
	"testing"
)

func TestHashDrawKnown(t *testing.T) {
	// FNV-1a 64 reference values.
	for s, want := range map[string]uint64{"": 0xcbf29ce484222325, "a": 0xaf63dc4c8601ec8c, "foobar": 0x85944171f73967e8} {
		if got := fnv1a64(s); got != want {
			t.Errorf("fnv1a64(%q) = %#x, want %#x", s, got, want)
		}
	}
	// splitmix64 reference: the first outputs of the generator seeded with 0.
	if got := splitmix64(0); got != 0xe220a8397b1dcdaf {
		t.Errorf("splitmix64(0) = %#x", got)
	}
	if got := splitmix64(0x9e3779b97f4a7c15); got != 0x6e789e6aa1b965f4 {
		t.Errorf("splitmix64(golden) = %#x", got)
	}
	// The formula as documented.
	x := splitmix64(splitmix64(uint64(42)) ^ fnv1a64("abalone.csv"))
	x = splitmix64(x ^ uint64(1234))
	if got, want := hashDraw(42, "abalone.csv", 1234), float64(x>>11)/(1<<53); got != want {
		t.Errorf("hashDraw = %v, want %v", got, want)
	}
}

func TestHashDrawDeterministicAndDistinct(t *testing.T) {
	a := hashDraw(7, "data/a.csv", 100)
	if b := hashDraw(7, "data/a.csv", 100); a != b {
		t.Errorf("not deterministic: %v %v", a, b)
	}
	if d := newHashDrawer(7, "data/a.csv").Draw(100); d != a {
		t.Errorf("hashDrawer %v != hashDraw %v", d, a)
	}
	for _, other := range []float64{
		hashDraw(8, "data/a.csv", 100),
		hashDraw(-7, "data/a.csv", 100),
		hashDraw(7, "data/b.csv", 100),
		hashDraw(7, "data/a.csv", 101),
		hashDraw(7, "data/a.csv", 0),
	} {
		if other == a {
			t.Errorf("draw %v repeats for different input", other)
		}
	}
	// No collisions over many offsets and names.
	seen := map[float64]bool{}
	for _, name := range []string{"a", "b", "ab", "ba", ""} {
		for off := int64(0); off < 2000; off++ {
			d := hashDraw(0, name, off)
			if seen[d] {
				t.Fatalf("collision at %q %d", name, off)
			}
			seen[d] = true
		}
	}
}

func TestHashDrawUniform(t *testing.T) {
	const n = 100_000
	for _, seed := range []int64{0, 42, math.MinInt64} {
		h := newHashDrawer(seed, "train/abalone.csv")
		draws := make([]float64, n)
		var sum float64
		for i := range draws {
			// Offsets of ~45-byte lines, as in a real CSV.
			d := h.Draw(int64(i) * 45)
			if d < 0 || d >= 1 {
				t.Fatalf("draw %v out of [0,1)", d)
			}
			draws[i] = d
			sum += d
		}
		if mean := sum / n; math.Abs(mean-0.5) > 0.005 {
			t.Errorf("seed %d: mean %v", seed, mean)
		}
		slices.Sort(draws)
		if q := draws[n*8/10]; math.Abs(q-0.8) > 0.02 {
			t.Errorf("seed %d: 0.8 quantile %v", seed, q)
		}
		below := 0
		for _, d := range draws {
			if d < 0.8 {
				below++
			}
		}
		if frac := float64(below) / n; math.Abs(frac-0.8) > 0.01 {
			t.Errorf("seed %d: %v below 0.8", seed, frac)
		}
		// Ten equal bins each hold about a tenth.
		for b := range 10 {
			lo, hi := float64(b)/10, float64(b+1)/10
			i, _ := slices.BinarySearch(draws, lo)
			j, _ := slices.BinarySearch(draws, hi)
			if frac := float64(j-i) / n; math.Abs(frac-0.1) > 0.006 {
				t.Errorf("seed %d: bin [%v,%v) holds %v", seed, lo, hi, frac)
			}
		}
	}
}
