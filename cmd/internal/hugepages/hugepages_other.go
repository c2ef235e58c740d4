//go:build !linux

package hugepages

// Advise does nothing where there is no THP madvise mode; it reports false.
func Advise(n int) bool { return false }
