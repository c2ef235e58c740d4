package storage

import "os"

// writebackEvery is how many bytes a local writer lets pile up in the page
// cache before it starts writing them to disk. A written file is synced
// when it is committed, and that waits for every byte still in memory: a
// part of tens of megabytes would hold its task for as long as the disk
// takes to write them all. Started as the file fills, the writes proceed
// while the task computes the next bytes, and the sync waits only for the
// last few.
const writebackEvery = 8 << 20

// writeback starts the writeback of a file's bytes as they are written.
type writeback struct {
	started int64 // the bytes [0, started) are being or have been written
	written int64
}

// wrote records n more bytes written to f and, once writebackEvery bytes
// wait, starts writing them out without waiting for the disk. The range
// ends on a page boundary: a page under writeback that the next write
// fills further could make that write wait for the disk.
func (wb *writeback) wrote(f *os.File, n int) {
	wb.written += int64(n)
	if end := wb.written &^ (pageSize - 1); end-wb.started >= writebackEvery {
		startWriteback(f, wb.started, end-wb.started)
		wb.started = end
	}
}

// pageSize is a multiple of the page size of the platforms shardprep
// runs on.
const pageSize = 64 << 10
