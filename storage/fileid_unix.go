//go:build unix

package storage

import (
	"io/fs"
	"syscall"
)

// fileID returns the file's inode number, which changes when a file is
// replaced by a rename.
func fileID(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
