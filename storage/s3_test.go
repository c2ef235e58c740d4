package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

// assertNoUploads fails the test if a multipart upload of key is left.
func assertNoUploads(t *testing.T, client *s3.Client, bucket, key string) {
	t.Helper()
	if n := countUploads(t, client, bucket, key); n != 0 {
		t.Errorf("%d multipart uploads left behind for s3://%s/%s", n, bucket, key)
	}
}

// countUploads counts the multipart uploads in progress for key. (MinIO
// lists uploads of one exact key only, not of a prefix.)
func countUploads(t *testing.T, client *s3.Client, bucket, key string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &key})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	n := 0
	for _, u := range out.Uploads {
		if aws.ToString(u.Key) == key {
			n++
		}
	}
	return n
}

// fakeS3 serves GetObject for one object of bucket "bkt", key "data/obj",
// and lets a test script failures. It checks nothing about signatures.
type fakeS3 struct {
	data []byte
	etag string
	// respond, when set, may answer a request itself (returning true).
	respond func(w http.ResponseWriter, r *http.Request, n int) bool
	// cutAfter, when set, gives how many body bytes the nth GET (from 1)
	// sends before the connection is dropped; < 0 sends all.
	cutAfter func(n int) int

	mu       sync.Mutex
	requests []*http.Request
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(context.Background()))
	n := len(f.requests)
	f.mu.Unlock()
	if f.respond != nil && f.respond(w, r, n) {
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != "/bkt/data/obj" {
		s3Error(w, 404, "NoSuchKey", "The specified key does not exist.")
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != f.etag {
		s3Error(w, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
		return
	}
	first, last := int64(0), int64(len(f.data))-1
	if rng := r.Header.Get("Range"); rng != "" {
		a, b, _ := strings.Cut(strings.TrimPrefix(rng, "bytes="), "-")
		first, _ = strconv.ParseInt(a, 10, 64)
		if b != "" {
			last, _ = strconv.ParseInt(b, 10, 64)
		}
		last = min(last, int64(len(f.data))-1)
		if first >= int64(len(f.data)) {
			s3Error(w, 416, "InvalidRange", "The requested range is not satisfiable")
			return
		}
	}
	body := f.data[first : last+1]
	w.Header().Set("ETag", f.etag)
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(f.data)))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusPartialContent)
	if f.cutAfter != nil {
		if k := f.cutAfter(n); k >= 0 && k < len(body) {
			w.Write(body[:k])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // drop the connection mid-body
		}
	}
	w.Write(body)
}

