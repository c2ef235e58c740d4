package pipeline

import (
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

func TestRecyclerReusesAndReleases(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := newRecycler(mem)
	a := r.Allocate(1000)
	for i := range a {
		a[i] = 7
	}
	r.Free(a)
	b := r.Allocate(1000)
	if &b[0] != &a[0] {
		t.Error("a freed buffer of the same size was not reused")
	}
	for _, c := range b {
		if c != 0 {
			t.Fatal("a reused buffer is not cleared")
		}
	}
	b = r.Reallocate(3000, b)
	if len(b) != 3000 {
		t.Fatalf("Reallocate gave %d bytes", len(b))
	}
	r.Free(b)
	big := r.Allocate(recycleLimit + 1)
	r.Free(big)         // beyond the limit: freed at once
	if r.kept != 4000 { // the 1000 bytes Reallocate left, and the 3000
		t.Errorf("keeps %d bytes, want 4000", r.kept)
	}
	r.Release()
	if r.kept != 0 || len(r.free) != 0 {
		t.Errorf("after Release: %d bytes kept", r.kept)
	}
}
