package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// s3Request is one request as the fault proxy classifies it.
type s3Request struct {
	Op      string // S3 or STS operation: GetObject, PutObject, UploadPart, AssumeRole, ...
	Key     string // object key in the bucket; "" for bucket and STS requests
	N       int    // this request's number among those of its Op, from 1
	Attempt int    // 1 for the first request with this Op, Key, part number and range
}

// fault is what the proxy does to one request. The zero fault forwards it.
type fault struct {
	status int    // answer with this status and S3 error code instead of forwarding
	code   string //
	cut    bool   // forward, then drop the connection halfway through the response body
}

// s3Proxy is a reverse proxy in front of MinIO on loopback that records the
// requests it forwards and injects the faults its rule asks for. The
// requests' Host header is kept, so SigV4 signatures stay valid.
type s3Proxy struct {
	URL    string
	bucket string
	rule   func(s3Request) fault // nil: forward everything

	mu       sync.Mutex
	ops      map[string]int  // requests seen, by Op
	attempts map[string]int  // requests seen, by Op, key, part number and range
	injected map[string]int  // faults injected, by "Op status" or "Op cut"
	tokens   map[string]bool // X-Amz-Security-Token values seen
	signers  map[string]bool // access key IDs that signed requests
	uploads  map[string]bool // keys CreateMultipartUpload was asked for
}

type cutKey struct{}

func newS3Proxy(t testing.TB, endpoint, bucket string, rule func(s3Request) fault) *s3Proxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &s3Proxy{
		bucket: bucket, rule: rule,
		ops: map[string]int{}, attempts: map[string]int{}, injected: map[string]int{},
		tokens: map[string]bool{}, signers: map[string]bool{}, uploads: map[string]bool{},
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Context().Value(cutKey{}) != nil && resp.ContentLength >= 2 {
			resp.Body = &cutBody{rc: resp.Body, left: resp.ContentLength / 2}
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := p.classify(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var f fault
		if p.rule != nil {
			f = p.rule(req)
		}
		switch {
		case f.status != 0:
			p.count(req.Op, fmt.Sprint(f.status))
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(f.status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
				`<Error><Code>%s</Code><Message>injected by the test proxy</Message><Key>%s</Key><RequestId>proxy%d</RequestId></Error>`,
				f.code, req.Key, req.N)
			return
		case f.cut:
			p.count(req.Op, "cut")
			r = r.WithContext(context.WithValue(r.Context(), cutKey{}, true))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// cutBody ends with an error after left bytes, which makes the
// ReverseProxy abort the connection: the client sees a body cut short.
type cutBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("connection dropped by the test proxy")
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.rc.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.rc.Close() }

// classify names the operation of r and records it.
func (p *s3Proxy) classify(r *http.Request) (s3Request, error) {
	q := r.URL.Query()
	var req s3Request
	key, isObject := strings.CutPrefix(r.URL.Path, "/"+p.bucket+"/")
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodPost:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return req, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return req, err
		}
		req.Op = form.Get("Action")
	case !isObject || key == "":
		switch {
		case q.Has("list-type"):
			req.Op = "ListObjectsV2"
		case q.Has("uploads"):
			req.Op = "ListMultipartUploads"
		default:
			req.Op = "Bucket" + r.Method
		}
	default:
		req.Key = key
		switch r.Method {
		case http.MethodGet:
			req.Op = "GetObject"
		case http.MethodHead:
			req.Op = "HeadObject"
		case http.MethodPut:
			req.Op = "PutObject"
			if q.Has("partNumber") {
				req.Op = "UploadPart"
			}
		case http.MethodPost:
			req.Op = "CompleteMultipartUpload"
			if q.Has("uploads") {
				req.Op = "CreateMultipartUpload"
			}
		case http.MethodDelete:
			req.Op = "DeleteObject"
			if q.Has("uploadId") {
				req.Op = "AbortMultipartUpload"
			}
		default:
			req.Op = "Object" + r.Method
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops[req.Op]++
	req.N = p.ops[req.Op]
	sig := req.Op + " " + req.Key + " " + q.Get("partNumber") + " " + r.Header.Get("Range")
	p.attempts[sig]++
	req.Attempt = p.attempts[sig]
	if req.Op == "CreateMultipartUpload" {
		p.uploads[req.Key] = true
	}
	if tok := r.Header.Get("X-Amz-Security-Token"); tok != "" {
		p.tokens[tok] = true
	}
	if _, rest, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		id, _, _ := strings.Cut(rest, "/")
		p.signers[id] = true
	}
	return req, nil
}

func (p *s3Proxy) count(op, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.injected[op+" "+what]++
}

// seen returns how many requests of op were made.
func (p *s3Proxy) seen(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ops[op]
}

// faults returns how many faults of a kind ("GetObject cut", "PutObject 503") were injected.
func (p *s3Proxy) faults(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[kind]
}

// sessionTokens returns the session tokens requests were signed with.
func (p *s3Proxy) sessionTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for tok := range p.tokens {
		out = append(out, tok)
	}
	return out
}

// uploadKeys returns the keys multipart uploads were started for.
func (p *s3Proxy) uploadKeys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k := range p.uploads {
		out = append(out, k)
	}
	return out
}

