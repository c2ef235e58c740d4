package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/sync/errgroup"
)

// Opener gives a worker its own view of the job's storage: the input
// objects and the output root, with credentials obtained where it runs.
type Opener func(ctx context.Context, job *Job) (Source, Sink, error)

// WorkerOptions tune a worker; nil means defaults.
type WorkerOptions struct {
	ID    string // default "worker"
	Slots int    // tasks run at once; default 1
	Mem   memory.Allocator
	// CoordinatorTimeout bounds how long the worker goes on without an
	// answer from its coordinator: it fails when none came for this long
	// (joining, or between heartbeats); default 60s.
	CoordinatorTimeout time.Duration
	Logger             *slog.Logger
}

// Worker leases tasks from a coordinator and runs them.
type Worker struct {
	t        Transport
	open     Opener
	opts     WorkerOptions
	log      *slog.Logger
	instance string

	mu      sync.Mutex
	running map[Task]context.CancelFunc
	phase   Phase
	ctr     map[Phase]*counters
}

// NewWorker returns a worker that talks to t and opens storage with open.
func NewWorker(t Transport, open Opener, opts *WorkerOptions) *Worker {
	w := &Worker{t: t, open: open, running: map[Task]context.CancelFunc{}, ctr: map[Phase]*counters{}}
	if opts != nil {
		w.opts = *opts
	}
	if w.opts.ID == "" {
		w.opts.ID = "worker"
	}
	if w.opts.Slots <= 0 {
		w.opts.Slots = 1
	}
	if w.opts.Mem == nil {
		w.opts.Mem = memory.DefaultAllocator
	}
	if w.opts.CoordinatorTimeout <= 0 {
		w.opts.CoordinatorTimeout = 60 * time.Second
	}
	w.log = w.opts.Logger
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	rand.Read(b[:])
	w.instance = hex.EncodeToString(b[:])
	return w
}

// ErrJobFailed wraps the coordinator's reason when the job failed.
var ErrJobFailed = errors.New("job failed")

// retry calls f until it succeeds, ctx ends, or the coordinator has been
// unreachable for CoordinatorTimeout.
func retry[T any](ctx context.Context, w *Worker, what string, f func(context.Context) (T, error)) (T, error) {
	start := time.Now()
	delay := 100 * time.Millisecond
	for {
		v, err := f(ctx)
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			return v, ctx.Err()
		}
		var perm *PermanentError
		if errors.As(err, &perm) {
			return v, err
		}
		if time.Since(start) > w.opts.CoordinatorTimeout {
			return v, fmt.Errorf("coordinator unreachable for %s (%s): %w", w.opts.CoordinatorTimeout, what, err)
		}
		w.log.Warn("coordinator call failed; retrying", "call", what, "error", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return v, ctx.Err()
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// PermanentError is a coordinator answer that retrying cannot change
// (refused secret, wrong protocol version).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Run joins the coordinator and runs tasks until the job ends. It returns
// nil only when the coordinator reports the job committed; an error
// wrapping ErrJobFailed when it reports the job failed; and an error when
// the coordinator has not answered for CoordinatorTimeout, or refuses the
// worker (a *PermanentError: wrong secret, other protocol version).
func (w *Worker) Run(ctx context.Context) error {
	timeout := w.opts.CoordinatorTimeout
	start := time.Now()
	join, err := retry(ctx, w, "join", func(ctx context.Context) (*JoinResponse, error) {
		// Bound each call too: a coordinator that accepts connections
		// but never answers must not hold the worker forever.
		ctx, cancel := context.WithDeadline(ctx, start.Add(timeout))
		defer cancel()
		return w.t.Join(ctx, &JoinRequest{Protocol: ProtocolVersion, Worker: w.opts.ID, Version: Version, Instance: w.instance})
	})
	if err != nil {
		return err
	}
	id := w.opts.ID
	if join.Worker != "" {
		id = join.Worker
	}
	if id != w.opts.ID {
		w.log.Warn("the coordinator knows this worker by another name: its name is in use", "worker", id)
	}
	job := join.Job
	if job == nil || len(job.Splits) == 0 || job.Spec == nil {
		return errors.New("the coordinator sent no job")
	}
	src, sink, err := w.open(ctx, job)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// Heartbeats extend leases, report progress and learn of failure;
	// they are also the watchdog: with no answer from the coordinator for
	// CoordinatorTimeout, the worker stops.
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		every := time.Duration(join.HeartbeatMillis) * time.Millisecond
		if every <= 0 {
			every = time.Second
		}
		perCall := max(time.Duration(join.LeaseMillis)*time.Millisecond, every)
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			giveUp := last.Add(timeout)
			callEnd := time.Now().Add(perCall)
			if giveUp.Before(callEnd) {
				callEnd = giveUp
			}
			cctx, ccancel := context.WithDeadline(ctx, callEnd)
			resp, err := w.t.Heartbeat(cctx, w.heartbeat(id))
			ccancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				var perm *PermanentError
				if errors.As(err, &perm) {
					cancel(err)
					return
				}
				if !time.Now().Before(giveUp) {
					cancel(fmt.Errorf("coordinator unreachable for %s: %w", timeout, err))
					return
				}
				w.log.Warn("heartbeat failed", "error", err)
				continue
			}
			last = time.Now()
			if resp.State == PhaseFailed {
				cancel(fmt.Errorf("%w: %s", ErrJobFailed, resp.Error))
				return
			}
		}
	}()
	defer func() { <-hbDone }()
	defer cancel(nil)

	g, gctx := errgroup.WithContext(ctx)
	free := make(chan struct{}, w.opts.Slots)
	for range w.opts.Slots {
		free <- struct{}{}
	}
	var job2 Job = *job
	haveModel := false
	loopErr := func() error {
		for {
			// Wait for at least one free slot.
			select {
			case <-free:
			case <-gctx.Done():
				return context.Cause(gctx)
			}
			slots := 1 + len(free)
			for range slots - 1 {
				<-free
			}
			resp, err := retry(gctx, w, "lease", func(ctx context.Context) (*LeaseResponse, error) {
				return w.t.Lease(ctx, &LeaseRequest{Worker: id, Slots: slots, WaitMS: 5000, HaveModel: haveModel})
			})
			if err != nil {
				return err
			}
			switch resp.State {
			case PhaseCommitted:
				return nil
			case PhaseFailed:
				return fmt.Errorf("%w: %s", ErrJobFailed, resp.Error)
			}
			if resp.Model != nil {
				job2.Model = resp.Model
				job2.FirstLines = resp.FirstLines
				haveModel = true
			}
			for range slots - len(resp.Tasks) {
				free <- struct{}{}
			}
			jobCopy := job2
			for _, task := range resp.Tasks {
				if task.Split < 0 || task.Split >= len(job.Splits) {
					return fmt.Errorf("the coordinator leased %s of a job with %d splits", task, len(job.Splits))
				}
				g.Go(func() error {
					defer func() { free <- struct{}{} }()
					return w.runTask(gctx, id, src, sink, &jobCopy, task)
				})
			}
		}
	}()
	if loopErr != nil {
		cancel(loopErr)
	}
	gErr := g.Wait()
	if loopErr == nil && gErr == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if loopErr != nil {
		return loopErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return gErr
}

