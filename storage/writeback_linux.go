package storage

import (
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start the writeback of the
// range's dirty pages, without waiting for it to end.
const syncFileRangeWrite = 2

// startWriteback starts writing f's bytes [off, off+n) to disk; it is
// best effort, as the sync on commit still waits for them.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SyncFileRange(int(fd), off, n, syncFileRangeWrite)
	})
}

// dataSync makes f's data durable (fdatasync: its size too, not its
// times).
func dataSync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// posixFadvDontNeed is POSIX_FADV_DONTNEED.
const posixFadvDontNeed = 4

// dropCached asks the kernel to drop f's cached pages of [off, off+n),
// which are on disk: best effort.
func dropCached(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil || n <= 0 {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.Syscall6(syscall.SYS_FADVISE64, fd, uintptr(off), uintptr(n), posixFadvDontNeed, 0, 0)
	})
}
