package storage

import (
	"bytes"
	"os"
	"path/filepath"
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
