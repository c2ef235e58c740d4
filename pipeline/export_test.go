package pipeline

import "context"

// Run runs job in this process (NewRun) and returns its manifest.
func Run(ctx context.Context, job *Job, src Source, sink Sink, opts *CoordinatorOptions) (*Manifest, error) {
	c, err := NewRun(job, src, sink, opts)
	if err != nil {
		return nil, err
	}
	return c.Run(ctx)
}

// MemStore is a Source, Sink and Output over a map, for the examples.
type MemStore = memStore

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return newMemStore() }

// Put stores an object.
func (m *memStore) Put(key string, data []byte) { m.objects[key] = data }

// Get returns an object.
func (m *memStore) Get(key string) []byte { return m.objects[key] }