func (f *fakeS3) gets() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*http.Request
	for _, r := range f.requests {
		if r.Method == http.MethodGet {
			out = append(out, r)
		}
	}
	return out
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><Key>data/obj</Key><RequestId>R1</RequestId></Error>`, code, msg)
}

// openFake starts f and returns a Bucket over s3://bkt/data/.
func openFake(t *testing.T, f *fakeS3, opts storage.S3Options) *storage.Bucket {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")}
	opts.Client = storage.NewS3Client(cfg, srv.URL, true)
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 5 * time.Millisecond
	}
	b, err := storage.OpenS3("bkt", "data", &opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readAll(ctx context.Context, b *storage.Bucket, key, etag string, offset, length int64) ([]byte, error) {
	r, err := b.NewRangeReader(ctx, key, etag, offset, length)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func testData(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i/251)
	}
	return p
}

func TestS3ResumesDroppedBody(t *testing.T) {
	data := testData(100_000)
	f := &fakeS3{data: data, etag: `"v1"`,
		// The first three GETs drop after 10000 bytes each; then all is sent.
		cutAfter: func(n int) int {
			if n <= 3 {
				return 10_000
			}
			return -1
		}}
	b := openFake(t, f, storage.S3Options{})
	for _, c := range []struct {
		offset, length int64
		pin            string
	}{{0, -1, ""}, {5000, 60_000, `"v1"`}} {
		f.mu.Lock()
		f.requests = nil
		f.mu.Unlock()
		if c.offset != 0 {
			f.cutAfter = nil
		}
		got, err := readAll(t.Context(), b, "obj", c.pin, c.offset, c.length)
		if err != nil {
			t.Fatalf("read [%d,+%d): %v", c.offset, c.length, err)
		}
		end := int64(len(data))
		if c.length >= 0 {
			end = c.offset + c.length
		}
		if !bytes.Equal(got, data[c.offset:end]) {
			t.Fatalf("read [%d,+%d): got %d bytes, want %d identical", c.offset, c.length, len(got), end-c.offset)
		}
		gets := f.gets()
		if c.offset == 0 {
			// Each retry continues from the last byte received, pinned to
			// the ETag of the first response.
			want := []struct{ rng, ifMatch string }{
				{"bytes=0-", ""},
				{"bytes=10000-99999", `"v1"`},
				{"bytes=20000-99999", `"v1"`},
				{"bytes=30000-99999", `"v1"`},
			}
			if len(gets) != len(want) {
				t.Fatalf("%d GETs, want %d", len(gets), len(want))
			}
			for i, w := range want {
				if r := gets[i]; r.Header.Get("Range") != w.rng || r.Header.Get("If-Match") != w.ifMatch {
					t.Errorf("GET %d: Range %q If-Match %q, want %q %q", i+1, r.Header.Get("Range"), r.Header.Get("If-Match"), w.rng, w.ifMatch)
				}
			}
		} else if len(gets) != 1 || gets[0].Header.Get("Range") != "bytes=5000-64999" || gets[0].Header.Get("If-Match") != `"v1"` {
			t.Errorf("pinned range read: %d GETs, first Range %q", len(gets), gets[0].Header.Get("Range"))
		}
	}
}

func TestS3ResumeIsBounded(t *testing.T) {
	data := testData(50_000)
	f := &fakeS3{data: data, etag: `"v1"`, cutAfter: func(n int) int {
		if n == 1 {
			return 1000
		}
		return 0 // every reconnection fails without progress
	}}
	b := openFake(t, f, storage.S3Options{ReadResumes: 3})
	got, err := readAll(t.Context(), b, "obj", "", 0, -1)
	if err == nil {
		t.Fatal("read succeeded although every reconnection failed")
	}
	if len(got) != 1000 || !bytes.Equal(got, data[:1000]) {
		t.Errorf("got %d bytes before the error, want the 1000 sent", len(got))
	}
	if !strings.Contains(err.Error(), "s3://bkt/data/obj") || !strings.Contains(err.Error(), "at byte 1000") {
		t.Errorf("error %q should name the object and the byte offset", err)
	}
	// The first GET, then 3 reconnections that bring nothing; a failure
	// after the headers is the reader's to handle, not the SDK's retryer.
	if n := len(f.gets()); n != 4 {
		t.Errorf("%d GETs, want 1 + 3 failed reconnections", n)
	}
}

func TestS3ChangedWhileReading(t *testing.T) {
	data := testData(30_000)
	f := &fakeS3{data: data, etag: `"v1"`}
	f.cutAfter = func(n int) int {
		if n == 1 {
			f.etag = `"v2"` // replaced while the first response is on the wire
			return 5000
		}
		return -1
	}
	b := openFake(t, f, storage.S3Options{})
	_, err := readAll(t.Context(), b, "obj", "", 0, -1)
	if !errors.Is(err, storage.ErrChanged) {
		t.Fatalf("read across a replacement: %v, want ErrChanged", err)
	}
	if want := "object s3://bkt/data/obj changed while reading"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to contain %q", err, want)
	}
	// Pinned to an old ETag from the start: NewRangeReader fails.
	_, err = b.NewRangeReader(t.Context(), "obj", `"v1"`, 0, -1)
	if !errors.Is(err, storage.ErrChanged) {
		t.Errorf("open pinned to a replaced ETag: %v, want ErrChanged", err)
	}
}

func TestS3Retries(t *testing.T) {
	data := testData(1000)
	for _, c := range []struct {
		name     string
		status   int
		code     string
		failures int // how many requests fail before success
		retries  int // S3Options.MaxRetries
		wantGETs int
		wantErr  error // nil: success
		wantMsg  string
	}{
		{"SlowDown is retried", 503, "SlowDown", 4, 0, 5, nil, ""},
		{"500 is retried", 500, "InternalError", 2, 0, 3, nil, ""},
		{"retries are bounded", 503, "SlowDown", 100, 2, 3, errors.New("any"), "s3://bkt/data/obj"},
		{"no retries when negative", 500, "InternalError", 1, -1, 1, errors.New("any"), "s3://bkt/data/obj"},
		{"AccessDenied is not retried", 403, "AccessDenied", 100, 0, 1, fs.ErrPermission, "access denied to s3://bkt/data/obj (GetObject)"},
		{"expired token is access denied", 403, "ExpiredToken", 100, 0, 1, fs.ErrPermission, "access denied to s3://bkt/data/obj (GetObject: ExpiredToken)"},
		{"NoSuchKey is not retried", 404, "NoSuchKey", 100, 0, 1, fs.ErrNotExist, "object s3://bkt/data/obj does not exist (GetObject)"},
		{"NoSuchBucket is not retried", 404, "NoSuchBucket", 100, 0, 1, errors.New("any"), "bucket of s3://bkt/data/obj does not exist (GetObject)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeS3{data: data, etag: `"v1"`}
			f.respond = func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n <= c.failures {
					s3Error(w, c.status, c.code, "scripted failure")
					return true
				}
				return false
			}
			b := openFake(t, f, storage.S3Options{MaxRetries: c.retries})
			got, err := readAll(t.Context(), b, "obj", "", 0, -1)
			if n := len(f.gets()); n != c.wantGETs {
				t.Errorf("%d GETs, want %d", n, c.wantGETs)
			}
			if c.wantErr == nil {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read: %d bytes, %v; want the data", len(got), err)
				}
				return
			}
			if err == nil {
				t.Fatal("read succeeded, want an error")
			}
			if c.wantErr.Error() != "any" && !errors.Is(err, c.wantErr) {
				t.Errorf("error %v does not wrap %v", err, c.wantErr)
			}
			if c.code == "NoSuchBucket" && errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing bucket %v wraps fs.ErrNotExist; it is a configuration error", err)
			}
			if !strings.Contains(err.Error(), c.wantMsg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line containing %q", err, c.wantMsg)
			}
		})
	}
}

func TestS3StatAndDeleteErrors(t *testing.T) {
	f := &fakeS3{respond: func(w http.ResponseWriter, r *http.Request, n int) bool {
		switch {
		case r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, "/denied"):
			w.WriteHeader(403) // HEAD errors have no body
		case r.Method == http.MethodHead:
			w.WriteHeader(404)
		case r.Method == http.MethodDelete && strings.HasSuffix(r.URL.Path, "/gone"):
			w.WriteHeader(204) // S3 deletes missing keys silently
		case r.Method == http.MethodDelete:
			s3Error(w, 403, "AccessDenied", "Access Denied")
		default:
			return false
		}
		return true
	}}
	b := openFake(t, f, storage.S3Options{})
	_, err := b.Stat(t.Context(), "missing")
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "object s3://bkt/data/missing does not exist (HeadObject)" {
		t.Errorf("Stat(missing): %v", err)
	}
	_, err = b.Stat(t.Context(), "denied")
	if !errors.Is(err, fs.ErrPermission) || err.Error() != "access denied to s3://bkt/data/denied (HeadObject)" {
		t.Errorf("Stat(denied): %v", err)
	}
	if err := b.Delete(t.Context(), "gone"); err != nil {
		t.Errorf("Delete(gone): %v", err)
	}
	err = b.Delete(t.Context(), "locked")
	if !errors.Is(err, fs.ErrPermission) || err.Error() != "access denied to s3://bkt/data/locked (DeleteObject)" {
		t.Errorf("Delete(locked): %v", err)
	}
}

func TestOpenS3Options(t *testing.T) {
	client := storage.NewS3Client(aws.Config{}, "http://127.0.0.1:1", true)
	for _, c := range []struct {
		bucket, prefix string
		opts           *storage.S3Options
		want           string // String(), or "" for an error
	}{
		{"bkt", "", &storage.S3Options{Client: client}, "s3://bkt/"},
		{"bkt", "out/run1", &storage.S3Options{Client: client}, "s3://bkt/out/run1/"},
		{"bkt", "out/", &storage.S3Options{Client: client, PartSize: storage.MinPartSize}, "s3://bkt/out/"},
		{"bkt", "", nil, ""},
		{"bkt", "", &storage.S3Options{}, ""},
		{"Bad_Bucket", "", &storage.S3Options{Client: client}, ""},
		{"bkt", "", &storage.S3Options{Client: client, PartSize: 1 << 20}, ""},
		{"bkt", "/abs", &storage.S3Options{Client: client}, ""},
	} {
		b, err := storage.OpenS3(c.bucket, c.prefix, c.opts)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("OpenS3(%q, %q, %+v): no error", c.bucket, c.prefix, c.opts)
		case c.want != "" && err != nil:
			t.Errorf("OpenS3(%q, %q): %v", c.bucket, c.prefix, err)
		case c.want != "" && b.String() != c.want:
			t.Errorf("OpenS3(%q, %q).String() = %q, want %q", c.bucket, c.prefix, b.String(), c.want)
		}
	}
}

func openMinIO(t *testing.T, client *s3.Client, bucket, prefix string) *storage.Bucket {
	t.Helper()
	b, err := storage.OpenS3(bucket, prefix, &storage.S3Options{Client: client, PartSize: storage.MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMinIOMultipart(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	client := env.RootClient(t)
	b := openMinIO(t, client, env.Bucket, prefix)

	// Exactly one part goes out as a single PutObject (a plain MD5 ETag);
	// one byte more takes a two-part upload (ETag "...-2").
	for _, c := range []struct {
		size     int
		etagTail string
	}{{storage.MinPartSize, ""}, {storage.MinPartSize + 1, "-2"}, {storagetest.LargeSize, "-3"}} {
		key := fmt.Sprintf("mp-%d", c.size)
		storagetest.Write(t, b, key, testData(c.size))
		info, err := b.Stat(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		tail := ""
		if i := strings.LastIndexByte(strings.Trim(info.ETag, `"`), '-'); i >= 0 {
			tail = strings.Trim(info.ETag, `"`)[i:]
		}
		if tail != c.etagTail || info.Size != int64(c.size) {
			t.Errorf("%d bytes: ETag %s, size %d; want ETag ending %q", c.size, info.ETag, info.Size, c.etagTail)
		}
		if got := storagetest.Read(t, b, key, 0, -1); !bytes.Equal(got, testData(c.size)) {
			t.Errorf("%d bytes: read back differs", c.size)
		}
	}

	// A cancelled write aborts its upload: it is listed while in progress
	// and gone after Close.
	ctx, cancel := context.WithCancel(t.Context())
	w, err := b.NewWriter(ctx, "cancelled")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(testData(storage.MinPartSize + 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err != nil { // sends part 1
		t.Fatal(err)
	}
	if n := countUploads(t, client, env.Bucket, prefix+"cancelled"); n != 1 {
		t.Fatalf("%d uploads in progress, want 1", n)
	}
	cancel()
	if err := w.Close(); !errors.Is(err, context.Canceled) {
		t.Errorf("Close after cancel: %v", err)
	}
	assertNoUploads(t, client, env.Bucket, prefix+"cancelled")
	if _, err := b.Stat(t.Context(), "cancelled"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(cancelled): %v, want fs.ErrNotExist", err)
	}
}

func TestMinIOAccessDenied(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	userA := env.Client(t, env.UserAKey, env.UserASecret)

	// Product/ is shared: user A may write and read it.
	shared := openMinIO(t, userA, env.Bucket, prefix)
	storagetest.Write(t, shared, "ok", []byte("fine"))
	if got := storagetest.Read(t, shared, "ok", 0, -1); string(got) != "fine" {
		t.Errorf("read %q", got)
	}

	// UserB/ belongs to user B.
	root := openMinIO(t, env.RootClient(t), env.Bucket, "UserB/"+prefix)
	storagetest.Write(t, root, "secret.csv", []byte("b's data"))
	t.Cleanup(func() { root.Delete(context.Background(), "secret.csv") })
	other := openMinIO(t, userA, env.Bucket, "UserB/"+prefix)
	url := "s3://" + env.Bucket + "/UserB/" + prefix + "secret.csv"
	check := func(op string, err error) {
		t.Helper()
		want := "access denied to " + url + " (" + op + ")"
		if !errors.Is(err, fs.ErrPermission) || err.Error() != want {
			t.Errorf("%s: %v; want %q wrapping fs.ErrPermission", op, err, want)
		}
	}
	_, err := other.NewRangeReader(t.Context(), "secret.csv", "", 0, -1)
	check("GetObject", err)
	_, err = other.Stat(t.Context(), "secret.csv")
	check("HeadObject", err)
	w, err := other.NewWriter(t.Context(), "secret.csv")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("overwrite"))
	check("PutObject", w.Close())
	check("DeleteObject", other.Delete(t.Context(), "secret.csv"))
	if _, err := other.List(t.Context(), ""); !errors.Is(err, fs.ErrPermission) || !strings.HasPrefix(err.Error(), "access denied to s3://"+env.Bucket+"/UserB/") {
		t.Errorf("List: %v", err)
	}
	if got := storagetest.Read(t, root, "secret.csv", 0, -1); string(got) != "b's data" {
		t.Errorf("user B's object now holds %q", got)
	}

	// A multipart upload denied at its first part leaves nothing.
	w, err = other.NewWriter(t.Context(), "big.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(testData(storage.MinPartSize + 1))
	if err == nil {
		err = w.Close()
	} else {
		w.Close()
	}
	check2 := "access denied to s3://" + env.Bucket + "/UserB/" + prefix + "big.csv (CreateMultipartUpload)"
	if err == nil || err.Error() != check2 {
		t.Errorf("denied multipart write: %v, want %q", err, check2)
	}
}

func TestMinIOMissingBucket(t *testing.T) {
	env, _ := storagetest.MinIO(t)
	b := openMinIO(t, env.RootClient(t), "no-such-bucket-here", "")
	_, err := b.List(t.Context(), "")
	if err == nil || err.Error() != "bucket of s3://no-such-bucket-here/ does not exist (ListObjectsV2)" {
		t.Errorf("List of a missing bucket: %v", err)
	}
}

// TestMinIOResumeThroughProxy reads through a proxy that drops connections
// mid-body, against the real server, and replaces the object mid-read.
func TestMinIOResumeThroughProxy(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	var cutAt atomic.Int64 // body bytes each GET may send; 0: no limit
	proxy := storagetest.NewFaultProxy(t, env.Endpoint, env.Bucket, func(r storagetest.S3Request) storagetest.Fault {
		if r.Op == "GetObject" {
			return storagetest.Fault{CutAfter: cutAt.Load()}
		}
		return storagetest.Fault{}
	})
	// The proxy keeps the client's Host header, so signatures still verify.
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(env.RootUser, env.RootPassword, "")}
	viaProxy := openMinIO(t, storage.NewS3Client(cfg, proxy.URL, true), env.Bucket, prefix)
	direct := openMinIO(t, env.RootClient(t), env.Bucket, prefix)

	data := testData(1 << 20)
	storagetest.Write(t, direct, "input.csv", data)
	cutAt.Store(300_000)
	got, err := readAll(t.Context(), viaProxy, "input.csv", "", 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through a dropping proxy: %d bytes, %v", len(got), err)
	}
	if n := proxy.Seen("GetObject"); n != 4 {
		t.Errorf("%d GETs for 1 MiB cut every 300000 bytes, want 4", n)
	}

	// Replace the object between two reconnections: the reader notices.
	r, err := viaProxy.NewRangeReader(t.Context(), "input.csv", "", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 200_000)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	storagetest.Write(t, direct, "input.csv", testData(1<<20+1))
	_, err = io.ReadAll(r)
	if !errors.Is(err, storage.ErrChanged) || !strings.Contains(err.Error(), "changed while reading") {
		t.Errorf("read across a replacement: %v, want ErrChanged", err)
	}
}
