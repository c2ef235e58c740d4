//go:build !linux

package storage

import "os"

// startWriteback does nothing where the platform has no way to start a
// range's writeback: the sync on commit writes everything.
func startWriteback(*os.File, int64, int64) {}

// dataSync makes f's data durable.
func dataSync(f *os.File) error { return f.Sync() }

// dropCached does nothing where the platform cannot drop a file's pages.
func dropCached(*os.File, int64, int64) {}
