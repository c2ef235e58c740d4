//go:build !linux

package pipeline

// adviseHuge does nothing: transparent huge pages are Linux's.
func adviseHuge[T any](s []T) {}
