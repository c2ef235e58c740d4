package storage

import "sync"

const (
	// chunkSize is the unit in which S3 writers buffer a part and readers
	// read ahead: a buffer grows one chunk at a time, without copying,
	// only as far as its data.
	chunkSize = 1 << 20
	// freeChunks is how many chunks the process keeps for reuse: more
	// than the writers and readers of a run hold at once (by default 4
	// parts of 8 MiB in flight, one part filling per open output object,
	// up to 4 MiB read ahead per input), so that a run maps each chunk
	// once. The pool keeps no more than the most that was in use at once.
	freeChunks = 128
)

// chunks hands out the chunks of every S3 Bucket of the process.
var chunks = &chunkPool{}

// chunkPool hands out chunkSize buffers and keeps up to freeChunks of
// those given back, so that writers and readers reuse memory instead of
// allocating a part's worth for each one. Where the platform allows, a
// chunk is mapped outside the Go heap (see chunks_unix.go): chunks are
// handed back explicitly, and as garbage-collected memory the megabytes
// of parts in flight would only raise the collector's heap goal, and so
// the process's footprint, by as much again. It is safe for concurrent
// use.
type chunkPool struct {
	mu   sync.Mutex
	free [][]byte
	out  int // chunks handed out and not given back
}

func (p *chunkPool) get() []byte {
	p.mu.Lock()
	p.out++
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return c[:0]
	}
	p.mu.Unlock()
	return newChunk()
}

// put takes back chunks that get handed out; none may be used after.
func (p *chunkPool) put(cs [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.out--
		if len(p.free) < freeChunks {
			p.free = append(p.free, c)
		} else {
			freeChunk(c)
		}
	}
}

// outstanding is how many chunks are handed out and not given back.
func (p *chunkPool) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out
}