func (w *Worker) counters(p Phase) *counters {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.ctr[p]
	if c == nil {
		c = &counters{}
		w.ctr[p] = c
	}
	return c
}

func (w *Worker) heartbeat(id string) *HeartbeatRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	req := &HeartbeatRequest{Worker: id}
	for t := range w.running {
		req.Tasks = append(req.Tasks, t)
	}
	if c := w.ctr[w.phase]; c != nil {
		req.Phase, req.Bytes, req.Rows = w.phase, c.bytes.Load(), c.rows.Load()
	}
	return req
}

// runTask runs one task and reports it. Only a failed report (the
// coordinator is gone) is returned as an error: task failures are the
// coordinator's to decide on.
func (w *Worker) runTask(ctx context.Context, id string, src Source, sink Sink, job *Job, task Task) error {
	tctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.running[task] = cancel
	w.phase = task.Phase
	w.mu.Unlock()
	defer func() {
		cancel()
		w.mu.Lock()
		delete(w.running, task)
		w.mu.Unlock()
	}()
	c := w.counters(task.Phase)
	split := job.Splits[task.Split]
	var res taskResult
	var err error
	switch task.Phase {
	case PhaseFit:
		res, err = fitSplit(tctx, src, job, split, w.opts.Mem, c)
	case PhaseTransform:
		if job.Model == nil {
			err = errors.New("transform task without a model")
		} else {
			res, err = transformSplit(tctx, src, sink, job, split, w.opts.Mem, c)
		}
	default:
		err = fmt.Errorf("unknown task phase %q", task.Phase)
	}
	if ctx.Err() != nil {
		// The job is ending or this worker is stopping: tell the
		// coordinator the task is dropped, so that it need not wait for
		// the lease to expire. One try; the lease covers a lost message.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		w.t.Report(rctx, &ReportRequest{Worker: id, Task: task, Error: "worker stopped: " + context.Cause(ctx).Error()})
		return nil
	}
	req := &ReportRequest{Worker: id, Task: task}
	if err != nil {
		req.Error = err.Error()
		req.DataError = IsDataError(err)
		w.log.Warn("task failed", "task", task.String(), "error", err)
	} else {
		req.Result = &res
	}
	_, rerr := retry(ctx, w, "report", func(ctx context.Context) (*ReportResponse, error) {
		return w.t.Report(ctx, req)
	})
	if rerr != nil && ctx.Err() == nil {
		return rerr
	}
	return nil
}
