package pipeline

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/sync/errgroup"
)

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
	t        transport
	open     func(ctx context.Context, job *Job) (Source, Sink, error)
	opts     WorkerOptions
	log      *slog.Logger
	instance string

	// recyclers keeps the buffers of finished tasks for the next ones
	// until Run returns.
	recyclers *recyclers

	mu      sync.Mutex
	running map[taskID]context.CancelFunc
	phase   Phase
	ctr     map[Phase]*counters
}

// NewWorker returns a worker of the coordinator at the base URL
// coordinator (see CoordinatorURL), signing its requests with secret.
// Once it has joined, open gives it its own view of the job's storage:
// the input objects and the output root, with credentials obtained where
// it runs.
func NewWorker(coordinator string, secret []byte, open func(ctx context.Context, job *Job) (Source, Sink, error), opts *WorkerOptions) *Worker {
	return newWorker(newClient(coordinator, secret, nil), open, opts)
}

// newWorker returns a worker that talks to t.
func newWorker(t transport, open func(ctx context.Context, job *Job) (Source, Sink, error), opts *WorkerOptions) *Worker {
	w := &Worker{t: t, open: open, running: map[taskID]context.CancelFunc{}, ctr: map[Phase]*counters{}}
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
	w.recyclers = newRecyclers(w.opts.Mem, w.opts.Slots)
	w.log = w.opts.Logger
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	rand.Read(b[:])
	w.instance = hex.EncodeToString(b[:])
	return w
}

// retry calls f until it succeeds, fails with a *permanentError, ctx
// ends, or the calls have failed for longer than giveUp. It backs off
// from 25ms to 2s between calls, logging each failure; a connection
// refused in the first two seconds is tried again every 2ms, logged
// once, so that a worker started with its coordinator joins as soon as
// the coordinator listens.
func retry[T any](ctx context.Context, log *slog.Logger, giveUp time.Duration, what string, f func(context.Context) (T, error)) (T, error) {
	start := time.Now()
	delay := 25 * time.Millisecond
	warned := false
	for {
		v, err := f(ctx)
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			return v, context.Cause(ctx)
		}
		// Neither a refused answer nor a request the coordinator cannot
		// accept as sent (what an in-process coordinator returns for a
		// malformed report) changes on a retry.
		var perm *permanentError
		var proto *protocolError
		if errors.As(err, &perm) || errors.As(err, &proto) {
			return v, err
		}
		if time.Since(start) > giveUp {
			return v, fmt.Errorf("coordinator unreachable for %s (%s): %w", giveUp, what, err)
		}
		wait, fast := delay, errors.Is(err, syscall.ECONNREFUSED) && time.Since(start) < refusedFor
		if fast {
			// Nothing listens yet: a coordinator started with its workers
			// is still starting. A refused connection costs nothing, so
			// try again soon, and say so once.
			wait = refusedDelay
		}
		if !fast || !warned {
			log.Warn("coordinator call failed; retrying", "call", what, "error", err)
		}
		warned = warned || fast
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return v, ctx.Err()
		}
		if !fast {
			delay = min(delay*2, 2*time.Second)
		}
	}
}

// A refused connection in the first refusedFor of retry's calls is tried
// again after refusedDelay.
const (
	refusedFor   = 2 * time.Second
	refusedDelay = 2 * time.Millisecond
)

// session is one Run of a worker: what it learned when it joined.
type session struct {
	w         *Worker
	id        string // the worker's name at the coordinator
	job       *Job
	src       Source
	sink      Sink
	heartbeat time.Duration // how often to heartbeat
	perCall   time.Duration // how long one heartbeat may take
}

// Run joins the coordinator and runs tasks until the job ends. It returns
// nil only when the coordinator reports the job committed; an error
// wrapping ErrJobFailed when it reports the job failed; and an error when
// the coordinator has not answered for CoordinatorTimeout, or refuses the
// worker (wrong secret, other protocol version).
func (w *Worker) Run(ctx context.Context) error {
	defer w.recyclers.Release()
	s, err := w.join(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Heartbeats extend leases, report progress and learn of failure;
	// they are also the watchdog: with no answer from the coordinator for
	// CoordinatorTimeout, the worker stops. The loop ends with ctx, which
	// is cancelled before Run waits for it.
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		s.heartbeats(ctx, cancel)
	}()
	defer func() { <-hbDone }()
	defer cancel(nil)
	return s.work(ctx, cancel)
}

