package pipeline

import "sync"

// partBufs keeps the buffers of closed partWriters for the next ones: a
// fresh buffer of a megabyte costs page faults and zeroing as it first
// fills, once per output part, where a reused one costs neither. (A
// sync.Pool would drop them at every garbage collection.)
var partBufs = &bufPool{size: partBuffer + 64<<10, kept: freeList[[]byte]{max: 8}}

// freeList keeps up to max values given back, for the next take. It is
// safe for concurrent use.
type freeList[T any] struct {
	mu   sync.Mutex
	max  int
	free []T
}

// take returns a kept value, or fresh() when none is kept.
func (l *freeList[T]) take(fresh func() T) T {
	l.mu.Lock()
	if n := len(l.free); n > 0 {
		v := l.free[n-1]
		l.free = l.free[:n-1]
		l.mu.Unlock()
		return v
	}
	l.mu.Unlock()
	return fresh()
}

// keep takes back v and reports whether it was kept: not when max
// values are kept already.
func (l *freeList[T]) keep(v T) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) >= l.max {
		return false
	}
	l.free = append(l.free, v)
	return true
}

// drain returns the kept values and keeps none.
func (l *freeList[T]) drain() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	free := l.free
	l.free = nil
	return free
}

// bufPool hands out empty buffers of capacity size and keeps some of
// those given back.
type bufPool struct {
	size int
	kept freeList[[]byte]
}

func (p *bufPool) get() []byte {
	return p.kept.take(func() []byte { return make([]byte, 0, p.size) })
}

// put takes back b, which must no longer be used; a buffer that grew
// past size or a nil one is left to the garbage collector.
func (p *bufPool) put(b []byte) {
	if cap(b) == p.size {
		p.kept.keep(b[:0])
	}
}
