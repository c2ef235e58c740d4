package storage

import (
	"os"
	"sync/atomic"
)

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

// Once a process has written dropAfter bytes to local files, the pages
// its writers sync leave the page cache (dropCached). A job's output is not
// read again by the job, and pages the kernel frees are the next ones it
// hands out, so a long job recycles a few megabytes of page cache instead
// of filling gigabytes of it: on a virtual machine whose host takes back
// the guest's idle memory, each page cache page touched for the first
// time costs a fault in the host, which made a 100M-row job (5.3 GB
// written) spend a third of its CPU copying into the page cache. Below
// that, the pages stay: dropping them costs the kernel about half a
// microsecond a page (2 to 3% of a 10M-row job's wall), and a reader of
// the output next finds it cached.
var dropAfter int64 = 1 << 30

// localWritten counts the bytes this process's local writers wrote.
var localWritten atomic.Int64

// writeback starts the writeback of a file's bytes as they are written,
// and syncs them in the background.
type writeback struct {
	started int64 // the bytes [0, started) are being or have been written
	written int64
	synced  int64      // the bytes [0, synced) were written when the last sync began
	dropped int64      // the bytes [0, dropped) were synced, and their pages dropped
	syncing chan error // the sync in flight, nil when none
	err     error      // the first error of a background sync
	// sync syncs a file's data; nil means dataSync. drop drops a range of
	// a file's pages; nil means dropCached.
	sync func(*os.File) error
	drop func(f *os.File, off, n int64)
}

// wrote records n more bytes written to f and, once writebackEvery bytes
// wait, starts writing them out without waiting for the disk. The range
// ends on a page boundary: a page under writeback that the next write
// fills further could make that write wait for the disk. Once syncEvery
// bytes have been written since the last sync began, and that sync has
// ended, it starts the next.
func (wb *writeback) wrote(f *os.File, n int) {
	wb.written += int64(n)
	total := localWritten.Add(int64(n))
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
	sync, drop := wb.ops()
	done := make(chan error, 1)
	from, to := wb.dropped, wb.written&^(pageSize-1)
	if !dropping(total) {
		from = to // the pages stay
	}
	wb.syncing, wb.synced, wb.dropped = done, wb.written, to
	go func() {
		err := sync(f)
		if err == nil && to > from {
			drop(f, from, to-from)
		}
		done <- err
	}()
}

// ops returns how wb syncs a file's data and drops its pages: dataSync
// and dropCached unless a test set its own.
func (wb *writeback) ops() (sync func(*os.File) error, drop func(f *os.File, off, n int64)) {
	sync, drop = wb.sync, wb.drop
	if sync == nil {
		sync = dataSync
	}
	if drop == nil {
		drop = dropCached
	}
	return sync, drop
}

// dropping reports whether synced pages leave the page cache once the
// process's local writers have written total bytes.
func dropping(total int64) bool { return total > dropAfter }

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

// commit makes f's bytes durable, readable by all (0644), and closes
// f: it waits for the background sync (whose error it returns first),
// syncs the rest, and drops the pages (durable).
func (wb *writeback) commit(f *os.File) error {
	if err := wb.wait(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	wb.durable(f)
	return f.Close()
}

// abort closes f, once the background sync has ended.
func (wb *writeback) abort(f *os.File) {
	wb.wait()
	f.Close()
}

// durable drops the pages of f, whose every byte the caller has just
// synced, from the page cache, once the process has written dropAfter
// bytes.
func (wb *writeback) durable(f *os.File) {
	if dropping(localWritten.Load()) && wb.written > wb.dropped {
		_, drop := wb.ops()
		drop(f, wb.dropped, wb.written-wb.dropped)
	}
	wb.dropped = wb.written
}

// pageSize is a multiple of the page size of the platforms shardprep
// runs on.
const pageSize = 64 << 10