// reset forgets what was seen and injected.
func (p *s3Proxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops, p.attempts, p.injected = map[string]int{}, map[string]int{}, map[string]int{}
}

// genInput writes rows generated rows to a local file and uploads it to key.
func genInput(t testing.TB, e *s3Env, rows int, key string) (local string, size int64) {
	t.Helper()
	local = filepath.Join(t.TempDir(), "gen.csv")
	if _, stderr, err := e.run(context.Background(), nil, "gen", "--rows", fmt.Sprint(rows), "--out", local, "--seed", "5"); err != nil {
		t.Fatalf("gen: %v\n%s", err, stderr)
	}
	return local, e.upload(t, key, local)
}

// TestS3FaultsOutputIdentical runs a job of a million generated rows,
// large enough for multipart uploads with 5 MiB parts, once cleanly and
// once through dropped GET connections and 503 SlowDown answers to PUTs
// and UploadParts: the job completes and its output is byte for byte the
// clean run's.
func TestS3FaultsOutputIdentical(t *testing.T) {
	e := newS3Env(t)
	rows := 1000000
	if testing.Short() {
		rows = 300000
	}
	in := e.area("Product") + "gen/"
	genInput(t, e, rows, in+"data.csv")

	var faulty bool
	var mu sync.Mutex
	proxy := newS3Proxy(t, e.Endpoint, e.Bucket, func(r s3Request) fault {
		mu.Lock()
		defer mu.Unlock()
		if !faulty {
			return fault{}
		}
		switch {
		case r.Op == "GetObject" && strings.HasSuffix(r.Key, ".csv") && r.N%2 == 1:
			return fault{cut: true}
		case (r.Op == "PutObject" || r.Op == "UploadPart") && r.Attempt == 1 && r.N%2 == 1:
			return fault{status: http.StatusServiceUnavailable, code: "SlowDown"}
		}
		return fault{}
	})
	job := func(out string) (string, error) {
		stdout, stderr, err := e.run(context.Background(), e.userEnv("a"), "run",
			"--input", e.url(in), "--output", e.url(out), "--seed", "11",
			"--credentials", "grants", "--grants-file", e.grants, "--s3-endpoint", proxy.URL,
			"--s3-part-size", "5MiB", "--split-size", "16MiB", "--workers", "2", "--quiet", "--log-format", "json")
		return stdout + stderr, err
	}

	clean := e.area("Product") + "clean/"
	if log, err := job(clean); err != nil {
		t.Fatalf("clean run: %v\n%s", err, log)
	}
	if n := proxy.seen("UploadPart"); n < 4 {
		t.Fatalf("clean run made %d UploadPart requests; the output is too small to test multipart uploads", n)
	}

	mu.Lock()
	faulty = true
	mu.Unlock()
	proxy.reset()
	dirty := e.area("Product") + "faults/"
	start := time.Now()
	log, err := job(dirty)
	if err != nil {
		t.Fatalf("run with transient faults: %v\n%s", err, log)
	}
	t.Logf("faulty run: %v; injected %d cut GETs, %d SlowDown PutObject, %d SlowDown UploadPart; %d GetObject, %d UploadPart requests",
		time.Since(start).Round(time.Millisecond), proxy.faults("GetObject cut"), proxy.faults("PutObject 503"), proxy.faults("UploadPart 503"),
		proxy.seen("GetObject"), proxy.seen("UploadPart"))
	for _, kind := range []string{"GetObject cut", "PutObject 503", "UploadPart 503"} {
		if proxy.faults(kind) == 0 {
			t.Errorf("no %q fault was injected; the test proves nothing about it", kind)
		}
	}

	want, got := e.keys(t, clean), e.keys(t, dirty)
	if strings.Join(trimAll(want, clean), " ") != strings.Join(trimAll(got, dirty), " ") {
		t.Fatalf("the runs wrote different keys:\nclean  %v\nfaults %v", trimAll(want, clean), trimAll(got, dirty))
	}
	parts := 0
	for _, k := range trimAll(want, clean) {
		if strings.HasSuffix(k, "manifest.json") {
			continue // holds timings
		}
		if !bytes.Equal(e.get(t, clean+k), e.get(t, dirty+k)) {
			t.Errorf("%s differs between the clean run and the run with faults", k)
		}
		if strings.Contains(k, "part-") {
			parts++
		}
	}
	m := e.manifest(t, dirty)
	if m.Totals.RowsIn != int64(rows) || parts != 2*len(m.Parts) {
		t.Errorf("faulty run: %d rows in (want %d), %d part objects for %d splits", m.Totals.RowsIn, rows, parts, len(m.Parts))
	}
}

