//go:build unix

package storage

import (
	"sync"
	"syscall"
	"unsafe"
)

// heapChunks records the chunks that had to come from the Go heap because
// mapping one failed: freeChunk leaves them to the garbage collector.
var heapChunks sync.Map // *byte → struct{}

// newChunk maps an empty chunk of anonymous memory, zero-filled by the
// kernel page by page as it is first written.
func newChunk() []byte {
	c, err := syscall.Mmap(-1, 0, chunkSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		c = make([]byte, chunkSize)
		heapChunks.Store(unsafe.SliceData(c), struct{}{})
	}
	return c[:0]
}

// freeChunk unmaps a chunk of newChunk's.
func freeChunk(c []byte) {
	c = c[:cap(c)]
	if _, ok := heapChunks.LoadAndDelete(unsafe.SliceData(c)); ok {
		return
	}
	syscall.Munmap(c)
}
