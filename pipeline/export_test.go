package pipeline

// MemStore is a Source, Sink and Output over a map, for the examples.
type MemStore = memStore

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return newMemStore() }

// Put stores an object.
func (m *memStore) Put(key string, data []byte) { m.objects[key] = data }

// Get returns an object.
func (m *memStore) Get(key string) []byte { return m.objects[key] }
