package storage

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// A committed local part has left the page cache, once the process has
// written dropAfter bytes: its writer dropped each range once synced. The file is made beside this test, on the disk the
// repository is on (a tmpfs /tmp keeps its pages: they are the file).
func TestCommittedPartLeavesPageCache(t *testing.T) {
	dropAll(t)
	dir, err := os.MkdirTemp(".", ".pagecache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &localDriver{root: abs}
	w, err := d.newStagedWriter(context.Background(), "train/part-00000", "s1")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	const size = 40 << 20
	for range size / len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.commit(); err != nil {
		t.Fatal(err)
	}
	resident, pages := residentPages(t, d.stagePath("train/part-00000", "s1"))
	if pages != size/os.Getpagesize() || resident > pages/8 {
		t.Errorf("%d of the committed part's %d pages are still in the page cache", resident, pages)
	}
}

// residentPages returns how many of the file's pages are in the page
// cache (mincore), and how many it has.
func residentPages(t *testing.T, path string) (resident, pages int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, len(vec)
}
