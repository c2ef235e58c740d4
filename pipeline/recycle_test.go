package pipeline

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
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

func TestRecyclersLendBuffersToTheNextTask(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p := newRecyclers(mem, 2)
	task := &splitTask{mem: mem, recyclers: p}
	first, release := task.recycling()
	a := first.mem.Allocate(4096)
	first.mem.Free(a)
	// Two batches ask for 4096 bytes, the last, shorter one for 512 once:
	// lent, the recycler keeps the buffer its batches reused, not that one.
	a = first.mem.Allocate(4096)
	once := first.mem.Allocate(512)
	first.mem.Free(a)
	first.mem.Free(once)
	release()
	if got := mem.CurrentAlloc(); got != 4096 {
		t.Errorf("the lent recycler keeps %d bytes, want the 4096 its batches reused", got)
	}
	second, release := task.recycling()
	if b := second.mem.Allocate(4096); &b[0] != &a[0] {
		t.Error("the next task did not get the buffer the last one freed")
	} else {
		second.mem.Free(b)
	}
	// Three tasks at once: the third recycler is one too many to keep.
	third, release3 := task.recycling()
	fourth, release4 := task.recycling()
	for _, tk := range []*splitTask{third, fourth} {
		tk.mem.Free(tk.mem.Allocate(1000))
	}
	release()
	release3()
	release4()
	if len(p.kept.free) != 2 {
		t.Errorf("keeps %d recyclers, want 2", len(p.kept.free))
	}
	if mem.CurrentAlloc() == 0 {
		t.Error("the kept recyclers keep nothing")
	}
	p.Release()
	if len(p.kept.free) != 0 {
		t.Errorf("after Release: %d recyclers kept", len(p.kept.free))
	}
}

func TestWorkerReleasesWhatItsTasksKept(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	spec, err := features.ParseSpec([]byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	store.objects["in/a.csv"] = bytes.Repeat(data, 4)
	obj := Object{URL: "in/a.csv", Name: "a.csv", Size: int64(4 * len(data)), Root: "in/"}
	job, err := NewJob(spec, []Object{obj}, &Settings{Seed: 1, SplitSize: obj.Size / 6, Output: "out/"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewRun(job, store, store, &CoordinatorOptions{Workers: 2, Mem: mem})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
}
