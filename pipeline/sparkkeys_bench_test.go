package pipeline

import (
	"math"
	"math/rand/v2"
	"testing"
)

// abaloneValues returns the rows of 8 columns of numbers shaped like the
// Abalone columns': 4-digit decimals, some 6000 to 27000 distinct values
// a column, and whole numbers, in random row order.
func abaloneValues(rows int) [][]float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	spreads := []float64{0.12, 0.1, 0.04, 0.49, 0.22, 0.11, 0.14, 3}
	means := []float64{0.52, 0.41, 0.14, 0.83, 0.36, 0.18, 0.24, 10}
	cols := make([][]float64, len(spreads))
	for c := range cols {
		cols[c] = make([]float64, rows)
		for i := range rows {
			v := math.Abs(means[c] + spreads[c]*rng.NormFloat64())
			if c == len(spreads)-1 {
				cols[c][i] = math.Round(v)
			} else {
				cols[c][i] = math.Round(v*1e4) / 1e4
			}
		}
	}
	return cols
}

// BenchmarkNumDict numbers the values of 1M rows of 8 Abalone-shaped
// columns, a batch of 8192 rows a column at a time, as a run does.
func BenchmarkNumDict(b *testing.B) {
	const rows, batch = 1 << 20, 8192
	cols := abaloneValues(rows)
	ids := make([]uint32, rows)
	b.SetBytes(int64(rows * len(cols) * 8))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		dicts := make([]numDict, len(cols))
		for lo := 0; lo < rows; lo += batch {
			for c, col := range cols {
				d := &dicts[c]
				if d.scale == 0 {
					d.chooseScale(col[lo : lo+batch])
				}
				for i, v := range col[lo : lo+batch] {
					ids[lo+i] = d.idOf(v)
				}
			}
		}
	}
}
