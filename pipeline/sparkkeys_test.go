package pipeline

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestNumDictIDs checks that a numDict gives one id to each distinct
// value (by its doubleKey, so -0.0 and 0.0 are one) and records its key,
// whether the value is numbered through direct ids or the hash table.
func TestNumDictIDs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	odd := []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), -1.5, 5e-324,
		math.MaxFloat64, 13107.1, 13107.2, (maxDirect - 1) / 10.0, maxDirect / 10.0, math.Nextafter(0.3, 1), 1e-5, 0.3}
	for _, scale := range []float64{1, 10, 1e4, 1e6} {
		var vs []float64
		for range 20000 {
			switch rng.IntN(4) {
			case 0:
				vs = append(vs, odd[rng.IntN(len(odd))])
			case 1:
				vs = append(vs, rng.Float64()*20)
			default:
				vs = append(vs, float64(rng.IntN(2*maxDirect))/scale)
			}
		}
		d := numDict{scale: scale}
		byKey := map[uint64]uint32{}
		direct := 0
		for _, v := range vs {
			if _, ok := directIndex(v, scale); ok {
				direct++
			}
			id, key := d.idOf(v), doubleKey(v)
			if want, seen := byKey[key]; seen && id != want {
				t.Fatalf("scale %g: %v has id %d, and %d before", scale, v, id, want)
			} else if !seen && id != uint32(len(byKey)) {
				t.Fatalf("scale %g: new value %v has id %d, want %d", scale, v, id, len(byKey))
			}
			byKey[key] = id
			if d.vals[id] != key {
				t.Fatalf("scale %g: id %d of %v holds key %x, want %x", scale, id, v, d.vals[id], key)
			}
		}
		if direct < len(vs)/4 || direct == len(vs) {
			t.Errorf("scale %g: %d of %d values numbered directly", scale, direct, len(vs))
		}
	}
}

// TestDirectIndex checks that a value has a direct index only when it is
// the double nearest m/scale, and that -0.0, NaN and values past
// maxDirect/scale have the index they should.
func TestDirectIndex(t *testing.T) {
	for _, c := range []struct {
		v, scale float64
		m        int
		ok       bool
	}{
		{0.4551, 1e4, 4551, true},
		{0.45512, 1e4, 0, false},
		{math.Nextafter(0.3, 1), 10, 0, false}, // 0.30000000000000004
		{0.3, 10, 3, true},
		{math.Copysign(0, -1), 100, 0, true},
		{-0.25, 100, 0, false},
		{math.NaN(), 1, 0, false},
		{math.Inf(1), 1, 0, false},
		{maxDirect - 2, 1, maxDirect - 2, true},
		{maxDirect - 1, 1, 0, false},
		{5e-324, 1e6, 0, false},
	} {
		m, ok := directIndex(c.v, c.scale)
		if ok != c.ok || (ok && m != c.m) {
			t.Errorf("directIndex(%v, %g) = %d, %v; want %d, %v", c.v, c.scale, m, ok, c.m, c.ok)
		}
	}
}

// TestChooseScale checks the scale chosen from a column's first values.
func TestChooseScale(t *testing.T) {
	for _, c := range []struct {
		vs   []float64
		want float64
	}{
		{[]float64{0.455, 0.365, 0.095, 0.514, 0.2245}, 1e4},
		{[]float64{15, 7, 9, 10, 7, 8, 20, 16}, 1},
		{[]float64{0.5, 1.5, 2, 3.25, -1, 7, 8, 9, 10}, 100}, // one in nine does not fit
		{[]float64{-0.5, -1.5, 2, 3}, -1},
		{[]float64{0.1234567, 0.7654321}, -1},
		{nil, -1},
	} {
		var d numDict
		d.chooseScale(c.vs)
		if d.scale != c.want {
			t.Errorf("chooseScale(%v) = %g, want %g", c.vs, d.scale, c.want)
		}
	}
}
