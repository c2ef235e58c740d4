//go:build !linux

package pipeline

// adviseHuge does nothing: transparent huge pages are Linux's.
func adviseHuge[T any](s []T) {}

// AdviseHugeHeap does nothing where there is no THP madvise mode; it
// reports false.
func AdviseHugeHeap(n int) bool { return false }
