package features

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// slowStats adds vals one at a time, through the accumulator's general
// path only: the simple reference of the fast path.
func slowStats(vals []float64) *NumberStats {
	var n NumberStats
	n.init()
	for _, v := range vals {
		n.accumulate(1).add(&n, v)
	}
	return &n
}

// fastStats adds vals in chunks of random sizes through addValues.
func fastStats(rng *rand.Rand, vals []float64) *NumberStats {
	var n NumberStats
	n.init()
	for len(vals) > 0 {
		k := min(len(vals), 1+rng.IntN(3000))
		n.accumulate(k).addValues(&n, vals[:k])
		vals = vals[k:]
	}
	return &n
}

func summaryJSON(t *testing.T, n *NumberStats) []byte {
	t.Helper()
	b, err := json.Marshal(n.summary("x"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// adversarial returns streams of values that the fast path must get as
// right as the general one: subnormals, zeros of both signs,
// infinities, NaNs, the extremes of the exponent range, runs of equal
// values, clusters of either sign in one window with values just inside
// and just outside its edges, and windows too low for scaling.
func adversarial(rng *rand.Rand) map[string][]float64 {
	streams := map[string][]float64{}
	add := func(name string, n int, f func(i int) float64) {
		for i := range n {
			streams[name] = append(streams[name], f(i))
		}
	}
	special := []float64{0, math.Copysign(0, -1), 5e-324, -5e-324, 0x1p-1022, -0x1p-1022, 0x1.fffffffffffffp-1023,
		math.MaxFloat64, -math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN(), 1, -1}
	add("random bits", 20000, func(int) float64 { return math.Float64frombits(rng.Uint64()) })
	add("specials mixed into a cluster", 20000, func(int) float64 {
		if rng.IntN(10) == 0 {
			return special[rng.IntN(len(special))]
		}
		return 0.5 + rng.Float64()
	})
	for _, sign := range []float64{1, -1} {
		name := "cluster straddling its window"
		if sign < 0 {
			name = "negative " + name
		}
		add(name, 30000, func(i int) float64 {
			if i < windowProbe {
				return sign
			}
			// The window, set by the first values, is 2^-9 up to 2^2:
			// from three octaves below to two above it, its edges
			// included.
			e := rng.IntN(16) - 12
			switch rng.IntN(8) {
			case 0:
				return sign * math.Ldexp(1, e) // an octave's first value
			case 1:
				return sign * math.Nextafter(math.Ldexp(1, e), 0) // the one before it
			}
			return sign * math.Ldexp(1+rng.Float64(), e)
		})
	}
	add("runs of equal values", 30000, func(i int) float64 { return float64(1 + (i/7)%29) })
	add("one value", 5000, func(int) float64 { return 0.455 })
	add("sign alternating", 20000, func(i int) float64 { return float64(1-2*(i%2)) * (1 + rng.Float64()) })
	add("subnormals", 10000, func(int) float64 { return math.Float64frombits(rng.Uint64() & (1<<52 - 1)) })
	add("tiny normals", 20000, func(int) float64 { return math.Ldexp(1+rng.Float64(), -1022+rng.IntN(60)) })
	add("huge", 20000, func(int) float64 { return -math.Ldexp(1+rng.Float64(), 1023-rng.IntN(80)) })
	add("top of the window, largest squares", 20000, func(int) float64 {
		return math.Float64frombits(math.Float64bits(64) - 1 - rng.Uint64N(1<<20))
	})
	add("decimals", 30000, func(int) float64 { return float64(rng.IntN(30000)) / 10000 })
	add("mostly zeros", 20000, func(int) float64 {
		if rng.IntN(10) != 0 {
			return 0
		}
		return rng.Float64()
	})
	return streams
}

// TestColumnStatsFastPathMatchesGeneral adds adversarial streams of
// values in random chunks through the fast path and one by one through
// the general path: the stats are identical, bit for bit; and, for
// finite values, equal to the independent reference.
func TestColumnStatsFastPathMatchesGeneral(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for name, vals := range adversarial(rng) {
		want := summaryJSON(t, slowStats(vals))
		for round := range 3 {
			if got := summaryJSON(t, fastStats(rng, vals)); !bytes.Equal(got, want) {
				t.Errorf("%s, round %d: fast path\n%s\nwant\n%s", name, round, got, want)
			}
		}
		finite := true
		for _, v := range vals {
			finite = finite && !math.IsInf(v, 0) && v == v
		}
		if finite {
			ref := newRef()
			for _, v := range vals {
				ref.add(v)
			}
			ref.check(t, name, fastStats(rng, vals).summary(name))
		}
	}
}

// TestColumnStatsFastPathFolds adds more values than the accumulator
// holds between folds, in one window: the sums and counts carry over the
// folds exactly.
func TestColumnStatsFastPathFolds(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	vals := make([]float64, maxPendingSquares*3/2)
	for i := range vals {
		// Equal neighbours and the largest mantissas of the window.
		vals[i] = math.Float64frombits(math.Float64bits(64) - 1 - rng.Uint64N(4))
	}
	if got, want := summaryJSON(t, fastStats(rng, vals)), summaryJSON(t, slowStats(vals)); !bytes.Equal(got, want) {
		t.Errorf("fast path\n%s\nwant\n%s", got, want)
	}
}

// TestColumnStatsJSONInfinities: stats whose min or max is infinite
// encode (JSON has no infinities: null, told apart by the counts of
// infinities) and decode back to the same stats.
func TestColumnStatsJSONInfinities(t *testing.T) {
	spec, err := ParseSpec([]byte(`{"columns":[{"name":"x","type":"double"},{"name":"y","type":"double"}],
	  "categorical":[],"numeric":["x"],"label":"y","splits":[{"name":"all","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	inf := math.Inf(1)
	for _, vals := range [][]float64{{1, inf}, {-inf, 2, 3}, {-inf, inf}, {inf, inf}, {-inf}, {0.5, -inf, inf, -2}} {
		s := NewColumnStats(spec)
		for _, v := range vals {
			s.cols[0].accumulate(1).add(&s.cols[0], v)
		}
		data := mustJSON(t, s)
		var back ColumnStats
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("%v: %v in %s", vals, err, data)
		}
		if got := mustJSON(t, &back); !bytes.Equal(got, data) {
			t.Errorf("%v: round trip\n%s\nwant\n%s", vals, got, data)
		}
		c := back.cols[0]
		if c.min != slices.Min(vals) || c.max != slices.Max(vals) {
			t.Errorf("%v: decoded min %v max %v", vals, c.min, c.max)
		}
	}
	for _, bad := range []string{
		`"count":1,"min":null,"max":1`,              // a missing min without an infinity
		`"count":2,"neg_inf":1,"min":-1,"max":1`,    // a finite min with -Inf values
		`"count":2,"pos_inf":1,"min":1,"max":1e308`, // a finite max with +Inf values
	} {
		doc := `{"version":1,"numeric":[{"column":"x",` + bad + `,"missing":0,"mean":null,"std":null,"sum":"0x.8p+1","sum_squares":"0x.8p+1","histogram":{"bits":7,"lo":[1],"count":[1]}}],"label":{"column":"y","splits":[]}}`
		var got ColumnStats
		if err := json.Unmarshal([]byte(doc), &got); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestColumnStatsFoldClearsAll: fold reads only the exponents written
// since the last one; whichever path wrote them, it leaves every sum of
// the accumulator zero.
func TestColumnStatsFoldClearsAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for name, vals := range adversarial(rng) {
		for path, n := range map[string]*NumberStats{"fast": fastStats(rng, vals), "one by one": slowStats(vals)} {
			n.fold()
			if n.acc == nil {
				continue
			}
			for i := range n.acc.sum {
				if n.acc.sum[i] != [2]uint64{} || n.acc.sq[i] != [2]uint64{} {
					t.Fatalf("%s, %s: exponent index %d holds a sum after the fold", name, path, i)
				}
			}
		}
	}
}

// TestColumnStatsReusedAccumulator: merged stats give their accumulator
// back, and new stats that take it start empty, whatever window and sums
// it held: their stats are those of stats added one by one.
func TestColumnStatsReusedAccumulator(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	streams := adversarial(rng)
	names := slices.Sorted(maps.Keys(streams))
	for i, name := range names {
		var into NumberStats
		into.init()
		from := fastStats(rng, streams[name])
		into.merge(from)
		if from.acc != nil {
			t.Fatalf("%s: merged stats kept their accumulator", name)
		}
		next := streams[names[(i+1)%len(names)]]
		if got, want := summaryJSON(t, fastStats(rng, next)), summaryJSON(t, slowStats(next)); !bytes.Equal(got, want) {
			t.Errorf("after %s, %s: stats\n%s\nwant\n%s", name, names[(i+1)%len(names)], got, want)
		}
	}
}
