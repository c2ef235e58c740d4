package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

const (
	// readAheadFirst and readAheadMax bound how far a reader's goroutine
	// reads ahead of what has been returned: readAheadFirst at first,
	// doubling each time half of the bytes read ahead have been returned,
	// up to readAheadMax.
	readAheadFirst = 256 << 10
	readAheadMax   = 4 << 20
)

// s3Reader streams a byte range with one ranged GET and reconnects from
// the last byte received when the body fails. A goroutine reads the body
// ahead of the caller into chunks from the process's pool, while the caller
// works on what it has read: up to readAheadFirst bytes at first, so that
// a reader that wants only a few bytes (the end of a line past a split)
// costs little, and up to readAheadMax once the caller keeps reading.
// Every GET after the first is pinned to the ETag the first one saw (or
// the one given), so a replaced object is an error, never mixed data.
//
// Its ctx, derived from the one it was opened with because io.Reader has
// no other way to be cancelled, also stops the goroutine on Close.
type s3Reader struct {
	ctx     context.Context
	cancel  context.CancelFunc
	d       *s3Driver
	key     string
	etag    string // set before the goroutine starts; read-only after
	pumping sync.WaitGroup
	err     error // the caller's: returned by every Read from then on

	mu      sync.Mutex
	chunks  [][]byte // the bytes [base, pos), all chunks full but the last
	base    int64
	pos     int64 // offset after the last byte received
	read    int64 // offset of the next byte to return
	end     int64 // offset after the range's last byte; -1 while unknown
	window  int64 // how far the goroutine may read ahead of read
	grown   int64 // read when the window last grew
	stopped bool  // the goroutine has ended, with pumpErr (nil: at end)
	pumpErr error
	arrived chan struct{} // signalled when bytes arrive or the goroutine ends
	taken   chan struct{} // signalled when the caller has taken bytes
}

// s3Answer is the answer to one GET.
type s3Answer struct {
	body io.ReadCloser // nil: the object ends at or before the range's start
	stop int64         // offset after the last byte body holds
	size int64         // the object's size; -1 if unknown
	etag string
}

func (d *s3Driver) newRangeReader(ctx context.Context, key, etag string, offset, length int64) (io.ReadCloser, error) {
	fctx, cancel := context.WithCancel(ctx)
	r := &s3Reader{ctx: fctx, cancel: cancel, d: d, key: key, etag: etag, base: offset, pos: offset, read: offset,
		grown: offset, end: -1, window: readAheadFirst, arrived: make(chan struct{}, 1), taken: make(chan struct{}, 1)}
	if length >= 0 {
		r.end = offset + length
	}
	// Send the first GET now so that a missing object or a changed ETag
	// is reported by NewRangeReader itself.
	a, err := r.get(offset, r.end)
	if err != nil {
		cancel()
		return nil, err
	}
	if r.etag == "" {
		r.etag = a.etag
	}
	r.end = a.stop
	if a.body == nil {
		r.stopped = true // nothing to read
		return r, nil
	}
	r.pumping.Go(func() { r.pump(a.body) })
	return r, nil
}

// get sends one GetObject for the object's bytes from "from" to "to" (-1:
// to the end), pinned to r.etag when set.
func (r *s3Reader) get(from, to int64) (s3Answer, error) {
	rng := fmt.Sprintf("bytes=%d-", from)
	if to >= 0 {
		rng += strconv.FormatInt(to-1, 10)
	}
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
	// from the end of the object, and a range past the end is cut there.
	first, last, total, ok := parseContentRange(aws.ToString(out.ContentRange))
	switch {
	case ok && first == from && total >= 0:
		a.stop, a.size = total, total
		if to >= 0 {
			a.stop = min(to, total)
		}
	case ok && first == from:
		a.stop, a.size = last+1, -1
	case out.ContentRange == nil && from == 0 && out.ContentLength != nil:
		// The whole object, sent without a range.
		a.size = *out.ContentLength
		a.stop = a.size
		if to >= 0 {
			a.stop = min(to, a.size)
		}
	default:
		out.Body.Close()
		return s3Answer{}, &objectError{op: "GetObject", url: r.d.url(r.key),
			err: fmt.Errorf("response to %q has Content-Range %q", rng, aws.ToString(out.ContentRange))}
	}
	return a, nil
}

