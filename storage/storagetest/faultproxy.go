package storagetest

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
	"strings"
	"sync"
	"testing"
)

// S3Request is one request as a FaultProxy classifies it.
type S3Request struct {
	Op      string // S3 or STS operation: GetObject, PutObject, UploadPart, AssumeRole, ...
	Key     string // object key in the bucket; "" for bucket and STS requests
	N       int    // this request's number among those of its Op, from 1
	Attempt int    // 1 for the first request with this Op, Key, part number and range
	// PayloadHash and CRC32 are the request's X-Amz-Content-Sha256 and
	// X-Amz-Checksum-Crc32 headers.
	PayloadHash string
	CRC32       string
}

// Fault is what a FaultProxy does to one request. The zero Fault forwards
// it untouched.
type Fault struct {
	// Status, when not 0, answers the request with this HTTP status and an
	// S3 error document with Code instead of forwarding it.
	Status int
	Code   string
	// CutHalf forwards the request, then drops the connection halfway
	// through the response body (bodies of 2 bytes or more).
	CutHalf bool
	// CutAfter, when > 0, forwards the request, then drops the connection
	// after this many bytes of the response body.
	CutAfter int64
	// Corrupt forwards the request with the middle byte of its body
	// changed (bodies of 1 byte or more), its headers untouched.
	Corrupt bool
}

// FaultProxy is a reverse proxy in front of an S3 server (MinIO) on
// loopback that records the requests it forwards and injects the faults
// its rule asks for. The requests' Host header is kept, so SigV4
// signatures stay valid: point a client's endpoint at URL.
type FaultProxy struct {
	URL    string
	bucket string
	rule   func(S3Request) Fault

	mu       sync.Mutex
	ops      map[string]int  // requests seen, by Op
	busy     map[string]int  // requests in progress, by Op
	maxBusy  map[string]int  // the most requests in progress at once, by Op
	attempts map[string]int  // requests seen, by Op, key, part number and range
	injected map[string]int  // faults injected, by "Op status" or "Op cut"
	tokens   map[string]bool // X-Amz-Security-Token values seen
	signers  map[string]bool // access key IDs that signed requests
	uploads  map[string]bool // keys CreateMultipartUpload was asked for
}

type cutKey struct{}

// NewFaultProxy starts a FaultProxy for bucket at the server at endpoint,
// stopped when the test ends. rule decides each request's fault; nil
// forwards everything.
func NewFaultProxy(t testing.TB, endpoint, bucket string, rule func(S3Request) Fault) *FaultProxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{bucket: bucket, rule: rule, tokens: map[string]bool{}, signers: map[string]bool{}, uploads: map[string]bool{}}
	p.Reset()
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = func(resp *http.Response) error {
		f, _ := resp.Request.Context().Value(cutKey{}).(Fault)
		switch {
		case f.CutAfter > 0:
			resp.Body = &cutBody{rc: resp.Body, left: f.CutAfter}
		case f.CutHalf && resp.ContentLength >= 2:
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
		defer p.done(req.Op)
		var f Fault
		if p.rule != nil {
			f = p.rule(req)
		}
		switch {
		case f.Status != 0:
			p.count(req.Op, fmt.Sprint(f.Status))
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(f.Status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
				`<Error><Code>%s</Code><Message>injected by the test proxy</Message><Key>%s</Key><RequestId>proxy%d</RequestId></Error>`,
				f.Code, req.Key, req.N)
			return
		case f.CutHalf || f.CutAfter > 0:
			p.count(req.Op, "cut")
			r = r.WithContext(context.WithValue(r.Context(), cutKey{}, f))
		case f.Corrupt && r.ContentLength > 0:
			p.count(req.Op, "corrupt")
			r.Body = &flipBody{rc: r.Body, at: r.ContentLength / 2}
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

// flipBody reads rc with the byte at offset at inverted.
type flipBody struct {
	rc  io.ReadCloser
	at  int64
	off int64
}

func (f *flipBody) Read(b []byte) (int, error) {
	n, err := f.rc.Read(b)
	if i := f.at - f.off; i >= 0 && i < int64(n) {
		b[i] ^= 0xff
	}
	f.off += int64(n)
	return n, err
}

func (f *flipBody) Close() error { return f.rc.Close() }

// classify names the operation of r and records it.
func (p *FaultProxy) classify(r *http.Request) (S3Request, error) {
	var req S3Request
	if r.URL.Path == "/" && r.Method == http.MethodPost { // STS query protocol
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
	} else {
		req.Op, req.Key = p.s3Op(r)
	}
	req.PayloadHash = r.Header.Get("X-Amz-Content-Sha256")
	req.CRC32 = r.Header.Get("X-Amz-Checksum-Crc32")
	p.record(r, &req)
	return req, nil
}

// s3Op names the S3 operation of r and the key it is for.
func (p *FaultProxy) s3Op(r *http.Request) (op, key string) {
	q := r.URL.Query()
	key, isObject := strings.CutPrefix(r.URL.Path, "/"+p.bucket+"/")
	if !isObject || key == "" {
		switch {
		case q.Has("list-type"):
			return "ListObjectsV2", ""
		case q.Has("uploads"):
			return "ListMultipartUploads", ""
		}
		return "Bucket" + r.Method, ""
	}
	switch r.Method {
	case http.MethodGet:
		return "GetObject", key
	case http.MethodHead:
		return "HeadObject", key
	case http.MethodPut:
		if q.Has("partNumber") {
			return "UploadPart", key
		}
		return "PutObject", key
	case http.MethodPost:
		if q.Has("uploads") {
			return "CreateMultipartUpload", key
		}
		return "CompleteMultipartUpload", key
	case http.MethodDelete:
		if q.Has("uploadId") {
			return "AbortMultipartUpload", key
		}
		return "DeleteObject", key
	}
	return "Object" + r.Method, key
}

// record counts req and notes what r was signed with.
func (p *FaultProxy) record(r *http.Request, req *S3Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops[req.Op]++
	req.N = p.ops[req.Op]
	p.busy[req.Op]++
	p.maxBusy[req.Op] = max(p.maxBusy[req.Op], p.busy[req.Op])
	sig := req.Op + " " + req.Key + " " + r.URL.Query().Get("partNumber") + " " + r.Header.Get("Range")
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
}

// done records the end of a request of op.
func (p *FaultProxy) done(op string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.busy[op]--
}

// MostAtOnce returns the most requests of op that were in progress at
// once (from their arrival, the rule's time included, to their answer).
func (p *FaultProxy) MostAtOnce(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxBusy[op]
}

func (p *FaultProxy) count(op, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.injected[op+" "+what]++
}

// Seen returns how many requests of op were made.
func (p *FaultProxy) Seen(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ops[op]
}

// Faults returns how many faults of a kind ("GetObject cut", "PutObject
// 503", "UploadPart corrupt") were injected.
func (p *FaultProxy) Faults(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[kind]
}

// SignedBy reports whether a request was signed with the access key ID.
func (p *FaultProxy) SignedBy(accessKey string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.signers[accessKey]
}

// SessionTokens returns the session tokens requests were signed with.
func (p *FaultProxy) SessionTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return setKeys(p.tokens)
}

// UploadKeys returns the keys multipart uploads were started for.
func (p *FaultProxy) UploadKeys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return setKeys(p.uploads)
}

func setKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Reset forgets the requests seen and the faults injected (not the
// tokens, signers and upload keys, nor the requests in progress).
func (p *FaultProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops, p.attempts, p.injected, p.maxBusy = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	if p.busy == nil {
		p.busy = map[string]int{}
	}
}
