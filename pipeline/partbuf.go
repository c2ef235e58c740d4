package pipeline

import "sync"

// partBufs keeps the buffers of closed partWriters for the next ones: a
// fresh buffer of a megabyte costs page faults and zeroing as it first
// fills, once per output part, where a reused one costs neither. (A
// sync.Pool would drop them at every garbage collection.)
var partBufs = &bufPool{size: partBuffer + 64<<10, max: 8}

// bufPool hands out empty buffers of capacity size and keeps up to max
// of those given back. It is safe for concurrent use.
type bufPool struct {
	size, max int
	mu        sync.Mutex
	free      [][]byte
}

func (p *bufPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	return make([]byte, 0, p.size)
}

// put takes back b, which must no longer be used; a buffer that grew
// past size or a nil one is left to the garbage collector.
func (p *bufPool) put(b []byte) {
	if cap(b) != p.size {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < p.max {
		p.free = append(p.free, b[:0])
	}
}
