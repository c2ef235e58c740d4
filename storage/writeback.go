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

// syncEvery is how many bytes a local writer writes between syncs of its
// data in the background. Bytes written out are not yet durable: the sync
// on commit has the device persist what it holds (a virtual disk's host
// flushes its own cache), in a time that grows with the bytes since the
// last sync, some 40 ms for 85 MB on a cloud VM's disk. Synced as the file
// fills, by a goroutine that waits for the disk while the task computes,
// they leave the commit's sync only the last few.
const syncEvery = 16 << 20

// writeback starts the writeback of a file's bytes as they are written,
// and syncs them in the background.
type writeback struct {
	started int64 // the bytes [0, started) are being or have been written
	written int64
	synced  int64      // the bytes [0, synced) were written when the last sync began
	syncing chan error // the sync in flight, nil when none
	err     error      // the first error of a background sync
	// sync syncs a file's data; nil means dataSync.
	sync func(*os.File) error
}

// wrote records n more bytes written to f and, once writebackEvery bytes
// wait, starts writing them out without waiting for the disk. The range
// ends on a page boundary: a page under writeback that the next write
// fills further could make that write wait for the disk. Once syncEvery
// bytes have been written since the last sync began, and that sync has
// ended, it starts the next.
func (wb *writeback) wrote(f *os.File, n int) {
	wb.written += int64(n)
	if end := wb.written &^ (pageSize - 1); end-wb.started >= writebackEvery {
		startWriteback(f, wb.started, end-wb.started)
		wb.started = end
	}
	if wb.written-wb.synced < syncEvery {
		return
	}
	if wb.syncing != nil {
		select {
		case err := <-wb.syncing:
			wb.ended(err)
		default:
			return
		}
	}
	sync := wb.sync
	if sync == nil {
		sync = dataSync
	}
	done := make(chan error, 1)
	wb.syncing, wb.synced = done, wb.written
	go func() { done <- sync(f) }()
}

func (wb *writeback) ended(err error) {
	wb.syncing = nil
	if wb.err == nil {
		wb.err = err
	}
}

// wait waits for the sync in flight, if any, and returns the first error
// of the background syncs: an error of the file's writeback is reported to
// one sync only, so the commit's own sync may not see it again. It must be
// called before the file is closed.
func (wb *writeback) wait() error {
	if wb.syncing != nil {
		wb.ended(<-wb.syncing)
	}
	return wb.err
}

// pageSize is a multiple of the page size of the platforms shardprep
// runs on.
const pageSize = 64 << 10