// pump reads the range from body, and after a dropped connection from a
// GET that continues at the last byte received, ahead of the caller by at
// most the window. It ends with the error that stopped it, if any.
func (r *s3Reader) pump(body io.ReadCloser) {
	fails := 0 // consecutive failures without progress
	for {
		if body == nil {
			a, err := r.get(r.pos, r.end) // pos and end change only here
			if err != nil {
				r.stop(err)
				return
			}
			if a.body == nil || a.stop < r.end {
				if a.body != nil {
					a.body.Close()
				}
				r.stop(fmt.Errorf("the object ends at byte %d, before %d", a.stop, r.end))
				return
			}
			body = a.body
		}
		n, err := r.receive(body)
		body.Close()
		body = nil
		if err == nil {
			r.stop(nil)
			return
		}
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			r.stop(ctxErr)
			return
		}
		if n > 0 {
			fails = 0
		}
		fails++
		if fails > r.d.resumes {
			r.stop(fmt.Errorf("connection failed at byte %d, %d times in a row: %w", r.pos, fails, err))
			return
		}
		if n == 0 {
			if err := sleepCtx(r.ctx, time.Duration(fails)*100*time.Millisecond); err != nil {
				r.stop(err)
				return
			}
		}
	}
}

// receive appends body's bytes up to the end of the range, publishing
// them as they arrive, and waits while it is a window ahead of the
// caller. It returns how many bytes it appended, and nil once it has
// them all, else why not (io.ErrUnexpectedEOF for a body that ended
// early).
func (r *s3Reader) receive(body io.Reader) (int64, error) {
	var got int64
	for r.pos < r.end {
		c, room, err := r.room()
		if err != nil {
			return got, err
		}
		// The bytes past len(c) are not published: the caller does not
		// look at them until they are.
		k, err := body.Read(c[len(c) : len(c)+int(room)])
		if k > 0 {
			r.mu.Lock()
			// c is still the last chunk: the caller drops only full ones.
			r.chunks[len(r.chunks)-1] = c[:len(c)+k]
			r.pos += int64(k)
			r.mu.Unlock()
			signal(r.arrived)
			got += int64(k)
		}
		switch {
		case r.pos == r.end:
		case err == io.EOF:
			return got, io.ErrUnexpectedEOF
		case err != nil:
			return got, err
		}
	}
	return got, nil
}

// room waits until the goroutine may read ahead, makes sure the last
// chunk has space, and returns it and how many bytes it may read into it.
func (r *s3Reader) room() ([]byte, int64, error) {
	for {
		r.mu.Lock()
		ahead := r.pos - r.read
		window := r.window
		if ahead < window {
			n := len(r.chunks)
			if n == 0 || len(r.chunks[n-1]) == chunkSize {
				r.chunks = append(r.chunks, chunks.get())
			}
			c := r.chunks[len(r.chunks)-1]
			r.mu.Unlock()
			return c, min(int64(chunkSize-len(c)), window-ahead, r.end-r.pos), nil
		}
		r.mu.Unlock()
		select {
		case <-r.taken:
		case <-r.ctx.Done():
			return nil, 0, r.ctx.Err()
		}
	}
}

// stop ends the goroutine's work with err (nil: the range was read).
func (r *s3Reader) stop(err error) {
	if err != nil {
		var oe *objectError
		if !errors.As(err, &oe) {
			err = &objectError{op: "GetObject", url: r.d.url(r.key), err: err}
		}
	}
	r.mu.Lock()
	r.stopped, r.pumpErr = true, err
	r.mu.Unlock()
	signal(r.arrived)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (r *s3Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		r.mu.Lock()
		n := r.take(p)
		left := r.read < r.pos
		stopped, err := r.stopped, r.pumpErr
		r.mu.Unlock()
		switch {
		case n > 0:
			signal(r.taken)
			return n, nil
		case len(p) == 0 && (left || !stopped):
			return 0, nil
		case !stopped:
			<-r.arrived // the goroutine signals each arrival and its end
		case err != nil:
			r.err = err
			return 0, r.err
		default:
			return 0, io.EOF
		}
	}
}

// take copies bytes received into p, drops the chunks read through, and
// widens the window as the caller reads on; mu must be held.
func (r *s3Reader) take(p []byte) int {
	n := 0
	for n < len(p) && r.read < r.pos {
		i := r.read - r.base
		c := r.chunks[i/chunkSize][i%chunkSize:]
		k := copy(p[n:], c)
		n += k
		r.read += int64(k)
		if r.read-r.base == chunkSize {
			chunks.put(r.chunks[:1])
			r.chunks = r.chunks[1:]
			r.base += chunkSize
		}
	}
	if r.window < readAheadMax && 2*(r.read-r.grown) >= r.window {
		r.window *= 2
		r.grown = r.read
	}
	return n
}

func (r *s3Reader) Close() error {
	if r.err == nil {
		r.err = errors.New("storage: read after Close")
	}
	r.cancel()
	r.pumping.Wait()
	chunks.put(r.chunks)
	r.chunks = nil
	return nil
}
