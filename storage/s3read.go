package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

const (
	// readChunkFirst and readChunkMax size the ranged GETs of a reader:
	// the first asks for readChunkFirst bytes, each next one for twice as
	// many as the one before, up to readChunkMax. A reader holds at most
	// two chunks: the one being read and the next.
	readChunkFirst = 256 << 10
	readChunkMax   = 4 << 20
)

// s3Reader reads a byte range as a sequence of chunks, each fetched with
// ranged GETs into memory by a goroutine of its own, so that the next
// chunk arrives while the current one is read: once half of the first
// chunk has been read (a reader that needs only a few bytes, such as the
// end of a line, fetches no more), and from then on as soon as a chunk is
// started. A fetch whose connection fails continues from the last byte it
// received (see S3Options.ReadResumes). Every GET after the first is
// pinned to the ETag the first one saw (or the one given), so a replaced
// object is an error, never mixed data.
//
// Its ctx, derived from the one it was opened with because io.Reader has
// no other way to be cancelled, also ends the fetches on Close.
type s3Reader struct {
	ctx      context.Context
	cancel   context.CancelFunc
	d        *s3Driver
	key      string
	etag     string // set before any fetch starts; read-only after
	end      int64  // offset after the range's last byte; -1 while unknown
	next     int64  // size of the next chunk to fetch
	cur      *s3Fetch
	ahead    *s3Fetch // the chunk after cur, once its fetch started
	fetching sync.WaitGroup
	err      error
}

// s3Fetch is one chunk: the object's bytes [off, end), or fewer when the
// object ends first. Its goroutine owns buf, end and err until done is
// closed; then the reader does.
type s3Fetch struct {
	off  int64
	want int64 // the end asked for
	end  int64
	buf  partBuf
	err  error // after buf's bytes
	done chan struct{}
	read int64 // bytes of buf the reader has returned
	big  bool  // not the first chunk: the next is fetched at once
}

// s3Answer is the answer to one GET of a fetch.
type s3Answer struct {
	body io.ReadCloser // nil: the object ends at or before the range's start
	stop int64         // offset after the last byte body holds
	size int64         // the object's size; -1 if unknown
	etag string
}

func (d *s3Driver) newRangeReader(ctx context.Context, key, etag string, offset, length int64) (io.ReadCloser, error) {
	fctx, cancel := context.WithCancel(ctx)
	r := &s3Reader{ctx: fctx, cancel: cancel, d: d, key: key, etag: etag, end: -1, next: readChunkFirst}
	if length >= 0 {
		r.end = offset + length
	}
	// Send the first GET now so that a missing object or a changed ETag
	// is reported by NewRangeReader itself.
	f := r.plan(offset)
	a, err := r.get(f.off, f.end)
	if err != nil {
		cancel()
		return nil, err
	}
	if r.etag == "" {
		r.etag = a.etag
	}
	if a.size >= 0 && (r.end < 0 || r.end > a.size) {
		r.end = a.size
	}
	if a.body == nil {
		r.end = offset // nothing to read
		return r, nil
	}
	r.cur = f
	r.fetching.Go(func() { r.fill(f, a) })
	return r, nil
}

// plan describes the chunk that starts at off, and doubles the size of
// the next one.
func (r *s3Reader) plan(off int64) *s3Fetch {
	f := &s3Fetch{off: off, want: off + r.next, done: make(chan struct{}), big: r.next > readChunkFirst}
	if r.end >= 0 && f.want > r.end {
		f.want = r.end
	}
	f.end = f.want
	r.next = min(2*r.next, readChunkMax)
	return f
}

// fetch starts fetching the chunk at off; nil when the range ends there.
func (r *s3Reader) fetch(off int64) *s3Fetch {
	if r.end >= 0 && off >= r.end {
		return nil
	}
	f := r.plan(off)
	r.fetching.Go(func() { r.fill(f, s3Answer{}) })
	return f
}

// get sends one GetObject for the object's bytes [from, to), pinned to
// r.etag when set.
func (r *s3Reader) get(from, to int64) (s3Answer, error) {
	rng := fmt.Sprintf("bytes=%d-%d", from, to-1)
	in := &s3.GetObjectInput{
		Bucket: aws.String(r.d.bucket),
		Key:    aws.String(r.d.prefix + r.key),
		Range:  aws.String(rng),
	}
	if r.etag != "" {
		in.IfMatch = aws.String(r.etag)
	}
	out, err := r.d.client.GetObject(r.ctx, in, r.d.opts)
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "InvalidRange" {
			return s3Answer{stop: from, size: -1}, nil // the object ends at or before from
		}
		return s3Answer{}, r.d.fail("GetObject", r.key, err)
	}
	a := s3Answer{body: out.Body, etag: aws.ToString(out.ETag)}
	if r.etag != "" && a.etag != "" && a.etag != r.etag {
		out.Body.Close()
		return s3Answer{}, &objectError{op: "GetObject", url: r.d.url(r.key), kind: ErrChanged}
	}
	// Learn where the object ends, so that a body cut short is told apart
	// from the end of the object.
	first, last, total, ok := parseContentRange(aws.ToString(out.ContentRange))
	switch {
	case ok && first == from:
		a.stop, a.size = min(to, last+1), total
		if total >= 0 {
			a.stop = min(a.stop, total)
		}
	case out.ContentRange == nil && from == 0 && out.ContentLength != nil:
		// The whole object, sent without a range.
		a.size = *out.ContentLength
		a.stop = min(to, a.size)
	default:
		out.Body.Close()
		return s3Answer{}, &objectError{op: "GetObject", url: r.d.url(r.key),
			err: fmt.Errorf("response to %q has Content-Range %q", rng, aws.ToString(out.ContentRange))}
	}
	return a, nil
}

