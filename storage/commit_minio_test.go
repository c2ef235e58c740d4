package storage_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
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

// TestMinIOStagedUpload: a staged part is a multipart upload on its key,
// recorded by a hidden marker object, and the published object names its
// stage in its metadata.
func TestMinIOStagedUpload(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	client := env.RootClient(t)
	b := openMinIO(t, client, env.Bucket, prefix)
	ctx := t.Context()
	s := storagetest.Stage(t, b, "train/part-00004", "job7-a2", []byte("1,2\n"))
	if s.UploadID == "" || len(s.Parts) != 1 || s.Parts[0].Number != 1 || s.Parts[0].ETag == "" {
		t.Errorf("Staged = %+v, want an upload of one part", s)
	}
	marker, err := client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &env.Bucket, Key: aws.String(prefix + "train/.part-00004.stage-job7-a2")})
	if err != nil {
		t.Fatalf("marker: %v", err)
	}
	var m map[string]string
	err = json.NewDecoder(marker.Body).Decode(&m)
	marker.Body.Close()
	if err != nil || m["upload_id"] != s.UploadID || m["key"] != "train/part-00004" || m["stage"] != "job7-a2" {
		t.Errorf("marker holds %v (%v), want the upload %s", m, err, s.UploadID)
	}
	if got := listNames(t, b, ""); len(got) != 0 {
		t.Errorf("List shows %q, want nothing (markers are hidden)", got)
	}
	if err := b.Publish(ctx, s); err != nil {
		t.Fatal(err)
	}
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &env.Bucket, Key: aws.String(prefix + "train/part-00004")})
	if err != nil || head.Metadata["shardprep-stage"] != "job7-a2" {
		t.Errorf("published object's metadata: %v, %v; want shardprep-stage job7-a2", head.Metadata, err)
	}
	if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &env.Bucket, Key: aws.String(prefix + "train/.part-00004.stage-job7-a2")}); err == nil {
		t.Error("marker left after Publish")
	}
	// An object named like a marker that is not one is neither listed as
	// a stage nor deleted.
	storagetest.Write(t, b, "train/.notes.stage-1", []byte("user data"))
	if n, err := b.DiscardStages(ctx, "", nil); err != nil || n != 0 {
		t.Errorf("DiscardStages = %d, %v; want 0", n, err)
	}
	if got := storagetest.Read(t, b, "train/.notes.stage-1", 0, -1); string(got) != "user data" {
		t.Errorf("read %q", got)
	}
}

func listNames(t *testing.T, b *storage.Bucket, prefix string) []string {
	t.Helper()
	infos, err := b.List(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range infos {
		out = append(out, o.Key)
	}
	return out
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

// TestMinIOPublishRetried: a Publish whose CompleteMultipartUpload answer
// is lost is retried, finds the upload gone and the object published by
// its stage, and succeeds; publishing again fails.
func TestMinIOPublishRetried(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	b, p := openFaulty(t, env, prefix)
	ctx := t.Context()
	s := storagetest.Stage(t, b, "part-00000", "job1-a1", []byte("data"))
	complete := func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Query().Has("uploadId") }
	p.fault = once(complete, true, http.StatusInternalServerError, "InternalError")
	if err := b.Publish(ctx, s); err != nil {
		t.Fatalf("Publish whose answer was lost: %v", err)
	}
	if got := storagetest.Read(t, b, "part-00000", 0, -1); string(got) != "data" {
		t.Errorf("read %q", got)
	}
	if err := b.Publish(ctx, s); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Publish: %v, want fs.ErrNotExist", err)
	}
	if got := listNames(t, b, ""); !slices.Equal(got, []string{"part-00000"}) {
		t.Errorf("List = %q", got)
	}
}
