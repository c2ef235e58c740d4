package storage

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
)

// Mux routes object URLs, as Bucket.URL makes them, to the Buckets that
// hold them, so that one reader serves objects from several Buckets. Its
// NewRangeReader has the shape of pipeline.Source. A Mux is safe for
// concurrent use.
type Mux struct {
	mu      sync.RWMutex
	buckets []*Bucket
}

// NewMux returns a Mux routing to the given Buckets.
func NewMux(buckets ...*Bucket) *Mux {
	m := &Mux{}
	for _, b := range buckets {
		m.Add(b)
	}
	return m
}

// Add routes URLs under b's root to b. When roots nest, the longest wins.
func (m *Mux) Add(b *Bucket) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buckets = append(m.buckets, b)
}

// Resolve returns the Bucket holding url and the object's key within it.
// A URL under no added Bucket is an error wrapping fs.ErrNotExist.
func (m *Mux) Resolve(url string) (*Bucket, string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var best *Bucket
	var bestKey string
	bestLen := -1
	for _, b := range m.buckets {
		root := b.String()
		_, local := b.d.(*localDriver)
		if local && !strings.HasSuffix(root, string(filepath.Separator)) {
			root += string(filepath.Separator)
		}
		if len(root) > bestLen && len(url) > len(root) && strings.HasPrefix(url, root) {
			best, bestLen = b, len(root)
			bestKey = url[len(root):]
			if local {
				bestKey = filepath.ToSlash(bestKey)
			}
		}
	}
	if best == nil {
		return nil, "", fmt.Errorf("storage: no bucket is open for %s: %w", url, fs.ErrNotExist)
	}
	return best, bestKey, nil
}

// NewRangeReader resolves url and calls the Bucket's NewRangeReader.
func (m *Mux) NewRangeReader(ctx context.Context, url, etag string, offset, length int64) (io.ReadCloser, error) {
	b, key, err := m.Resolve(url)
	if err != nil {
		return nil, err
	}
	return b.NewRangeReader(ctx, key, etag, offset, length)
}
