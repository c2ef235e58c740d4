package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrChanged reports that an object no longer has the ETag a read was
// pinned to: it was replaced or deleted while a job was reading it.
var ErrChanged = errors.New("object changed while reading")

// errNoBucket reports an S3 bucket that does not exist.
var errNoBucket = errors.New("bucket does not exist")

// errUnreachable reports an S3 endpoint that could not be connected to.
var errUnreachable = errors.New("cannot reach the endpoint")

var errClosed = errors.New("storage: writer already closed")

// ObjectInfo describes one object. Key is relative to the Bucket's root.
// ETag identifies the object's current content; it is never empty.
type ObjectInfo struct {
	Key     string
	Size    int64
	ETag    string
	ModTime time.Time
}

// Bucket is a flat key space rooted at a prefix: a local folder, memory, or
// s3://bucket/prefix/. Keys are slash-separated and relative to the root
// ("train/part-00000"). A Bucket is safe for concurrent use; the readers and
// writers it returns are not.
//
// Errors name the object (its URL) and the operation. A missing object
// wraps fs.ErrNotExist, a denied one fs.ErrPermission, and a read whose
// pinned ETag no longer matches wraps ErrChanged; test with errors.Is.
type Bucket struct {
	d driver
}

// driver is one backend. Keys reaching it have passed checkKey.
type driver interface {
	list(ctx context.Context, prefix string) ([]ObjectInfo, error)
	stat(ctx context.Context, key string) (ObjectInfo, error)
	// newRangeReader: offset >= 0; length < 0 means to the end; length > 0.
	newRangeReader(ctx context.Context, key, etag string, offset, length int64) (io.ReadCloser, error)
	newWriter(ctx context.Context, key string) (driverWriter, error)
	delete(ctx context.Context, key string) error
	// checkKey rejects keys the backend cannot store; checkPrefix list prefixes.
	checkKey(key string) error
	checkPrefix(prefix string) error
	// url names a key for errors and object URLs; url("") is the root.
	url(key string) string
}

// String returns the Bucket's root: "s3://bucket/prefix/", the local folder's
// absolute path, or "mem://name/".
func (b *Bucket) String() string { return b.d.url("") }

// URL returns the URL of the object at key: the root followed by key.
func (b *Bucket) URL(key string) string { return b.d.url(key) }

// List returns the objects whose keys start with prefix, recursively, sorted
// by key (byte order). Keys are relative to the Bucket's root. An empty
// prefix lists everything; a root that does not exist yet lists nothing.
// Objects still being written are never listed.
func (b *Bucket) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.d.checkPrefix(prefix); err != nil {
		return nil, err
	}
	return b.d.list(ctx, prefix)
}

// Keys returns the keys that List returns for prefix.
func (b *Bucket) Keys(ctx context.Context, prefix string) ([]string, error) {
	infos, err := b.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys, nil
}

// Stat describes the object at key. A missing object is an error wrapping
// fs.ErrNotExist.
func (b *Bucket) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	if err := b.d.checkKey(key); err != nil {
		return ObjectInfo{}, err
	}
	return b.d.stat(ctx, key)
}

// NewRangeReader reads length bytes of the object at key starting at offset;
// length < 0 reads to the end. A range running past the end of the object is
// cut at the end, and an offset at or past the end reads nothing (no error).
// A non-empty etag pins the read to that version of the object: if it was
// replaced, opening or a later Read fails with an error wrapping ErrChanged.
// With an empty etag, S3 reads pin themselves to the version they first see.
//
// ctx governs the whole read, including Reads after NewRangeReader returns.
// The caller must Close the reader.
func (b *Bucket) NewRangeReader(ctx context.Context, key, etag string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.d.checkKey(key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("read %s: negative offset %d", b.d.url(key), offset)
	}
	if length == 0 {
		// Nothing to read, but the object must exist (at the pinned ETag).
		info, err := b.d.stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if etag != "" && info.ETag != etag {
			return nil, &objectError{op: "read", url: b.d.url(key), kind: ErrChanged}
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	return b.d.newRangeReader(ctx, key, etag, offset, length)
}

// NewWriter starts writing the object at key, replacing any object there.
// The object becomes visible (to List, Stat, readers) only when Close returns
// nil, all at once. If ctx is cancelled or a Write fails, the write is
// abandoned and nothing is left behind: Close then returns the error.
// Cancelling ctx alone is enough to abandon the write, even if Close is
// never called (a failed job simply cancels its context).
func (b *Bucket) NewWriter(ctx context.Context, key string) (io.WriteCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.d.checkKey(key); err != nil {
		return nil, err
	}
	w, err := b.d.newWriter(ctx, key)
	if err != nil {
		return nil, err
	}
	g := &writer{ctx: ctx, url: b.d.url(key), w: w}
	g.stop = context.AfterFunc(ctx, g.cancel)
	return g, nil
}

// Put writes data as the object at key, visible once Put returns nil.
func (b *Bucket) Put(ctx context.Context, key string, data []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // abandons the object unless Close published it
	w, err := b.NewWriter(ctx, key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Close()
}

// driverWriter stages one object for a driver. The Bucket's writer calls
// Write any number of times, then exactly one of commit or abort (abort
// also after a failed Write or commit). The driver does no bookkeeping of
// its own: closed state, sticky errors and cancellation are the writer's.
type driverWriter interface {
	io.Writer
	// commit publishes the object; on an error abort follows.
	commit() error
	// abort discards what was staged.
	abort() error
}

// writer is the one implementation of the Bucket's visibility contract:
// the object is published only by a Close that returns nil, and is
// abandoned, at once and by this writer alone, when a Write or the commit
// fails or when ctx ends first, even if Close is never called.
type writer struct {
	ctx  context.Context
	url  string
	stop func() bool

	mu   sync.Mutex
	w    driverWriter
	done bool  // committed or abandoned
	err  error // why it was abandoned; nil after a commit
}

// abandon discards the object (once) and records why; mu must be held.
func (g *writer) abandon(err error) error {
	if !g.done {
		g.done = true
		if aerr := g.w.abort(); aerr != nil {
			err = fmt.Errorf("%w (and discarding the staged object failed: %v)", err, aerr)
		}
		g.err = err
	}
	return g.err
}

func (g *writer) cancelled() error {
	return &objectError{op: "write", url: g.url, err: g.ctx.Err()}
}

func (g *writer) cancel() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.abandon(g.cancelled())
}

// finished is the answer to a Write or Close after the end.
func (g *writer) finished() error {
	if g.err != nil {
		return g.err
	}
	return errClosed
}

func (g *writer) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return 0, g.finished()
	}
	if g.ctx.Err() != nil {
		return 0, g.abandon(g.cancelled())
	}
	n, err := g.w.Write(p)
	if err != nil {
		return n, g.abandon(err)
	}
	return n, nil
}