// fill reads f's bytes into f.buf: from a's body if it has one, else from
// a new GET, and after a dropped connection from a GET that continues at
// the last byte received. It records the error that ends it in f.err and
// closes f.done.
func (r *s3Reader) fill(f *s3Fetch, a s3Answer) {
	defer close(f.done)
	fails := 0 // consecutive failures without progress
	for {
		pos := f.off + f.buf.size
		if a.body == nil {
			var err error
			if a, err = r.get(pos, f.end); err != nil {
				f.err = err
				return
			}
			if a.body == nil {
				f.end = pos // the object ends here
				return
			}
		}
		f.end = min(f.end, a.stop) // the object ends first
		n, err := f.buf.readFrom(r.d.pool, a.body, f.end-f.off)
		a.body.Close()
		a.body = nil
		if err == nil {
			return
		}
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			f.err = &objectError{op: "GetObject", url: r.d.url(r.key), err: ctxErr}
			return
		}
		if n > 0 {
			fails = 0
		}
		fails++
		if fails > r.d.resumes {
			f.err = &objectError{op: "GetObject", url: r.d.url(r.key),
				err: fmt.Errorf("connection failed at byte %d, %d times in a row: %w", f.off+f.buf.size, fails, err)}
			return
		}
		if n == 0 {
			if err := sleepCtx(r.ctx, time.Duration(fails)*100*time.Millisecond); err != nil {
				f.err = &objectError{op: "GetObject", url: r.d.url(r.key), err: err}
				return
			}
		}
	}
}

// readFrom appends body's bytes to b until b holds want bytes, taking
// chunks from pool. It returns how many bytes it appended, and nil once b
// holds want bytes, else why not (io.ErrUnexpectedEOF for a body that
// ended early).
func (b *partBuf) readFrom(pool *chunkPool, body io.Reader, want int64) (int64, error) {
	var got int64
	for b.size < want {
		n := len(b.chunks)
		if n == 0 || len(b.chunks[n-1]) == chunkSize {
			b.chunks = append(b.chunks, pool.get())
			n++
		}
		c := b.chunks[n-1]
		room := min(int64(chunkSize-len(c)), want-b.size)
		k, err := body.Read(c[len(c) : len(c)+int(room)])
		b.chunks[n-1] = c[:len(c)+k]
		b.size += int64(k)
		got += int64(k)
		switch {
		case b.size == want:
			return got, nil
		case err == io.EOF:
			return got, io.ErrUnexpectedEOF
		case err != nil:
			return got, err
		}
	}
	return got, nil
}

func (r *s3Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		f := r.cur
		if f == nil {
			return 0, io.EOF
		}
		<-f.done
		n := f.copyTo(p)
		r.readAhead(f)
		if n > 0 || len(p) == 0 && f.read < f.buf.size {
			return n, nil
		}
		// f is read to its end.
		if f.err != nil {
			r.err = f.err
			return 0, r.err
		}
		f.buf.release(r.d.pool)
		r.cur, r.ahead = r.ahead, nil
		if r.cur == nil && r.more(f) {
			r.cur = r.fetch(f.end)
		}
	}
}

// more reports whether the range goes on after the fetched chunk f: not
// if f failed or found the object's end.
func (r *s3Reader) more(f *s3Fetch) bool {
	return f.err == nil && f.end == f.want && (r.end < 0 || f.end < r.end)
}

// readAhead starts fetching the chunk after f when it is due: once half of
// the first chunk is read, at once for the others.
func (r *s3Reader) readAhead(f *s3Fetch) {
	if r.ahead == nil && (f.big || 2*f.read >= f.buf.size) && r.more(f) {
		r.ahead = r.fetch(f.end)
	}
}

// copyTo copies unread bytes of f into p.
func (f *s3Fetch) copyTo(p []byte) int {
	n := 0
	for n < len(p) && f.read < f.buf.size {
		c := f.buf.chunks[f.read/chunkSize][f.read%chunkSize:]
		k := copy(p[n:], c)
		n += k
		f.read += int64(k)
	}
	return n
}

func (r *s3Reader) Close() error {
	if r.err == nil {
		r.err = errors.New("storage: read after Close")
	}
	r.cancel()
	r.fetching.Wait()
	for _, f := range []*s3Fetch{r.cur, r.ahead} {
		if f != nil {
			f.buf.release(r.d.pool)
		}
	}
	r.cur, r.ahead = nil, nil
	return nil
}