func trimAll(keys []string, prefix string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, prefix)
	}
	return out
}

// TestS3PersistentFailureLeavesNothing: when the output cannot be written
// the job fails with a clear error and leaves no _SUCCESS, no objects and
// no open multipart uploads behind; the same when the job is cancelled
// mid-upload.
func TestS3PersistentFailureLeavesNothing(t *testing.T) {
	e := newS3Env(t)
	in := e.area("Product") + "gen/"
	genInput(t, e, 400000, in+"data.csv")

	// The check for open uploads must see one that is open.
	ctx := context.Background()
	probe := e.area("Product") + "probe/part-00000"
	up, err := e.root.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(e.Bucket), Key: aws.String(probe)})
	if err != nil {
		t.Fatal(err)
	}
	if open := e.openUploads(t, []string{probe}); len(open) != 1 {
		t.Fatalf("openUploads found %v, want the probe's upload", open)
	}
	if _, err := e.root.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(e.Bucket), Key: aws.String(probe), UploadId: up.UploadId}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		workers string
		rule    func(out string, cancel func()) func(s3Request) fault
		want    []string // in the error line
	}{
		{"500 on every PUT", "2", func(out string, _ func()) func(s3Request) fault {
			return func(r s3Request) fault {
				if (r.Op == "PutObject" || r.Op == "UploadPart") && strings.HasPrefix(r.Key, out) {
					return fault{status: http.StatusInternalServerError, code: "InternalError"}
				}
				return fault{}
			}
		}, []string{"InternalError", "exceeded maximum number of attempts", "nothing was committed"}},
		{"AccessDenied on UploadPart", "1", func(out string, _ func()) func(s3Request) fault {
			// The first split's parts are written (one worker) before the
			// second fails; the job must remove them.
			return func(r s3Request) fault {
				if r.Op == "UploadPart" && r.Key == out+"train/part-00001" {
					return fault{status: http.StatusForbidden, code: "AccessDenied"}
				}
				return fault{}
			}
		}, []string{"access denied to " + e.url(""), "UploadPart", "nothing was committed"}},
		{"cancelled during uploads", "2", func(out string, cancel func()) func(s3Request) fault {
			return func(r s3Request) fault {
				if r.Op == "UploadPart" && r.N == 3 {
					cancel()
				}
				return fault{}
			}
		}, []string{"interrupted", "nothing was committed"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := e.area("Product") + fmt.Sprintf("fail%d/", i)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			proxy := newS3Proxy(t, e.Endpoint, e.Bucket, c.rule(out, cancel))
			stdout, stderr, err := e.run(ctx, e.userEnv("a"), "run",
				"--input", e.url(in), "--output", e.url(out), "--seed", "3",
				"--credentials", "grants", "--grants-file", e.grants, "--s3-endpoint", proxy.URL,
				"--s3-part-size", "5MiB", "--split-size", "8MiB", "--workers", c.workers, "--s3-max-retries", "2",
				"--quiet", "--log-format", "json")
			if err == nil {
				t.Fatalf("the job succeeded:\n%s", stdout)
			}
			var line bytes.Buffer
			code := exitCode(err, &line)
			if code == 0 || strings.Count(line.String(), "\n") != 1 {
				t.Errorf("exit %d, error output %q: want non-zero and one line", code, line.String())
			}
			for _, w := range c.want {
				if !strings.Contains(line.String(), w) {
					t.Errorf("error line lacks %q:\n%s", w, line.String())
				}
			}
			t.Logf("error line: %s", strings.TrimSpace(line.String()))
			if c.name == "AccessDenied on UploadPart" && (proxy.seen("PutObject") == 0 || proxy.seen("CompleteMultipartUpload") == 0) {
				t.Errorf("%d PutObject, %d CompleteMultipartUpload: no part was written before the failure, so their removal is untested",
					proxy.seen("PutObject"), proxy.seen("CompleteMultipartUpload"))
			}
			if left := e.keys(t, out); len(left) != 0 {
				t.Errorf("the failed job left %d objects under its output: %v\nstderr:\n%s", len(left), left, stderr)
			}
			creates, aborts := proxy.seen("CreateMultipartUpload"), proxy.seen("AbortMultipartUpload")
			if creates == 0 {
				t.Fatalf("no multipart upload was started; the test proves nothing about aborting them")
			}
			if aborts < creates-proxy.seen("CompleteMultipartUpload") {
				t.Errorf("%d multipart uploads started, %d completed, only %d aborted", creates, proxy.seen("CompleteMultipartUpload"), aborts)
			}
			keys := proxy.uploadKeys()
			for _, f := range []string{"train", "validation", "_rejected"} {
				for i := range e.plannedSplits(t, in, 8<<20) + 2 {
					keys = append(keys, out+fmt.Sprintf("%s/part-%05d", f, i))
				}
			}
			if open := e.openUploads(t, keys); len(open) != 0 {
				t.Errorf("multipart uploads left open: %v", open)
			}
		})
	}
}

// plannedSplits is an upper bound of the splits of a job over the objects
// under in with the given split size.
func (e *s3Env) plannedSplits(t testing.TB, in string, splitSize int64) int {
	t.Helper()
	n := 0
	for _, info := range e.list(t, in) {
		n += int((aws.ToInt64(info.Size) + splitSize - 1) / splitSize)
	}
	return n
}

// openUploads lists the multipart uploads in progress for the given keys
// (MinIO's ListMultipartUploads matches its prefix only as an exact key).
func (e *s3Env) openUploads(t testing.TB, keys []string) []string {
	t.Helper()
	ctx := context.Background()
	var open []string
	for _, k := range keys {
		res, err := e.root.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(e.Bucket), Prefix: aws.String(k)})
		if err != nil {
			t.Fatalf("ListMultipartUploads %s: %v", k, err)
		}
		for _, u := range res.Uploads {
			open = append(open, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
		}
	}
	return open
}