// join joins the coordinator and opens the job's storage.
func (w *Worker) join(ctx context.Context) (*session, error) {
	timeout := w.opts.CoordinatorTimeout
	start := time.Now()
	join, err := retry(ctx, w.log, timeout, "join", func(ctx context.Context) (*joinResponse, error) {
		// Bound each call too: a coordinator that accepts connections
		// but never answers must not hold the worker forever.
		ctx, cancel := context.WithDeadline(ctx, start.Add(timeout))
		defer cancel()
		return w.t.join(ctx, &joinRequest{Protocol: ProtocolVersion, Worker: w.opts.ID, Version: Version, Instance: w.instance})
	})
	if err != nil {
		return nil, err
	}
	s := &session{w: w, id: w.opts.ID, job: join.Job}
	if join.Worker != "" {
		s.id = join.Worker
	}
	if s.id != w.opts.ID {
		w.log.Warn("the coordinator knows this worker by another name: its name is in use", "worker", s.id)
	}
	if s.job == nil || len(s.job.Splits) == 0 || s.job.Spec == nil {
		return nil, errors.New("the coordinator sent no job")
	}
	s.heartbeat = time.Duration(join.HeartbeatMillis) * time.Millisecond
	if s.heartbeat <= 0 {
		s.heartbeat = time.Second
	}
	s.perCall = max(time.Duration(join.LeaseMillis)*time.Millisecond, s.heartbeat)
	if s.src, s.sink, err = w.open(ctx, s.job); err != nil {
		return nil, err
	}
	return s, nil
}

// heartbeats heartbeats until ctx ends. It cancels ctx with the cause
// when the job failed, the coordinator refuses the worker, or it has not
// answered for CoordinatorTimeout.
func (s *session) heartbeats(ctx context.Context, cancel context.CancelCauseFunc) {
	timeout := s.w.opts.CoordinatorTimeout
	t := time.NewTicker(s.heartbeat)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		giveUp := last.Add(timeout)
		callEnd := time.Now().Add(s.perCall)
		if giveUp.Before(callEnd) {
			callEnd = giveUp
		}
		cctx, ccancel := context.WithDeadline(ctx, callEnd)
		resp, err := s.w.t.heartbeat(cctx, s.w.heartbeatRequest(s.id))
		ccancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var perm *permanentError
			if errors.As(err, &perm) {
				cancel(err)
				return
			}
			if !time.Now().Before(giveUp) {
				cancel(fmt.Errorf("coordinator unreachable for %s: %w", timeout, err))
				return
			}
			s.w.log.Warn("heartbeat failed", "error", err)
			continue
		}
		last = time.Now()
		s.w.cancelStale(resp.Stale)
		if resp.State == PhaseFailed {
			cancel(fmt.Errorf("%w: %s", ErrJobFailed, resp.Error))
			return
		}
	}
}

