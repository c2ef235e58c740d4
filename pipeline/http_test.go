package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// httpCoordinator serves a test coordinator over HTTP with secret.
func httpCoordinator(t *testing.T, secret []byte) (*Coordinator, *memStore, *httptest.Server) {
	t.Helper()
	c, store, _ := testCoordinator(t, nil)
	c.opts.Now = time.Now
	srv := httptest.NewServer(newHandler(c, secret, nil))
	t.Cleanup(srv.Close)
	return c, store, srv
}

// rawPost posts body to path with the auth header and returns the status
// and the answer.
func rawPost(t *testing.T, url, path, auth string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set(authHeader, auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReplayRefused: a signed request sent again (same nonce) is refused
// with 401; one naming another job with 409; one whose job was changed
// after signing with 401.
func TestReplayRefused(t *testing.T) {
	secret := []byte("0123456789abcdef")
	c, _, srv := httpCoordinator(t, secret)
	body := []byte(`{"worker":"w","slots":0}`)
	auth := signedAuth(secret, "/v1/heartbeat", c.job.RunID, "w", time.Now().Unix(), body)
	if code, msg := rawPost(t, srv.URL, "/v1/heartbeat", auth, body); code != 200 {
		t.Fatalf("first: %d %s", code, msg)
	}
	if code, msg := rawPost(t, srv.URL, "/v1/heartbeat", auth, body); code != 401 || !strings.Contains(msg, "replayed") {
		t.Errorf("replay: %d %s, want 401 replayed", code, msg)
	}
	other := strings.Repeat("ab", 16)
	if code, msg := rawPost(t, srv.URL, "/v1/heartbeat", signedAuth(secret, "/v1/heartbeat", other, "w", time.Now().Unix(), body), body); code != 409 || !strings.Contains(msg, "another job") {
		t.Errorf("another job's request: %d %s, want 409", code, msg)
	}
	forged := strings.Replace(signedAuth(secret, "/v1/heartbeat", other, "w", time.Now().Unix(), body), "job="+other, "job="+c.job.RunID, 1)
	if code, msg := rawPost(t, srv.URL, "/v1/heartbeat", forged, body); code != 401 {
		t.Errorf("a request with its job rewritten: %d %s, want 401", code, msg)
	}
	if code, msg := rawPost(t, srv.URL, "/v1/heartbeat", signedAuth(secret, "/v1/heartbeat", c.job.RunID, "x", time.Now().Unix(), body), body); code != 400 {
		t.Errorf("a body of another worker than the envelope's: %d %s, want 400", code, msg)
	}
}

// TestNonceCacheBounded: the cache refuses new nonces when full of live
// ones, and makes room as they expire.
func TestNonceCacheBounded(t *testing.T) {
	nc := &nonceCache{seen: map[[16]byte]int64{}, max: 2}
	now := time.Now().Unix()
	for i, want := range []error{nil, nil, errBusy} {
		if err := nc.add(fmt.Sprintf("%032x", i), now, now); !errors.Is(err, want) {
			t.Errorf("nonce %d: %v, want %v", i, err, want)
		}
	}
	later := now + int64(maxClockSkew/time.Second) + 1
	if err := nc.add(fmt.Sprintf("%032x", 9), later, later); err != nil || len(nc.seen) != 1 {
		t.Errorf("after the window: %v, %d nonces kept", err, len(nc.seen))
	}
}

// TestBodyBounds: an unsigned request is refused without its body being
// read; a signed-looking one over the endpoint's bound gets 413, declared
// or not.
func TestBodyBounds(t *testing.T) {
	secret := []byte("0123456789abcdef")
	_, _, srv := httpCoordinator(t, secret)
	big := bytes.Repeat([]byte("x"), maxSmallBody+1)
	if code, _ := rawPost(t, srv.URL, "/v1/join", "", big); code != 401 {
		t.Errorf("unsigned: %d, want 401", code)
	}
	auth := signedAuth([]byte("wrong secret!!!!"), "/v1/join", "", "w", time.Now().Unix(), big)
	if code, _ := rawPost(t, srv.URL, "/v1/join", auth, big); code != 413 {
		t.Errorf("declared over the bound: %d, want 413", code)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/join", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1 // chunked
	req.Header.Set(authHeader, auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked over the bound: %d, want 413", resp.StatusCode)
	}
}

// TestClientChecksAnswers: a client refuses an unsigned answer, one
// signed with another secret, and one of another job than it joined, at
// once and for good.
func TestClientChecksAnswers(t *testing.T) {
	secret := []byte("0123456789abcdef")
	unsigned := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"protocol": ProtocolVersion, "worker": "w"})
	}))
	defer unsigned.Close()
	var perm *permanentError
	_, err := newClient(unsigned.URL, secret, nil).join(context.Background(), &joinRequest{Protocol: ProtocolVersion, Worker: "w"})
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "could not prove it holds the cluster secret") {
		t.Errorf("unsigned answer: %v", err)
	}
	_, _, srv := httpCoordinator(t, []byte("another secret!!"))
	_, err = newClient(srv.URL, secret, nil).join(context.Background(), &joinRequest{Protocol: ProtocolVersion, Worker: "w"})
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "could not prove") {
		t.Errorf("answer signed with another secret: %v", err)
	}
	// A client that joined one job meets another at the same address.
	_, _, first := httpCoordinator(t, secret)
	cl := newClient(first.URL, secret, nil).(*client)
	if _, err := cl.join(context.Background(), &joinRequest{Protocol: ProtocolVersion, Worker: "w", Instance: "i"}); err != nil {
		t.Fatal(err)
	}
	_, _, second := httpCoordinator(t, secret)
	cl.base = second.URL
	_, err = cl.heartbeat(context.Background(), &heartbeatRequest{Worker: "w"})
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "another job") {
		t.Errorf("heartbeat to a restarted coordinator: %v", err)
	}
}

