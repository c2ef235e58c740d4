package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

// uploadsAtOnce is how many parts a Bucket uploads at once (the storage
// package's limit).
const uploadsAtOnce = 4

// guard is how long a test waits for something that must happen before it
// gives up on it: a bound against hanging, never a measure of speed.
const guard = time.Minute

// proxied returns a Bucket over prefix of the test MinIO that sends its
// requests through a fault proxy applying rule, with parts of MinPartSize,
// and the proxy.
func proxied(t *testing.T, env storagetest.MinIOEnv, prefix string, rule func(storagetest.S3Request) storagetest.Fault) (*storage.Bucket, *storagetest.FaultProxy) {
	t.Helper()
	proxy := storagetest.NewFaultProxy(t, env.Endpoint, env.Bucket, rule)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(env.RootUser, env.RootPassword, "")}
	b, err := storage.OpenS3(env.Bucket, prefix, &storage.S3Options{
		Client: storage.NewS3Client(cfg, proxy.URL, true), PartSize: storage.MinPartSize, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b, proxy
}

// gateAt returns a channel closed once n requests have called arrive, and
// arrive, which waits for that (or for guard).
func gateAt(n int32) (open <-chan struct{}, arrive func()) {
	ch := make(chan struct{})
	var count atomic.Int32
	var once sync.Once
	return ch, func() {
		if count.Add(1) == n {
			once.Do(func() { close(ch) })
		}
		select {
		case <-ch:
		case <-time.After(guard):
		}
	}
}

// writeObject writes data to key, staged (then published) or not, and
// returns the error of the write.
func writeObject(ctx context.Context, b *storage.Bucket, key string, staged bool, data []byte) error {
	if !staged {
		w, err := b.NewWriter(ctx, key)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	}
	w, err := b.NewStagedWriter(ctx, key, "run1-lease1")
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return b.Publish(ctx, w.Staged())
}

// TestMinIOPartsUploadAtOnce: the parts of an object upload while the
// next ones fill, as many at once as the Bucket allows and no more, and
// the object holds them in order.
func TestMinIOPartsUploadAtOnce(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%v", staged), func(t *testing.T) {
			// The first parts are held until as many as allowed are in
			// flight together: a writer that sent one part at a time
			// would wait here for the guard, and fail below.
			full, arrive := gateAt(uploadsAtOnce)
			b, proxy := proxied(t, env, prefix, func(r storagetest.S3Request) storagetest.Fault {
				if r.Op == "UploadPart" {
					arrive()
				}
				return storagetest.Fault{}
			})
			data := testData(5*storage.MinPartSize + 1000) // 6 parts
			key := fmt.Sprintf("at-once-%v", staged)
			if err := writeObject(t.Context(), b, key, staged, data); err != nil {
				t.Fatal(err)
			}
			select {
			case <-full:
			default:
				t.Errorf("never %d parts in flight at once", uploadsAtOnce)
			}
			if n := proxy.MostAtOnce("UploadPart"); n != uploadsAtOnce {
				t.Errorf("at most %d parts in flight at once, want %d", n, uploadsAtOnce)
			}
			if got := storagetest.Read(t, b, key, 0, -1); !bytes.Equal(got, data) {
				t.Errorf("the object differs from what was written (%d bytes, want %d)", len(got), len(data))
			}
			info, err := b.Stat(t.Context(), key)
			if err != nil || !strings.HasSuffix(strings.Trim(info.ETag, `"`), "-6") {
				t.Errorf("Stat = %+v, %v; want an ETag of 6 parts", info, err)
			}
		})
	}
}

