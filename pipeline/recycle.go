package pipeline

import "github.com/apache/arrow/go/v17/arrow/memory"

// recycleLimit bounds the bytes a recycler keeps for reuse.
const recycleLimit = 16 << 20

// recycler is a memory.Allocator for the batches of one task: a buffer
// freed to it is kept, up to recycleLimit bytes in all, and handed out
// again, cleared, by the next Allocate of the same size. The batches of
// a split repeat the same sizes (the same builders fill to the same batch
// rows), so after the first batch a task allocates almost nothing and
// leaves the garbage collector little to do. Release returns what it
// keeps to the allocator below; until then that allocator counts it as
// in use.
//
// A recycler is not safe for concurrent use: a task's buffers are
// allocated and freed on the task's goroutine.
type recycler struct {
	mem  memory.Allocator
	free map[int][][]byte // by length
	kept int
	// reused holds the sizes handed out again since the last trim.
	reused map[int]bool
}

func newRecycler(mem memory.Allocator) *recycler {
	return &recycler{mem: mem, free: map[int][][]byte{}, reused: map[int]bool{}}
}

func (r *recycler) Allocate(size int) []byte {
	if bufs := r.free[size]; len(bufs) > 0 {
		b := bufs[len(bufs)-1]
		r.free[size] = bufs[:len(bufs)-1]
		r.kept -= size
		r.reused[size] = true
		clear(b)
		return b
	}
	return r.mem.Allocate(size)
}

// trim frees the kept buffers of the sizes not handed out again since the
// last trim: those a task's batches asked for once (its last, shorter
// batch's), which a recycler lent from task to task would otherwise keep
// up to recycleLimit.
func (r *recycler) trim() {
	for size, bufs := range r.free {
		if r.reused[size] {
			continue
		}
		for _, b := range bufs {
			r.mem.Free(b)
			r.kept -= len(b)
		}
		delete(r.free, size)
	}
	clear(r.reused)
}

func (r *recycler) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) && size == len(b) {
		return b
	}
	nb := r.Allocate(size)
	copy(nb, b)
	r.Free(b)
	return nb
}

func (r *recycler) Free(b []byte) {
	if len(b) == 0 || r.kept+len(b) > recycleLimit {
		r.mem.Free(b)
		return
	}
	r.free[len(b)] = append(r.free[len(b)], b)
	r.kept += len(b)
}

// shared returns the allocator below mem when mem is a task's recycler,
// which is not safe for concurrent use: the allocator for the goroutines
// a task starts, each of which makes a recycler of its own over it.
func shared(mem memory.Allocator) memory.Allocator {
	if rc, ok := mem.(*recycler); ok {
		return rc.mem
	}
	return mem
}

// Release frees every kept buffer to the allocator below. The recycler
// stays usable.
func (r *recycler) Release() {
	for size, bufs := range r.free {
		for _, b := range bufs {
			r.mem.Free(b)
		}
		delete(r.free, size)
	}
	r.kept = 0
}

// recycling returns a copy of t whose batches take their buffers from a
// recycler over t's allocator, and the function to call once the task's
// records are all released: it gives the recycler back to t's recyclers,
// which keep its buffers for the worker's next task, or without them
// releases what it keeps.
func (t *splitTask) recycling() (*splitTask, func()) {
	c := *t
	if t.recyclers == nil {
		r := newRecycler(t.mem)
		c.mem = r
		return &c, r.Release
	}
	r := t.recyclers.get()
	c.mem = r
	return &c, func() { t.recyclers.put(r) }
}

// recyclers keeps the recyclers of a worker's finished tasks for its next
// ones, at most max of them: a task then starts with the buffers of an
// earlier one rather than fresh memory, whose first use costs page
// faults (each new task of a short job would otherwise grow the heap).
// It is safe for concurrent use.
type recyclers struct {
	mem  memory.Allocator
	kept freeList[*recycler]
}

func newRecyclers(mem memory.Allocator, max int) *recyclers {
	return &recyclers{mem: mem, kept: freeList[*recycler]{max: max}}
}

func (p *recyclers) get() *recycler {
	return p.kept.take(func() *recycler { return newRecycler(p.mem) })
}

// put takes back r, whose buffers are all freed to it, trimmed to the
// sizes its task reused.
func (p *recyclers) put(r *recycler) {
	r.trim()
	if !p.kept.keep(r) {
		r.Release()
	}
}

// Release releases what every kept recycler keeps, to the allocator
// below. The recyclers stay usable.
func (p *recyclers) Release() {
	for _, r := range p.kept.drain() {
		r.Release()
	}
}
