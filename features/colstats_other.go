//go:build !amd64 || purego

package features

// haveLanes is false: countSumLanes has vector code on amd64 only
// (colstats_amd64.s); here it would only be slower than countWindow.
var haveLanes = false

func countSumLanes(vals []float64, hist *[2][windowBins]uint32, wkey uint64, scale float64, l *laneSums) int {
	return countSumLanesGo(vals, hist, wkey, scale, l)
}