// TestMinIOFailedPartAbortsUpload: a part that fails while others are in
// flight fails the write, and leaves no upload, object or stage behind.
func TestMinIOFailedPartAbortsUpload(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	client := env.RootClient(t)
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%v", staged), func(t *testing.T) {
			failed := make(chan struct{})
			b, proxy := proxied(t, env, prefix, func(r storagetest.S3Request) storagetest.Fault {
				if r.Op != "UploadPart" {
					return storagetest.Fault{}
				}
				if r.N == 2 {
					close(failed)
					return storagetest.Fault{Status: 403, Code: "AccessDenied"}
				}
				// The other parts are in flight when the second fails.
				select {
				case <-failed:
				case <-time.After(guard):
				}
				return storagetest.Fault{}
			})
			key := fmt.Sprintf("failed-part-%v", staged)
			err := writeObject(t.Context(), b, key, staged, testData(5*storage.MinPartSize+1000))
			if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "UploadPart") {
				t.Errorf("write with a denied part: %v; want access denied (UploadPart)", err)
			}
			if n := proxy.MostAtOnce("UploadPart"); n < 2 {
				t.Errorf("at most %d parts in flight at once, want several", n)
			}
			assertNoUploads(t, client, env.Bucket, prefix+key)
			if _, err := b.Stat(t.Context(), key); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat: %v, want fs.ErrNotExist", err)
			}
			if got := storagetest.Stages(t, b, ""); len(got) != 0 {
				t.Errorf("stages left: %q", got)
			}
		})
	}
}

// TestMinIOCancelWithPartsInFlight: cancelling a write while its parts are
// on the wire stops them and aborts the upload: ListMultipartUploads
// shows none, and nothing is visible.
func TestMinIOCancelWithPartsInFlight(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	client := env.RootClient(t)
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%v", staged), func(t *testing.T) {
			release := make(chan struct{})
			arrived := make(chan struct{}, 16)
			b, _ := proxied(t, env, prefix, func(r storagetest.S3Request) storagetest.Fault {
				if r.Op == "UploadPart" {
					arrived <- struct{}{}
					select { // held until the test has cancelled
					case <-release:
					case <-time.After(guard):
					}
				}
				return storagetest.Fault{}
			})
			defer close(release)
			key := fmt.Sprintf("cancelled-in-flight-%v", staged)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var w io.WriteCloser
			var err error
			if staged {
				w, err = b.NewStagedWriter(ctx, key, "run1-lease1")
			} else {
				w, err = b.NewWriter(ctx, key)
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(testData(3*storage.MinPartSize + 10)); err != nil { // sends 3 parts
				t.Fatal(err)
			}
			for range 3 {
				select {
				case <-arrived:
				case <-time.After(guard):
					t.Fatal("3 parts were not in flight together")
				}
			}
			if n := countUploads(t, client, env.Bucket, prefix+key); n != 1 {
				t.Fatalf("%d uploads in progress, want 1", n)
			}
			cancel()
			if err := w.Close(); !errors.Is(err, context.Canceled) {
				t.Errorf("Close after cancel: %v, want context.Canceled", err)
			}
			assertNoUploads(t, client, env.Bucket, prefix+key)
			if _, err := b.Stat(t.Context(), key); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat: %v, want fs.ErrNotExist", err)
			}
			if got := storagetest.Stages(t, b, ""); len(got) != 0 {
				t.Errorf("stages left: %q", got)
			}
		})
	}
}

// BenchmarkMinIOWrite writes 64 MiB objects to the test MinIO in 1 MiB
// writes, as a job's part writer does, with parts of MinPartSize (13
// parts, 4 uploading at once). Bytes are the object's.
func BenchmarkMinIOWrite(b *testing.B) {
	env, prefix := storagetest.MinIO(b)
	bkt, err := storage.OpenS3(env.Bucket, prefix, &storage.S3Options{Client: env.RootClient(b), PartSize: storage.MinPartSize})
	if err != nil {
		b.Fatal(err)
	}
	data := testData(64 << 20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w, err := bkt.NewWriter(b.Context(), fmt.Sprintf("bench-%d", i%2))
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := w.Write(data[off : off+1<<20]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMinIORead reads a 64 MiB object from the test MinIO in 1 MiB
// reads, as a job's line reader does. Bytes are the object's.
func BenchmarkMinIORead(b *testing.B) {
	env, prefix := storagetest.MinIO(b)
	bkt, err := storage.OpenS3(env.Bucket, prefix, &storage.S3Options{Client: env.RootClient(b)})
	if err != nil {
		b.Fatal(err)
	}
	storagetest.Write(b, bkt, "bench", testData(64<<20))
	buf := make([]byte, 1<<20)
	b.SetBytes(64 << 20)
	b.ReportAllocs()
	for b.Loop() {
		r, err := bkt.NewRangeReader(b.Context(), "bench", "", 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
