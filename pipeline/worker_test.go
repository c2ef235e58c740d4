package pipeline

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// guard bounds how long a test waits for something that must happen: a
// bound against hanging, never a measure of speed.
const guard = time.Minute

// holdFirstReport passes calls to a coordinator, but holds the first
// report until the worker asks for another lease (or guard passes).
type holdFirstReport struct {
	transport
	leased   chan struct{} // signalled by each lease call
	held     atomic.Bool
	overlaps atomic.Bool // a lease came while the report was held
}

func (h *holdFirstReport) lease(ctx context.Context, req *leaseRequest) (*leaseResponse, error) {
	select {
	case h.leased <- struct{}{}:
	default:
	}
	return h.transport.lease(ctx, req)
}

func (h *holdFirstReport) report(ctx context.Context, req *reportRequest) (*reportResponse, error) {
	if h.held.CompareAndSwap(false, true) {
		select { // forget the lease that brought this task
		case <-h.leased:
		default:
		}
		select {
		case <-h.leased:
			h.overlaps.Store(true)
		case <-time.After(guard):
		}
	}
	return h.transport.report(ctx, req)
}

// TestWorkerLeasesWhileReporting: a worker frees a task's slot once the
// task's work is done, so with one slot it asks for its next task while
// the report of the last one is still on its way; the job's output is
// the same.
func TestWorkerLeasesWhileReporting(t *testing.T) {
	ref := newMemStore()
	job := abaloneJob(t, ref, &Settings{Seed: 9, SplitSize: 15000})
	if _, err := Run(context.Background(), job, ref, ref, &CoordinatorOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	job = abaloneJob(t, store, &Settings{Seed: 9, SplitSize: 15000})
	c := mustCoordinator(t, job, store, store, &CoordinatorOptions{LeaseTTL: 2 * guard})
	h := &holdFirstReport{transport: c, leased: make(chan struct{}, 1)}
	w := newWorker(h, func(context.Context, *Job) (Source, Sink, error) { return store, store, nil }, &WorkerOptions{ID: "w", Slots: 1})
	errc := make(chan error, 1)
	go func() { errc <- w.Run(context.Background()) }()
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("worker: %v", err)
	}
	if !h.overlaps.Load() {
		t.Error("the worker asked for no lease while its first report was held: its slot waited for the report")
	}
	for _, k := range ref.keys() {
		if strings.HasPrefix(k, "train/") || strings.HasPrefix(k, "validation/") {
			if !bytes.Equal(ref.objects[k], store.objects[k]) {
				t.Errorf("%s differs from the in-process run", k)
			}
		}
	}
}

// TestRetryGivesUpOnMalformedReport: a report the coordinator cannot
// accept as sent (here one of a split the job does not have), made to a
// coordinator in the same process, is not retried: the worker's call
// fails at once with the coordinator's reason instead of retrying until
// its give-up time.
func TestRetryGivesUpOnMalformedReport(t *testing.T) {
	c, _, _ := testCoordinator(t, nil)
	w := join(t, c, "w1")
	resp := lease(t, c, w, 1)
	if len(resp.Tasks) != 1 {
		t.Fatalf("leased %d tasks, want 1", len(resp.Tasks))
	}
	bad := resp.Tasks[0]
	bad.Split = len(c.job.Splits) + 7
	calls := 0
	_, err := retry(context.Background(), slog.New(slog.DiscardHandler), guard, "report", func(ctx context.Context) (*reportResponse, error) {
		calls++
		return c.report(ctx, &reportRequest{Worker: w, Task: bad, Error: "failed"})
	})
	var pe *protocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "the job has splits") {
		t.Fatalf("retry returned %v, want the coordinator's refusal of the split", err)
	}
	if calls != 1 {
		t.Fatalf("the report was made %d times, want once", calls)
	}
}

// TestRetryRefusedUntilListening: calls to an address where nothing
// listens yet are retried until a listener comes, with one warning for
// all the refused connections; other failures are each logged.
func TestRetryRefusedUntilListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	calls := 0
	_, err = retry(context.Background(), log, guard, "join", func(ctx context.Context) (struct{}, error) {
		calls++
		if calls == 4 {
			if ln, err = net.Listen("tcp", addr); err != nil {
				return struct{}{}, &permanentError{err}
			}
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return struct{}{}, err
	})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	ln.Close()
	if calls != 4 || strings.Count(logs.String(), "retrying") != 1 || !strings.Contains(logs.String(), "connection refused") {
		t.Fatalf("%d calls, log:\n%s\nwant 4 calls and one warning of the refused connections", calls, logs.String())
	}

	logs.Reset()
	calls = 0
	_, err = retry(context.Background(), log, guard, "lease", func(ctx context.Context) (struct{}, error) {
		if calls++; calls < 3 {
			return struct{}{}, errors.New("503 Service Unavailable")
		}
		return struct{}{}, nil
	})
	if err != nil || strings.Count(logs.String(), "retrying") != 2 {
		t.Fatalf("retry: %v; log:\n%s\nwant a warning for each of 2 failures", err, logs.String())
	}
}
