package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var memoryCount atomic.Int64

// NewMemory returns an empty Bucket held in memory, named "mem://mN/" with a
// process-unique N. Keys follow S3's rules (any non-empty UTF-8 string not
// starting with "/"); ETags are the quoted MD5 of the content, as S3 gives
// for single-part objects.
func NewMemory() *Bucket {
	name := fmt.Sprintf("m%d", memoryCount.Add(1))
	return &Bucket{d: &memDriver{name: name, objects: map[string]memObject{}}}
}

type memDriver struct {
	name    string
	mu      sync.Mutex
	objects map[string]memObject
	stages  map[memStageID]*memStage // see staged_memory.go; made on first use
}

// memObject is immutable once stored: a write replaces the whole entry.
type memObject struct {
	data    []byte
	etag    string
	modTime time.Time
}

// newMemObject stores data, which the object then owns, as of now.
func newMemObject(data []byte) memObject {
	sum := md5.Sum(data)
	return memObject{data: data, etag: `"` + hex.EncodeToString(sum[:]) + `"`, modTime: time.Now()}
}

func (d *memDriver) url(key string) string { return "mem://" + d.name + "/" + key }

func (d *memDriver) checkKey(key string) error       { return checkKeyCommon(key) }
func (d *memDriver) checkPrefix(prefix string) error { return checkPrefixCommon(prefix) }

func (d *memDriver) get(key string) (memObject, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[key]
	return o, ok
}

func (o memObject) info(key string) ObjectInfo {
	return ObjectInfo{Key: key, Size: int64(len(o.data)), ETag: o.etag, ModTime: o.modTime}
}

func (d *memDriver) list(_ context.Context, prefix string) ([]ObjectInfo, error) {
	d.mu.Lock()
	var out []ObjectInfo
	for k, o := range d.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, o.info(k))
		}
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (d *memDriver) stat(_ context.Context, key string) (ObjectInfo, error) {
	o, ok := d.get(key)
	if !ok {
		return ObjectInfo{}, &objectError{op: "stat", url: d.url(key), kind: fs.ErrNotExist}
	}
	return o.info(key), nil
}

func (d *memDriver) newRangeReader(ctx context.Context, key, etag string, offset, length int64) (io.ReadCloser, error) {
	o, ok := d.get(key)
	if !ok {
		return nil, &objectError{op: "read", url: d.url(key), kind: fs.ErrNotExist}
	}
	if etag != "" && o.etag != etag {
		return nil, &objectError{op: "read", url: d.url(key), kind: ErrChanged}
	}
	size := int64(len(o.data))
	start := min(offset, size)
	end := size
	if length >= 0 && length < size-start {
		end = start + length
	}
	return &memReader{ctx: ctx, r: bytes.NewReader(o.data[start:end])}, nil
}

// memReader keeps the ctx it was opened with because io.Reader has no other
// way to be cancelled.
type memReader struct {
	ctx context.Context
	r   *bytes.Reader
}

func (r *memReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func (r *memReader) Close() error { return nil }

func (d *memDriver) newWriter(_ context.Context, key string) (driverWriter, error) {
	return &memWriter{d: d, key: key}, nil
}

// memWriter buffers an object and stores it on commit.
type memWriter struct {
	d   *memDriver
	key string
	buf bytes.Buffer
}

func (w *memWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *memWriter) commit() error {
	o := newMemObject(w.buf.Bytes()) // the buffer is dropped: data is the object's own
	w.buf = bytes.Buffer{}
	w.d.mu.Lock()
	w.d.objects[w.key] = o
	w.d.mu.Unlock()
	return nil
}

func (w *memWriter) abort() error {
	w.buf = bytes.Buffer{}
	return nil
}

func (d *memDriver) delete(_ context.Context, key string) error {
	d.mu.Lock()
	delete(d.objects, key)
	d.mu.Unlock()
	return nil
}
