package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// fakeClock is a settable clock for leases.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testCoordinator returns a coordinator of the Abalone job in ~10 splits,
// on a fake clock with a 10s lease, that fits on every split (a sample's
// fit leases alike; speculate_test.go tests it).
func testCoordinator(t *testing.T, opts *Settings) (*Coordinator, *memStore, *fakeClock) {
	t.Helper()
	store := newMemStore()
	if opts == nil {
		opts = &Settings{Seed: 5, SplitSize: 20000}
	}
	job := abaloneJob(t, store, opts)
	clock := newFakeClock()
	c := mustCoordinator(t, job, store, store, &CoordinatorOptions{LeaseTTL: 10 * time.Second, Now: clock.Now, twoPass: true})
	return c, store, clock
}

func join(t *testing.T, c *Coordinator, name string) string {
	t.Helper()
	resp, err := c.join(context.Background(), &joinRequest{Protocol: ProtocolVersion, Worker: name, Instance: name})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Worker
}

func lease(t *testing.T, c *Coordinator, worker string, slots int) *leaseResponse {
	t.Helper()
	resp, err := c.lease(context.Background(), &leaseRequest{Worker: worker, Slots: slots})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func report(t *testing.T, c *Coordinator, req *reportRequest) Phase {
	t.Helper()
	resp, err := c.report(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.State
}

// execute runs a task for real and returns its report.
func execute(t *testing.T, c *Coordinator, store *memStore, worker string, task taskID) *reportRequest {
	t.Helper()
	job := c.job
	s := job.Splits[task.Split]
	var res taskResult
	var parts []stagedPart
	var err error
	c.mu.Lock()
	fit := c.fit
	c.mu.Unlock()
	st := &splitTask{job: job, fit: fit, split: s, src: store, mem: memory.DefaultAllocator, ctr: &counters{}}
	switch task.Phase {
	case PhaseFit:
		res, err = st.runFit(context.Background(), false)
	case PhaseTransform:
		res, parts, err = st.runTransform(context.Background(), store, stageID(job.RunID, task.Lease), task.Speculative)
	}
	if me := (*mispredictError)(nil); errors.As(err, &me) {
		return &reportRequest{Worker: worker, Task: task, Error: me.Error(), Mispredicted: true}
	}
	if err != nil {
		t.Fatalf("%s: %v", task, err)
	}
	return &reportRequest{Worker: worker, Task: task, Result: &res, Parts: parts}
}

// finishPhase leases and completes every pending task of the phase as
// worker.
func finishPhase(t *testing.T, c *Coordinator, store *memStore, worker string) {
	t.Helper()
	phase := c.snapshot().Phase
	for c.snapshot().Phase == phase {
		resp := lease(t, c, worker, 100)
		if len(resp.Tasks) == 0 {
			t.Fatalf("%s phase: no task to lease, yet the phase is not over", phase)
		}
		for _, task := range resp.Tasks {
			report(t, c, execute(t, c, store, worker, task))
		}
	}
}

func taskOf(c *Coordinator, split int) taskState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.tasks[split]
}

func TestHeartbeatDefaultsBelowLease(t *testing.T) {
	store := newMemStore()
	job := abaloneJob(t, store, nil)
	for _, c := range []struct{ lease, want time.Duration }{{30 * time.Second, time.Second}, {time.Second, 250 * time.Millisecond}} {
		co := mustCoordinator(t, job, store, store, &CoordinatorOptions{LeaseTTL: c.lease})
		resp, err := co.join(context.Background(), &joinRequest{Protocol: ProtocolVersion, Worker: "w"})
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Duration(resp.HeartbeatMillis) * time.Millisecond; got != c.want {
			t.Errorf("lease %s: heartbeat every %s, want %s", c.lease, got, c.want)
		}
	}
}

// TestLeaseExpiryReassigns: a task whose worker stops heartbeating goes
// to another worker after the lease; heartbeats keep a lease alive.
func TestLeaseExpiryReassigns(t *testing.T) {
	c, store, clock := testCoordinator(t, nil)
	a, b := join(t, c, "a"), join(t, c, "b")
	got := lease(t, c, a, 2).Tasks
	if len(got) != 2 || got[0].Split != 0 || got[1].Split != 1 || got[0].Attempt != 1 {
		t.Fatalf("a leased %v, want splits 0 and 1, attempt 1", got)
	}
	clock.Add(6 * time.Second)
	// a heartbeats only split 0: split 1's lease runs out at 10s.
	if _, err := c.heartbeat(context.Background(), &heartbeatRequest{Worker: a, Tasks: got[:1]}); err != nil {
		t.Fatal(err)
	}
	clock.Add(5 * time.Second) // 11s
	c.expire()
	if s := taskOf(c, 0); s.state != leased || s.worker != a {
		t.Errorf("split 0 (heartbeated): state %d worker %s, want leased by a", s.state, s.worker)
	}
	if s := taskOf(c, 1); s.state != pending {
		t.Errorf("split 1 (lease lapsed): state %d, want pending", s.state)
	}
	bt := lease(t, c, b, 1).Tasks
	if len(bt) != 1 || bt[0].Split != 1 || bt[0].Attempt != 2 {
		t.Fatalf("b leased %v, want split 1 attempt 2", bt)
	}
	c.mu.Lock()
	re := append([]reassignment(nil), c.reassigned...)
	c.mu.Unlock()
	if len(re) != 1 || re[0] != (reassignment{Phase: PhaseFit, Split: 1, From: a, Reason: "lease expired"}) {
		t.Errorf("reassigned %+v", re)
	}
	ws := c.Workers()
	if ws[0].Worker != a || !ws[0].Lost || !ws[0].Gone {
		t.Errorf("worker a: %+v, want lost and gone", ws[0])
	}
	// a speaks again: it is alive, though it lost a lease.
	if _, err := c.heartbeat(context.Background(), &heartbeatRequest{Worker: a}); err != nil {
		t.Fatal(err)
	}
	if ws := c.Workers(); ws[0].Gone || !ws[0].Lost {
		t.Errorf("worker a after a heartbeat: %+v, want back, lost once", ws[0])
	}
	// Finishing the phase still works with the reassigned task.
	report(t, c, execute(t, c, store, b, bt[0]))
	report(t, c, execute(t, c, store, a, got[0]))
	finishPhase(t, c, store, b)
	if p := c.snapshot().Phase; p != PhaseTransform {
		t.Fatalf("phase %s after every fit task, want transform", p)
	}
}

// TestStaleAndDuplicateReports: only the holder of a task's live lease
// can report it. A failure or a result of an attempt whose lease lapsed
// is refused, and so is a report of a phase already over; the accepted
// report, sent again, is accepted and counted once.
func TestStaleAndDuplicateReports(t *testing.T) {
	c, store, clock := testCoordinator(t, nil)
	a, b := join(t, c, "a"), join(t, c, "b")
	first := lease(t, c, a, 1).Tasks[0]
	clock.Add(11 * time.Second)
	c.expire()
	second := lease(t, c, b, 1).Tasks[0]
	if second.Split != first.Split || second.Attempt != 2 || second.Lease == first.Lease {
		t.Fatalf("reassigned task %v (first %v)", second, first)
	}
	// a, woken up, reports a failure of its old attempt: refused.
	if r := reportResp(t, c, &reportRequest{Worker: a, Task: first, Error: "connection reset"}); r.Accepted {
		t.Errorf("a stale failure was accepted")
	}
	if s := taskOf(c, first.Split); s.state != leased || s.worker != b || len(s.failedOn) != 0 {
		t.Fatalf("after a stale failure: state %d worker %s failedOn %v, want still leased by b, no failure", s.state, s.worker, s.failedOn)
	}
	// a's late result is refused too: its lease lapsed.
	if r := reportResp(t, c, execute(t, c, store, a, first)); r.Accepted || !strings.Contains(r.Reason, "no live lease") {
		t.Errorf("a's late result: %+v, want refused", r)
	}
	// b's lease with a's name, or a's name with b's lease: refused.
	forged := execute(t, c, store, a, second)
	if r := reportResp(t, c, forged); r.Accepted {
		t.Errorf("a report of b's lease by a was accepted")
	}
	if s := taskOf(c, first.Split); s.state != leased {
		t.Fatalf("refused results changed the task: state %d", s.state)
	}
	// b's result is taken once, however often it is sent.
	res := execute(t, c, store, b, second)
	for range 2 {
		if r := reportResp(t, c, res); !r.Accepted {
			t.Errorf("b's result: %+v, want accepted", r)
		}
	}
	if r := reportResp(t, c, &reportRequest{Worker: b, Task: second, Error: "disk full"}); r.Accepted {
		t.Errorf("a failure after the result was accepted")
	}
	if snap := c.snapshot(); snap.SplitsDone != 1 || snap.Phase != PhaseFit {
		t.Fatalf("after duplicates: %+v, want 1 split done in fit", snap)
	}
	var aDone, bDone, bRunning int
	for _, w := range c.Workers() {
		switch w.Worker {
		case a:
			aDone = w.Tasks
		case b:
			bDone, bRunning = w.Tasks, w.Running
		}
	}
	if aDone != 0 || bDone != 1 || bRunning != 0 {
		t.Errorf("tasks done a=%d b=%d, b running %d; want 0, 1, 0", aDone, bDone, bRunning)
	}
	finishPhase(t, c, store, b)
	// A fit report arriving in the transform phase is refused.
	if r := reportResp(t, c, &reportRequest{Worker: b, Task: second, Error: "late"}); r.State != PhaseTransform || r.Accepted {
		t.Fatalf("stale fit report: %+v", r)
	}
	finishPhase(t, c, store, b)
	if p := c.snapshot().Phase; p != PhaseCommit {
		t.Fatalf("phase %s after every transform task, want commit", p)
	}
	// Malformed reports are refused as such.
	_, err := c.report(context.Background(), &reportRequest{Worker: a, Task: first})
	var pe *protocolError
	if !errors.As(err, &pe) {
		t.Errorf("report without result or error: %v, want a protocolError", err)
	}
}

func reportResp(t *testing.T, c *Coordinator, req *reportRequest) *reportResponse {
	t.Helper()
	resp, err := c.report(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestDataErrorFailsOnce: an invalid row under the error policy fails the
// job at its first report, with the row's place, and no task is retried.
func TestDataErrorFailsOnce(t *testing.T) {
	store := newMemStore()
	job := abaloneJob(t, store, &Settings{Seed: 5, SplitSize: 20000})
	data := store.objects["in/abalone.csv"]
	// Break line 3000 (in a middle split).
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines[2999] = []byte("M,0.5,oops,0.1,0.5,0.2,0.1,0.15,9\n")
	store.objects["in/abalone.csv"] = bytes.Join(lines, nil)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	c := mustCoordinator(t, job, store, store, &CoordinatorOptions{Heartbeat: 20 * time.Millisecond, Logger: log})
	var werrs [3]error
	wctx, stopWorkers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 3 {
		w := newWorker(c, func(context.Context, *Job) (Source, Sink, error) { return store, store, nil },
			&WorkerOptions{ID: fmt.Sprintf("w%d", i), Slots: 2})
		wg.Add(1)
		go func() { defer wg.Done(); werrs[i] = w.Run(wctx) }()
	}
	_, err := c.Run(context.Background())
	stopWorkers()
	wg.Wait()
	if err == nil || !strings.Contains(err.Error(), "line 3000") || !strings.Contains(err.Error(), `"diameter"`) || strings.Contains(err.Error(), "times") {
		t.Fatalf("job error %v, want the parse error of line 3000 once", err)
	}
	if n := strings.Count(logs.String(), "task failed"); n != 0 {
		t.Errorf("%d task failures logged: a data error must not be retried\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "data error"); n != 1 {
		t.Errorf("data error logged %d times, want 1", n)
	}
	c.mu.Lock()
	for _, ts := range c.tasks {
		if ts.task.Attempt > 1 {
			t.Errorf("%s was attempted again", ts.task)
		}
	}
	c.mu.Unlock()
	for i, werr := range werrs {
		if werr != nil && !errors.Is(werr, ErrJobFailed) && !errors.Is(werr, context.Canceled) {
			t.Errorf("worker %d: %v", i, werr)
		}
	}
	for _, k := range store.keys() {
		if !strings.HasPrefix(k, "in/") {
			t.Errorf("failed job left %s", k)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMaxAttemptsBound: transient failures retry the task, on another
// worker while one is alive, and fail the job after MaxAttempts.
func TestMaxAttemptsBound(t *testing.T) {
	c, _, _ := testCoordinator(t, nil)
	a, b, d := join(t, c, "a"), join(t, c, "b"), join(t, c, "d")
	task := lease(t, c, a, 1).Tasks[0]
	report(t, c, &reportRequest{Worker: a, Task: task, Error: "read timeout"})
	// a asks again: the failed task goes to another worker, a gets the next.
	next := lease(t, c, a, 1).Tasks
	if len(next) != 1 || next[0].Split == task.Split {
		t.Fatalf("a leased %v after failing split %d, want another split", next, task.Split)
	}
	retry := lease(t, c, b, 1).Tasks
	if len(retry) != 1 || retry[0].Split != task.Split || retry[0].Attempt != 2 {
		t.Fatalf("b leased %v, want split %d attempt 2", retry, task.Split)
	}
	report(t, c, &reportRequest{Worker: b, Task: retry[0], Error: "read timeout"})
	third := lease(t, c, d, 1).Tasks
	if len(third) != 1 || third[0].Split != task.Split || third[0].Attempt != 3 {
		t.Fatalf("d leased %v, want split %d attempt 3", third, task.Split)
	}
	if p := report(t, c, &reportRequest{Worker: d, Task: third[0], Error: "read timeout"}); p != PhaseFailed {
		t.Fatalf("phase %s after 3 failed attempts, want failed", p)
	}
	resp := lease(t, c, a, 1)
	if resp.State != PhaseFailed || !strings.Contains(resp.Error, "failed 3 times") || !strings.Contains(resp.Error, "read timeout") {
		t.Errorf("lease after failure: %+v", resp)
	}
	c.mu.Lock()
	n := len(c.reassigned)
	c.mu.Unlock()
	if n != 2 {
		t.Errorf("%d reassignments recorded, want 2 (the third failure ended the job)", n)
	}
}

// TestRetryOnSameWorkerWhenAlone: with no other live worker, a failed
// task goes back to the worker that failed it.
func TestRetryOnSameWorkerWhenAlone(t *testing.T) {
	c, _, clock := testCoordinator(t, nil)
	a, b := join(t, c, "a"), join(t, c, "b")
	task := lease(t, c, a, 1).Tasks[0]
	report(t, c, &reportRequest{Worker: a, Task: task, Error: "read timeout"})
	clock.Add(11 * time.Second) // b has been silent for a lease period
	lease(t, c, a, 0)           // a is alive
	got := lease(t, c, a, 1).Tasks
	if len(got) != 1 || got[0].Split != task.Split || got[0].Attempt != 2 {
		t.Fatalf("a (alone) leased %v, want split %d attempt 2", got, task.Split)
	}
	_ = b
}

// TestLostLeasesBound: a task whose holders keep vanishing fails the job
// after MaxAttempts.
func TestLostLeasesBound(t *testing.T) {
	c, _, clock := testCoordinator(t, nil)
	for i := range 3 {
		w := join(t, c, "w"+strconv.Itoa(i))
		got := lease(t, c, w, 1).Tasks
		if len(got) != 1 || got[0].Split != 0 || got[0].Attempt != i+1 {
			t.Fatalf("w%d leased %v", i, got)
		}
		clock.Add(11 * time.Second)
		c.expire()
	}
	snap := c.snapshot()
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if snap.Phase != PhaseFailed || err == nil || !strings.Contains(err.Error(), "lost 3 times") {
		t.Fatalf("phase %s, error %v; want failed, lost 3 times", snap.Phase, err)
	}
}

func TestWorkerNames(t *testing.T) {
	c, _, _ := testCoordinator(t, nil)
	ctx := context.Background()
	r1, _ := c.join(ctx, &joinRequest{Protocol: ProtocolVersion, Worker: "host-1", Instance: "x"})
	r2, _ := c.join(ctx, &joinRequest{Protocol: ProtocolVersion, Worker: "host-1", Instance: "x"})
	r3, _ := c.join(ctx, &joinRequest{Protocol: ProtocolVersion, Worker: "host-1", Instance: "y"})
	if r1.Worker != "host-1" || r2.Worker != "host-1" || r3.Worker != "host-1#2" {
		t.Errorf("names %q %q %q, want host-1 twice (same process), then host-1#2", r1.Worker, r2.Worker, r3.Worker)
	}
	if _, err := c.join(ctx, &joinRequest{Protocol: ProtocolVersion}); err == nil {
		t.Error("a nameless worker joined")
	}
	wire, err := json.Marshal(r1)
	if err != nil || bytes.Contains(wire, []byte(`"model":`)) || len(r1.Job.Splits) != len(c.job.Splits) {
		t.Errorf("join sent model (%s), %d splits", wire, len(r1.Job.Splits))
	}
}

// TestModelSentOnce: transform leases carry the model until the worker
// says it has it.
func TestModelSentOnce(t *testing.T) {
	c, store, _ := testCoordinator(t, nil)
	a := join(t, c, "a")
	finishPhase(t, c, store, a)
	r1, _ := c.lease(context.Background(), &leaseRequest{Worker: a, Slots: 1})
	r2, _ := c.lease(context.Background(), &leaseRequest{Worker: a, Slots: 1, HaveModel: r1.Tasks[0].Gen})
	if r1.Model == nil || len(r1.FirstLines) != len(c.job.Splits) {
		t.Errorf("first transform lease: model %v, %d first lines", r1.Model != nil, len(r1.FirstLines))
	}
	if r2.Model != nil || r2.FirstLines != nil || len(r2.Tasks) != 1 {
		t.Errorf("second lease resent the model or lines (%v, %d)", r2.Model != nil, len(r2.FirstLines))
	}
}

// TestWaitInformed: the coordinator waits for workers that have not
// heard the outcome, not for those that have, nor for silent ones.
func TestWaitInformed(t *testing.T) {
	c, store, clock := testCoordinator(t, nil)
	a := join(t, c, "a")
	b := join(t, c, "b")
	finishPhase(t, c, store, a)
	finishPhase(t, c, store, a)
	res, err := c.Run(context.Background())
	if err != nil || res == nil {
		t.Fatal(err)
	}
	if resp := lease(t, c, a, 1); resp.State != PhaseCommitted {
		t.Fatalf("a heard %s", resp.State)
	}
	start := time.Now()
	c.WaitInformed(context.Background(), 150*time.Millisecond)
	if time.Since(start) < 150*time.Millisecond {
		t.Error("did not wait for b, which has not heard")
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.heartbeat(context.Background(), &heartbeatRequest{Worker: b})
	}()
	start = time.Now()
	c.WaitInformed(context.Background(), 5*time.Second)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %s after b heard", d)
	}
	join(t, c, "silent")
	clock.Add(11 * time.Second)
	start = time.Now()
	c.WaitInformed(context.Background(), 5*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Errorf("waited %s for a worker silent for a lease period", d)
	}
}

// signedAuth makes the authHeader of a request as a client would.
func signedAuth(secret []byte, path, job, worker string, ts int64, body []byte) string {
	e := envelope{job: job, worker: worker, nonce: newNonce(), ts: ts}
	e.sig = requestSig(secret, http.MethodPost, path, e, body)
	return formatRequestAuth(e)
}

// signedPost posts body to path signed with secret (none if nil) for
// worker w of job and returns the status and the answer's body.
func signedPost(t *testing.T, url, path string, secret []byte, job string, ts int64, body string) (int, string) {
	t.Helper()
	auth := ""
	if secret != nil {
		auth = signedAuth(secret, path, job, "w", ts, []byte(body))
	}
	return rawPost(t, url, path, auth, []byte(body))
}

// TestHTTPAuth: unsigned, wrongly signed and stale requests are refused
// with 401; the secret is never logged; the right secret is served.
func TestHTTPAuth(t *testing.T) {
	c, _, _ := testCoordinator(t, nil)
	secret := []byte("correct horse battery staple")
	var logs syncBuffer
	srv := httptest.NewServer(newHandler(c, secret, slog.New(slog.NewTextHandler(&logs, nil))))
	defer srv.Close()
	joinBody := fmt.Sprintf(`{"protocol":%d,"worker":"w"}`, ProtocolVersion)
	now := time.Now().Unix()
	for _, tc := range []struct {
		name   string
		secret []byte
		ts     int64
		want   int
	}{
		{"unsigned", nil, now, 401},
		{"wrong secret", []byte("incorrect horse battery"), now, 401},
		{"ten minutes old", secret, now - 600, 401},
		{"signed", secret, now, 200},
	} {
		for _, path := range []string{"/v1/join", "/v1/lease", "/v1/report", "/v1/heartbeat"} {
			body, job := joinBody, ""
			if path != "/v1/join" {
				body, job = `{"worker":"w","slots":0}`, c.job.RunID
			}
			if path == "/v1/report" && tc.want == 200 {
				continue // a valid report needs a task
			}
			code, msg := signedPost(t, srv.URL, path, tc.secret, job, tc.ts, body)
			if code != tc.want {
				t.Errorf("%s %s: %d %s, want %d", tc.name, path, code, msg, tc.want)
			}
		}
	}
	// The body is covered by the signature.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/join", strings.NewReader(joinBody))
	req.Header.Set(authHeader, signedAuth(secret, "/v1/join", "", "w", now, []byte(`{"protocol":2,"worker":"x"}`)))
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else if resp.Body.Close(); resp.StatusCode != 401 {
		t.Errorf("tampered body: %s, want 401", resp.Status)
	}
	if strings.Contains(logs.String(), string(secret)) {
		t.Error("the secret appears in the coordinator's log")
	}
	if !strings.Contains(logs.String(), "refused a request") {
		t.Error("refusals are not logged")
	}

	// The client reports a refusal as permanent, and a worker gives up at once.
	cl := newClient(srv.URL, []byte("incorrect horse battery"), nil)
	_, err := cl.join(context.Background(), &joinRequest{Protocol: ProtocolVersion, Worker: "w"})
	var perm *permanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "wrong cluster secret") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("client with a wrong secret: %v", err)
	}
	w := newWorker(cl, nil, &WorkerOptions{ID: "intruder", CoordinatorTimeout: time.Minute})
	start := time.Now()
	if err := w.Run(context.Background()); !errors.As(err, &perm) {
		t.Errorf("worker with a wrong secret: %v, want a permanent refusal", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("worker with a wrong secret took %s to give up", d)
	}
}

// TestProtocolMismatchRefused: a worker of another protocol version is
// refused at join with 409, and gives up at once.
func TestProtocolMismatchRefused(t *testing.T) {
	c, _, _ := testCoordinator(t, nil)
	secret := []byte("0123456789abcdef")
	srv := httptest.NewServer(newHandler(c, secret, nil))
	defer srv.Close()
	code, msg := signedPost(t, srv.URL, "/v1/join", secret, "", time.Now().Unix(), `{"protocol":99,"worker":"w"}`)
	if code != http.StatusConflict || !strings.Contains(msg, "protocol 99") {
		t.Errorf("join with protocol 99: %d %s, want 409 naming the versions", code, msg)
	}
	code, _ = signedPost(t, srv.URL, "/v1/lease", secret, c.job.RunID, time.Now().Unix(), `{"worker":`)
	if code != http.StatusBadRequest {
		t.Errorf("malformed lease: %d, want 400", code)
	}
	cl := newClient(srv.URL, secret, nil)
	_, err := cl.join(context.Background(), &joinRequest{Protocol: 99, Worker: "future"})
	var perm *permanentError
	if !errors.As(err, &perm) {
		t.Errorf("client: %v, want a permanent error", err)
	}
}

// TestWorkerGivesUpOnSilentCoordinator: a coordinator that stops
// answering (gone, or hanging) makes the worker fail within its timeout.
func TestWorkerGivesUpOnSilentCoordinator(t *testing.T) {
	secret := []byte("0123456789abcdef")
	for _, mode := range []string{"closed", "hanging"} {
		t.Run(mode, func(t *testing.T) {
			c, store, _ := testCoordinator(t, nil)
			c.opts.Now = time.Now
			c.opts.Heartbeat = 50 * time.Millisecond
			h := newHandler(c, secret, nil)
			hang := make(chan struct{})
			var mu sync.Mutex
			dark := false
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				d := dark
				mu.Unlock()
				if d {
					select {
					case <-hang:
					case <-r.Context().Done():
					}
					return
				}
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			defer close(hang) // before Close, which waits for handlers
			joined := make(chan struct{})
			var once sync.Once
			open := func(context.Context, *Job) (Source, Sink, error) {
				once.Do(func() { close(joined) })
				return store, store, nil
			}
			// The worker has no slots' worth of work it can finish: its
			// lease calls wait while the coordinator goes dark.
			w := newWorker(newClient(srv.URL, secret, nil), open, &WorkerOptions{ID: "w", CoordinatorTimeout: 500 * time.Millisecond})
			errc := make(chan error, 1)
			go func() { errc <- w.Run(context.Background()) }()
			<-joined
			start := time.Now()
			if mode == "closed" {
				srv.CloseClientConnections()
				srv.Listener.Close()
			}
			mu.Lock()
			dark = true
			mu.Unlock()
			select {
			case err := <-errc:
				if err == nil || !strings.Contains(err.Error(), "coordinator unreachable") {
					t.Errorf("worker: %v, want coordinator unreachable", err)
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("worker gave up after %s, timeout 500ms", d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("worker still running 10s after its coordinator went silent")
			}
		})
	}
}

// TestClusterOverHTTP: three workers over the HTTP protocol write the
// bytes of an in-process run.
func TestClusterOverHTTP(t *testing.T) {
	ref := newMemStore()
	job := abaloneJob(t, ref, &Settings{Seed: 9, SplitSize: 15000})
	refRes, err := Run(context.Background(), job, ref, ref, &CoordinatorOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	job = abaloneJob(t, store, &Settings{Seed: 9, SplitSize: 15000})
	c := mustCoordinator(t, job, store, store, &CoordinatorOptions{LeaseTTL: 2 * time.Second})
	secret := []byte("0123456789abcdef")
	srv := httptest.NewServer(newHandler(c, secret, nil))
	defer srv.Close()
	var runs []func(context.Context) error
	errs := make([]error, 3)
	for i := range 3 {
		w := newWorker(newClient(srv.URL, secret, nil), func(context.Context, *Job) (Source, Sink, error) { return store, store, nil },
			&WorkerOptions{ID: "w", Slots: 2})
		runs = append(runs, func(ctx context.Context) error { errs[i] = w.Run(ctx); return errs[i] })
	}
	var wg sync.WaitGroup
	for i, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(context.Background()); err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
		}()
	}
	res, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(res.Workers) != 3 {
		t.Errorf("manifest workers %+v, want w, w#2, w#3", res.Workers)
	}
	for _, p := range res.Parts {
		if len(p.Workers) != 1 || !strings.HasPrefix(p.Workers[0], "w") {
			t.Errorf("part %d: workers %v, want the one that wrote it", p.Split, p.Workers)
		}
	}
	for _, k := range ref.keys() {
		if strings.HasPrefix(k, "train/") || strings.HasPrefix(k, "validation/") {
			if !bytes.Equal(ref.objects[k], store.objects[k]) {
				t.Errorf("%s differs from the in-process run", k)
			}
		}
	}
	// The column stats, sent in their binary form over HTTP, merge to
	// what the in-process run's merge to.
	want, err := json.Marshal(refRes.Columns)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := json.Marshal(res.Columns); err != nil || !bytes.Equal(got, want) {
		t.Errorf("column stats over HTTP:\n%s\nwant\n%s (%v)", got, want, err)
	}
}