// work leases and runs tasks until the job ends, and returns the job's
// outcome as Run reports it.
func (s *session) work(ctx context.Context, cancel context.CancelCauseFunc) error {
	g, gctx := errgroup.WithContext(ctx)
	loopErr := s.leaseLoop(gctx, g)
	if loopErr != nil && !errors.Is(loopErr, context.Canceled) {
		cancel(loopErr)
	}
	gErr := g.Wait()
	if loopErr == nil && gErr == nil {
		return nil
	}
	// Several goroutines stop at once: tell the first real reason (the
	// heartbeat's, the lease loop's, or a task's failed report), not the
	// cancellation it caused elsewhere.
	for _, err := range []error{context.Cause(ctx), loopErr, gErr} {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return cmp.Or(loopErr, gErr)
}

// leaseLoop leases tasks whenever a slot is free and runs them in g,
// until the job ends or ctx does.
func (s *session) leaseLoop(ctx context.Context, g *errgroup.Group) error {
	free := make(chan struct{}, s.w.opts.Slots)
	for range s.w.opts.Slots {
		free <- struct{}{}
	}
	var fit *fitResult
	held := 0 // the transform generation whose model fit is; 0: a fit pass's
	for {
		// Wait for at least one free slot.
		select {
		case <-free:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		slots := 1 + len(free)
		for range slots - 1 {
			<-free
		}
		resp, err := retry(ctx, s.w.log, s.w.opts.CoordinatorTimeout, "lease", func(ctx context.Context) (*leaseResponse, error) {
			return s.w.t.lease(ctx, &leaseRequest{Worker: s.id, Slots: slots, WaitMS: 5000, HaveModel: held})
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
		s.w.cancelStale(resp.Stale)
		if resp.Model != nil {
			fit = &fitResult{model: resp.Model, firstLines: resp.FirstLines}
			held = 0
			if len(resp.Tasks) > 0 && resp.Tasks[0].Phase == PhaseTransform {
				held = resp.Tasks[0].Gen
			}
		}
		for range slots - len(resp.Tasks) {
			free <- struct{}{}
		}
		for _, task := range resp.Tasks {
			if task.Split < 0 || task.Split >= len(s.job.Splits) || !validLease(task.Lease) {
				return fmt.Errorf("the coordinator leased %s (lease %q) of a job with %d splits", task, task.Lease, len(s.job.Splits))
			}
			fit := fit
			g.Go(func() error {
				// The slot is free once the task's computing is over: a
				// transform task that is still writing out its parts
				// (a local file's fsync waits for the disk) leaves the
				// CPU to the next task.
				var once sync.Once
				computed := func() { once.Do(func() { free <- struct{}{} }) }
				defer computed()
				return s.runTask(ctx, fit, task, computed)
			})
		}
	}
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

// cancelStale cancels the running transform tasks of generation gen and
// earlier, which the coordinator abandoned: their reports will be
// refused.
func (w *Worker) cancelStale(gen int) {
	if gen <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for t, cancel := range w.running {
		if t.Phase == PhaseTransform && t.Gen <= gen {
			cancel()
		}
	}
}

func (w *Worker) heartbeatRequest(id string) *heartbeatRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	req := &heartbeatRequest{Worker: id}
	for t := range w.running {
		req.Tasks = append(req.Tasks, t)
	}
	if c := w.ctr[w.phase]; c != nil {
		req.Phase, req.Bytes, req.Rows = w.phase, c.bytes.Load(), c.rows.Load()
	}
	return req
}

// runTask runs one task and reports it. It calls computed once the
// task's computing is over (at the latest before the report), which frees
// its slot: the next lease need not wait for the writes or the report.
// Only a failed report (the coordinator is gone) is returned as an error:
// task failures are the coordinator's to decide on.
func (s *session) runTask(ctx context.Context, fit *fitResult, task taskID, computed func()) error {
	w := s.w
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
	t := &splitTask{job: s.job, fit: fit, split: s.job.Splits[task.Split], src: s.src, mem: w.opts.Mem, recyclers: w.recyclers, ctr: w.counters(task.Phase), computed: computed}
	var res taskResult
	var parts []stagedPart
	var err error
	switch {
	case task.Phase == PhaseFit:
		res, err = t.runFit(tctx, task.Validate)
	case task.Phase == PhaseTransform && fit == nil:
		err = errors.New("transform task without a model")
	case task.Phase == PhaseTransform:
		res, parts, err = t.runTransform(tctx, s.sink, stageID(s.job.RunID, task.Lease), task.Speculative)
	default:
		err = fmt.Errorf("unknown task phase %q", task.Phase)
	}
	computed()
	if ctx.Err() != nil {
		// The job is ending or this worker is stopping: tell the
		// coordinator the task is dropped, so that it need not wait for
		// the lease to expire. One try; the lease covers a lost message.
		s.drop(ctx, task, parts)
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		w.t.report(rctx, &reportRequest{Worker: s.id, Task: task, Error: "worker stopped: " + context.Cause(ctx).Error()})
		return nil
	}
	req := &reportRequest{Worker: s.id, Task: task}
	if err != nil {
		req.Error = truncate(err.Error(), maxReportError)
		req.DataError = isDataError(err)
		req.InvalidRow = errors.As(err, new(*parseError))
		req.Mispredicted = errors.As(err, new(*mispredictError))
		w.log.Warn("task failed", "task", task.String(), "error", err)
	} else {
		req.Result, req.Parts = &res, parts
	}
	resp, rerr := retry(ctx, w.log, w.opts.CoordinatorTimeout, "report", func(ctx context.Context) (*reportResponse, error) {
		return w.t.report(ctx, req)
	})
	switch {
	case rerr != nil && ctx.Err() == nil:
		return rerr
	case rerr == nil && !resp.Accepted:
		w.log.Warn("the coordinator refused the report; dropping the task's output", "task", task.String(), "reason", resp.Reason)
		s.drop(ctx, task, parts)
	}
	return nil
}

// drop discards what a task staged that will not be published.
func (s *session) drop(ctx context.Context, task taskID, parts []stagedPart) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, p := range parts {
		if err := s.sink.Discard(ctx, p.Staged); err != nil {
			s.w.log.Warn("could not discard a staged part", "task", task.String(), "key", p.Key, "error", err)
		}
	}
}

// maxReportError bounds the error text of a report.
const maxReportError = 64 << 10

// truncate cuts s to at most n bytes, saying so.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + " [truncated]"
}

// stageID is the stage of the parts of the attempt of run run under
// lease lease.
func stageID(run, lease string) string { return run + "-" + lease }
