package storage

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// guard bounds how long a test waits for something that must happen: a
// bound against hanging, never a measure of speed.
const guard = time.Minute

// objectServer serves data as s3://bkt/obj (ranged GETs only), writing
// bodies in 64 KiB pieces; stall, when set, may stop a body after some
// bytes: it is called with the request and the bytes sent so far, and
// returns true to end the body there.
func objectServer(t *testing.T, data []byte, stall func(r *http.Request, sent int) bool) *s3Driver {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, b, _ := strings.Cut(strings.TrimPrefix(r.Header.Get("Range"), "bytes="), "-")
		first, _ := strconv.Atoi(a)
		last := len(data) - 1
		if b != "" {
			last, _ = strconv.Atoi(b)
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.Header().Set("Content-Length", strconv.Itoa(last+1-first))
		w.WriteHeader(http.StatusPartialContent)
		for sent := first; sent <= last; sent += 64 << 10 {
			if stall != nil && stall(r, sent-first) {
				return
			}
			w.Write(data[sent:min(sent+64<<10, last+1)])
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")}
	b, err := OpenS3("bkt", "", &S3Options{Client: NewS3Client(cfg, srv.URL, true)})
	if err != nil {
		t.Fatal(err)
	}
	return b.d.(*s3Driver)
}

func testBytes(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i/251)
	}
	return p
}

// ahead returns how far r's goroutine has read ahead of the caller, and
// its window.
func (r *s3Reader) ahead() (ahead, window int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos - r.read, r.window
}

// waitAhead waits until r has read want bytes ahead of the caller.
func waitAhead(t *testing.T, r *s3Reader, want int64) {
	t.Helper()
	for start := time.Now(); time.Since(start) < guard; time.Sleep(time.Millisecond) {
		if a, _ := r.ahead(); a == want {
			return
		}
	}
	a, w := r.ahead()
	t.Fatalf("read %d bytes ahead (window %d), want %d", a, w, want)
}

// TestS3ReaderReadsAhead: while the caller works on what it read, the
// reader's goroutine goes on reading, its window widening as the caller
// reads on, up to readAheadMax; a caller that reads a few bytes leaves the
// window at its first size.
func TestS3ReaderReadsAhead(t *testing.T) {
	data := testBytes(10 << 20)
	d := objectServer(t, data, nil)
	rc, err := d.newRangeReader(t.Context(), "obj", "", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r := rc.(*s3Reader)
	small := make([]byte, 100)
	if _, err := io.ReadFull(r, small); err != nil {
		t.Fatal(err)
	}
	waitAhead(t, r, readAheadFirst) // and no further: the window stays
	if _, w := r.ahead(); w != readAheadFirst {
		t.Errorf("window %d after 100 bytes, want %d", w, readAheadFirst)
	}
	got := append([]byte(nil), small...)
	for len(got) < 4<<20 {
		p := make([]byte, 64<<10)
		n, err := r.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	waitAhead(t, r, readAheadMax)
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if got = append(got, rest...); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want %d identical", len(got), len(data))
	}
}

// TestS3ReaderCloseStopsReadingAhead: Close stops the goroutine that
// reads ahead even while it waits for bytes from the server.
func TestS3ReaderCloseStopsReadingAhead(t *testing.T) {
	data := testBytes(2 << 20)
	stopped := make(chan struct{})
	d := objectServer(t, data, func(r *http.Request, sent int) bool {
		if sent < 512<<10 {
			return false
		}
		select { // the body stalls until the reader gives up
		case <-r.Context().Done():
			close(stopped)
		case <-time.After(guard):
		}
		return true
	})
	rc, err := d.newRangeReader(t.Context(), "obj", "", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	r := rc.(*s3Reader)
	if _, err := io.ReadFull(r, make([]byte, 300<<10)); err != nil {
		t.Fatal(err)
	}
	waitAhead(t, r, 512<<10-300<<10) // all the server sent
	r.Close()                        // returns once the goroutine has ended
	select {
	case <-stopped:
	case <-time.After(guard):
		t.Error("the server's request was not cancelled by Close")
	}
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Error("Read after Close succeeded")
	}
}
