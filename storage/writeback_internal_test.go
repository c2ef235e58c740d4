package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// A writer starts the writeback of whole pages, writebackEvery bytes or
// more at a time, and the file holds exactly what was written.
func TestWritebackRanges(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var wb writeback
	var want bytes.Buffer
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 3<<16+7) // 3 MiB + 112 bytes
	var starts []int64
	for range 10 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		want.Write(chunk)
		before := wb.started
		wb.wrote(f, len(chunk))
		if wb.started != before {
			starts = append(starts, wb.started)
			if wb.started%pageSize != 0 || wb.started-before < writebackEvery || wb.started > wb.written {
				t.Errorf("writeback went from %d to %d after %d bytes", before, wb.started, wb.written)
			}
		}
	}
	if len(starts) != 3 {
		t.Errorf("writeback started at %v, want 3 ranges of 30 MiB written", starts)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Errorf("the file differs from what was written (%v)", err)
	}
}

// A writer syncs its data in the background, one sync at a time, each
// begun once syncEvery bytes have been written since the last began; wait
// waits for the one in flight and returns the first error.
func TestWritebackSyncs(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	release := make(chan error)
	var began []int64
	var wb writeback
	wb.sync = func(*os.File) error { return <-release }
	chunk := make([]byte, 3<<20)
	write := func(times int) {
		for range times {
			if _, err := f.Write(chunk); err != nil {
				t.Fatal(err)
			}
			before := wb.syncing
			wb.wrote(f, len(chunk))
			if wb.syncing != before && wb.syncing != nil {
				began = append(began, wb.written)
			}
		}
	}
	write(12) // 36 MiB: one sync, at 18 MiB, still in flight
	if len(began) != 1 || began[0] != 18<<20 {
		t.Fatalf("syncs began after %v bytes, want one after 18 MiB", began)
	}
	release <- nil
	for len(wb.syncing) == 0 { // until the first sync has handed back its result
		runtime.Gosched()
	}
	write(1) // the first sync has ended: the next begins
	if len(began) != 2 || began[1] != 39<<20 {
		t.Fatalf("syncs began after %v bytes, want a second after 39 MiB", began)
	}
	failed := errors.New("disk gone")
	go func() { release <- failed }()
	if err := wb.wait(); err != failed {
		t.Fatalf("wait: %v, want the sync's error", err)
	}
	write(6) // a later sync that succeeds does not hide the error
	go func() { release <- nil }()
	if err := wb.wait(); err != failed || len(began) != 3 {
		t.Fatalf("wait: %v after %d syncs, want the first error after 3", err, len(began))
	}
}

// A staged part whose background sync failed is not committed.
func TestStagedWriterBackgroundSyncError(t *testing.T) {
	d := &localDriver{root: t.TempDir()}
	sw, err := d.newStagedWriter(context.Background(), "train/part-00000", "s1")
	if err != nil {
		t.Fatal(err)
	}
	w := sw.(*localStagedWriter)
	failed := errors.New("disk gone")
	w.wb.sync = func(*os.File) error { return failed }
	if _, err := w.Write(make([]byte, syncEvery)); err != nil {
		t.Fatal(err)
	}
	if err := w.commit(); !errors.Is(err, failed) {
		t.Fatalf("commit: %v, want the background sync's error", err)
	}
}

// Each background sync that succeeds drops the whole pages it made
// durable, from where the last drop ended; one that fails drops nothing;
// durable drops the rest.
func TestWritebackDropsSyncedPages(t *testing.T) {
	dropAll(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type span struct{ off, n int64 }
	var dropped []span
	var mu sync.Mutex
	fail := errors.New("disk gone")
	syncs := 0
	wb := writeback{
		sync: func(*os.File) error {
			syncs++
			if syncs == 2 {
				return fail
			}
			return nil
		},
		drop: func(_ *os.File, off, n int64) {
			mu.Lock()
			dropped = append(dropped, span{off, n})
			mu.Unlock()
		},
	}
	chunk := make([]byte, 3<<20+100)
	for range 20 { // 60 MiB and 2000 bytes: three syncs
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		wb.wrote(f, len(chunk))
		if err := wb.wait(); err != nil && err != fail {
			t.Fatal(err)
		}
	}
	wb.durable(f)
	mu.Lock()
	defer mu.Unlock()
	// Syncs began after 6 chunks (18 MiB + 600), 12 and 18; the second failed.
	page := func(n int64) int64 { return n &^ (pageSize - 1) }
	c := int64(len(chunk))
	want := []span{{0, page(6 * c)}, {page(12 * c), page(18*c) - page(12*c)}, {page(18 * c), 20*c - page(18*c)}}
	if syncs != 3 || !slices.Equal(dropped, want) {
		t.Errorf("%d syncs dropped %v, want 3 dropping %v", syncs, dropped, want)
	}
}

// dropAll makes the writers of the test drop every synced page, as they
// do once the process has written dropAfter bytes.
func dropAll(t *testing.T) {
	saved := dropAfter
	dropAfter = -1
	t.Cleanup(func() { dropAfter = saved })
}

// Below dropAfter bytes written by the process, a writer keeps its pages.
func TestWritebackKeepsPagesOfSmallOutputs(t *testing.T) {
	saved := dropAfter
	dropAfter = localWritten.Load() + 1<<40
	t.Cleanup(func() { dropAfter = saved })
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	drops := 0
	wb := writeback{sync: func(*os.File) error { return nil }, drop: func(*os.File, int64, int64) { drops++ }}
	chunk := make([]byte, 4<<20)
	for range 10 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		wb.wrote(f, len(chunk))
		if err := wb.wait(); err != nil {
			t.Fatal(err)
		}
	}
	wb.durable(f)
	if drops != 0 {
		t.Errorf("%d drops below dropAfter, want none", drops)
	}
}
