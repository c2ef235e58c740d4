package storage_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

func TestCommitConformanceMinIO(t *testing.T) {
	env, _ := storagetest.MinIO(t)
	client := env.RootClient(t)
	storagetest.RunCommitConformance(t, func(t *testing.T) *storage.Bucket {
		_, prefix := storagetest.MinIO(t)
		return openMinIO(t, client, env.Bucket, prefix)
	}, &storagetest.CommitOptions{Leftovers: func(t *testing.T, b *storage.Bucket, key string) int {
		return openUploads(t, client, b, key)
	}})
}

// openUploads counts the multipart uploads in progress for key of b.
// (MinIO lists the uploads of one exact key only, not of a prefix.)
func openUploads(t *testing.T, client *s3.Client, b *storage.Bucket, key string) int {
	t.Helper()
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(b.String(), "s3://"), "/")
	full := prefix + key
	out, err := client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &full})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	n := 0
	for _, u := range out.Uploads {
		if aws.ToString(u.Key) == full {
			n++
		}
	}
	return n
}

// faultProxy passes requests to MinIO, except that fault may answer one
// with an S3 error, after (forward) or instead of passing it on.
type faultProxy struct {
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	fault func(r *http.Request) (forward bool, status int, code string)
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	forward, status, code := false, 0, ""
	if p.fault != nil {
		forward, status, code = p.fault(r)
	}
	p.mu.Unlock()
	if status == 0 {
		p.proxy.ServeHTTP(w, r)
		return
	}
	if forward {
		p.proxy.ServeHTTP(httptest.NewRecorder(), r) // the answer is lost
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<Error><Code>%s</Code><Message>injected by the test proxy</Message></Error>", code)
}

// openFaulty opens prefix of the MinIO bucket through a faultProxy.
func openFaulty(t *testing.T, env storagetest.MinIOEnv, prefix string) (*storage.Bucket, *faultProxy) {
	t.Helper()
	target, err := url.Parse(env.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	p.proxy.ErrorLog = log.New(io.Discard, "", 0)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	// The proxy keeps the client's Host header, so signatures still verify.
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(env.RootUser, env.RootPassword, "")}
	b, err := storage.OpenS3(env.Bucket, prefix, &storage.S3Options{
		Client: storage.NewS3Client(cfg, srv.URL, true), PartSize: storage.MinPartSize, MaxBackoff: 1})
	if err != nil {
		t.Fatal(err)
	}
	return b, p
}

// once returns a fault for the first request that match accepts.
func once(match func(r *http.Request) bool, forward bool, status int, code string) func(*http.Request) (bool, int, string) {
	done := false
	return func(r *http.Request) (bool, int, string) {
		if done || !match(r) {
			return false, 0, ""
		}
		done = true
		return forward, status, code
	}
}

func conditionalPut(r *http.Request) bool {
	return r.Method == http.MethodPut && r.Header.Get("If-None-Match") == "*"
}

// TestMinIOCreateRetries: a claim whose first answer is lost is retried,
// finds the object, and counts it as its own only if it holds its data; a
// conflict with a concurrent conditional write is retried.
func TestMinIOCreateRetries(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	b, p := openFaulty(t, env, prefix)
	ctx := t.Context()

	p.fault = once(conditionalPut, true, http.StatusInternalServerError, "InternalError")
	if err := b.Create(ctx, "won", []byte("job 1")); err != nil {
		t.Errorf("Create whose answer was lost: %v, want nil", err)
	}
	if got := storagetest.Read(t, b, "won", 0, -1); string(got) != "job 1" {
		t.Errorf("read %q", got)
	}

	p.fault = once(conditionalPut, false, http.StatusInternalServerError, "InternalError")
	if err := b.Create(ctx, "won", []byte("job 2")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("retried Create of a held key: %v, want fs.ErrExist", err)
	}

	p.fault = once(conditionalPut, false, http.StatusConflict, "ConditionalRequestConflict")
	if err := b.Create(ctx, "conflict", []byte("job 3")); err != nil {
		t.Errorf("Create after a conflict: %v, want nil", err)
	}
}
