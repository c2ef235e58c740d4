//go:build !purego

package features

import "golang.org/x/sys/cpu"

// haveLanes is whether countSumLanes runs on vector units: it needs
// AVX-512 (F and DQ). A variable, so that tests can compare both paths.
var haveLanes = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ

// countSumLanes counts and sums the values of vals eight at a time, while
// all eight lie in the window of key wkey: each in its histogram bin
// (hist[0] takes the first of each pair, hist[1] the second, as in
// countWindow), its bits in its lane's least and greatest, its mantissa
// v·scale and that mantissa's square in l's sums (see laneSums). It
// returns how many values it took: a multiple of 8. It needs haveLanes
// and a window that sumScaled can sum (scale != 0).
//
//go:noescape
func countSumLanes(vals []float64, hist *[2][windowBins]uint32, wkey uint64, scale float64, l *laneSums) int