func (g *writer) Close() error {
	g.stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return g.finished()
	}
	if g.ctx.Err() != nil {
		return g.abandon(g.cancelled())
	}
	if err := g.w.commit(); err != nil {
		return g.abandon(err)
	}
	g.done = true
	return nil
}

// Sweep removes what writers of crashed processes left staged for the keys
// that owned reports (the hidden temporary files ".NAME.tmp-RANDOM" of a
// local folder) and returns how many it removed; other backends have
// nothing to sweep (an S3 upload is aborted by its writer; AbortUploads
// removes those of a killed process). Files of other keys, including ones
// merely named like temporary files, are never touched. Call it only when
// no writer of the owned keys is active, e.g. after a job has ended. It
// leaves staged objects (NewStagedWriter) alone; DiscardStages removes them.
func (b *Bucket) Sweep(ctx context.Context, owned func(key string) bool) (int, error) {
	if d, ok := b.d.(*localDriver); ok {
		return d.sweep(ctx, owned)
	}
	return 0, ctx.Err()
}

// AbortUploads aborts the multipart uploads open on the given keys (S3; a
// staged object's upload too, which then cannot be published) and returns
// how many it aborted; other backends have none. It is for the uploads of
// writers that were killed: call it only when no writer of these keys is
// active. Objects are never touched.
func (b *Bucket) AbortUploads(ctx context.Context, keys []string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := b.d.checkKey(k); err != nil {
			return 0, err
		}
	}
	if d, ok := b.d.(*s3Driver); ok {
		return d.abortUploads(ctx, keys)
	}
	return 0, nil
}

// Delete removes the object at key. A missing object is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.d.checkKey(key); err != nil {
		return err
	}
	return b.d.delete(ctx, key)
}

// checkKeyCommon holds the key rules every backend shares: non-empty, valid
// UTF-8, no NUL byte, not starting with "/".
func checkKeyCommon(key string) error {
	switch {
	case key == "":
		return errors.New("storage: empty object key")
	case !utf8.ValidString(key):
		return fmt.Errorf("storage: object key %q is not valid UTF-8", key)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("storage: object key %q contains a NUL byte", key)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("storage: object key %q is absolute; keys are relative to the bucket root", key)
	}
	return nil
}

func checkPrefixCommon(prefix string) error {
	if prefix == "" {
		return nil
	}
	return checkKeyCommon(prefix)
}

// objectError is the error every backend returns for a failed operation on
// one object (or list prefix). kind classifies it for errors.Is.
type objectError struct {
	op   string // "read", "write", "stat", "list", "delete" or an S3 API name
	url  string // the object, or the listed prefix
	kind error  // fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, ErrChanged, errNoBucket, errUnreachable or nil
	code string // the S3 error code, when it says more than kind; the endpoint and why, when unreachable
	err  error  // the cause; may be nil
}

func (e *objectError) Error() string {
	if e.kind == errUnreachable {
		return fmt.Sprintf("cannot reach %s for %s (%s)", e.code, e.url, e.op)
	}
	op := e.op
	if e.code != "" {
		op += ": " + e.code
	}
	switch e.kind {
	case fs.ErrNotExist:
		return fmt.Sprintf("object %s does not exist (%s)", e.url, op)
	case fs.ErrPermission:
		return fmt.Sprintf("access denied to %s (%s)", e.url, op)
	case fs.ErrExist:
		return fmt.Sprintf("object %s already exists (%s)", e.url, op)
	case ErrChanged:
		return fmt.Sprintf("object %s changed while reading (%s)", e.url, op)
	case errNoBucket:
		return fmt.Sprintf("bucket of %s does not exist (%s)", e.url, op)
	}
	if e.err == nil {
		return fmt.Sprintf("%s %s: failed", e.op, e.url)
	}
	return fmt.Sprintf("%s %s: %v", e.op, e.url, e.err)
}

func (e *objectError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.err != nil {
		errs = append(errs, e.err)
	}
	return errs
}
