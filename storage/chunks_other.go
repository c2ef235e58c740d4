//go:build !unix

package storage

// newChunk allocates an empty chunk on the Go heap.
func newChunk() []byte { return make([]byte, 0, chunkSize) }

// freeChunk leaves a chunk to the garbage collector.
func freeChunk([]byte) {}
