//go:build !unix

package storage

import "io/fs"

// fileID returns 0 where inode numbers are not available; ETags then rest
// on size and modification time alone.
func fileID(fs.FileInfo) uint64 { return 0 }