// TestMalformedReportRefused: reports with overflowing or inconsistent
// counts, or parts that are not the task's, are refused with 400, which
// a client does not retry.
func TestMalformedReportRefused(t *testing.T) {
	secret := []byte("0123456789abcdef")
	c, store, srv := httpCoordinator(t, secret)
	cl := newClient(srv.URL, secret, nil)
	if _, err := cl.join(context.Background(), &joinRequest{Protocol: ProtocolVersion, Worker: "w", Instance: "i"}); err != nil {
		t.Fatal(err)
	}
	resp, err := cl.lease(context.Background(), &leaseRequest{Worker: "w", Slots: 1})
	if err != nil || len(resp.Tasks) != 1 {
		t.Fatalf("lease: %+v %v", resp, err)
	}
	task := resp.Tasks[0]
	good := execute(t, c, store, "w", task)
	for name, mutate := range map[string]func(r *reportRequest){
		"rows overflow":    func(r *reportRequest) { r.Result.RowsIn, r.Result.Lines = math.MaxInt64, math.MaxInt64 },
		"negative lines":   func(r *reportRequest) { r.Result.Lines = -1 },
		"rows over lines":  func(r *reportRequest) { r.Result.RowsIn = r.Result.Lines + 1 },
		"unknown split":    func(r *reportRequest) { r.Task.Split = len(c.job.Splits) },
		"malformed lease":  func(r *reportRequest) { r.Task.Lease = "../x" },
		"no stats":         func(r *reportRequest) { r.Result.Stats = nil },
		"another phase":    func(r *reportRequest) { r.Task.Phase = "commit" },
		"result and none":  func(r *reportRequest) { r.Result = nil },
		"parts in the fit": func(r *reportRequest) { r.Result.RowsOut = []int64{1} },
	} {
		req := *good
		res := *good.Result
		req.Result = &res
		mutate(&req)
		start := time.Now()
		_, err := cl.report(context.Background(), &req)
		var perm *permanentError
		if !errors.As(err, &perm) || !strings.Contains(err.Error(), "400") && !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: %v, want a permanent refusal", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: refused after %s", name, d)
		}
	}
	// Fit statistics whose counts overflow do not decode: 400, not 500.
	body := fmt.Sprintf(`{"worker":"w","task":{"phase":"fit","split":%d,"attempt":%d,"lease":%q},"result":{"rows_in":2,"lines":2,"stats":{"version":1,"label":"rings","numeric":[],"rows":2,"categorical":[{"column":"sex","labels":[{"label":"F","count":9223372036854775807},{"label":"M","count":9223372036854775807},{"label":"I","count":4}]}]}}}`,
		task.Split, task.Attempt, task.Lease)
	if code, msg := rawPost(t, srv.URL, "/v1/report", signedAuth(secret, "/v1/report", c.job.RunID, "w", time.Now().Unix(), []byte(body)), []byte(body)); code != 400 {
		t.Errorf("overflowing fit statistics: %d %s, want 400", code, msg)
	}
	if r, err := cl.report(context.Background(), good); err != nil || !r.Accepted {
		t.Errorf("the good report after the bad ones: %+v %v", r, err)
	}
}

// TestRunLeavesNoStages: a job run in-process publishes exactly its
// parts; no staged object is left, and a refused attempt's parts are
// discarded.
func TestRunLeavesNoStages(t *testing.T) {
	c, store, _ := testCoordinator(t, nil)
	a, b := join(t, c, "a"), join(t, c, "b")
	finishPhase(t, c, store, a)
	task := lease(t, c, a, 1).Tasks[0]
	forged := task
	forged.Lease = newLeaseID() // b holds no lease on it
	if r := reportResp(t, c, execute(t, c, store, b, forged)); r.Accepted {
		t.Fatal("a report of a task b never leased was accepted")
	}
	if n := store.stageCount(); n != 0 {
		t.Errorf("%d stages left by the refused report", n)
	}
	report(t, c, execute(t, c, store, a, task))
	finishPhase(t, c, store, a)
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := store.stageCount(); n != 0 {
		t.Errorf("%d stages left after the commit", n)
	}
	for i := range c.job.Splits {
		for _, f := range []string{"train", "validation"} {
			if _, ok := store.objects[partKey(f, i, "")]; !ok {
				t.Errorf("%s missing", partKey(f, i, ""))
			}
		}
	}
}
