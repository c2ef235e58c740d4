package pipeline

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/shardprep/shardprep/features"
)

// ProtocolVersion is the version of the coordinator protocol. A worker
// whose version differs is refused at Join.
const ProtocolVersion = 1

// Phase is the state of a job.
type Phase string

const (
	PhaseFit       Phase = "fit"
	PhaseTransform Phase = "transform"
	PhaseCommit    Phase = "commit"
	PhaseCommitted Phase = "committed"
	PhaseFailed    Phase = "failed"
)

// Task is one unit of work: one split in one phase.
type Task struct {
	Phase   Phase `json:"phase"`
	Split   int   `json:"split"`
	Attempt int   `json:"attempt"`
}

func (t Task) String() string {
	return fmt.Sprintf("%s split %d (attempt %d)", t.Phase, t.Split, t.Attempt)
}

// Protocol messages. Every request names its worker.
type (
	JoinRequest struct {
		Protocol int    `json:"protocol"`
		Worker   string `json:"worker"`
		Version  string `json:"version"`
		// Instance is random per worker process: a repeated join of the
		// same process keeps its name, another process asking for a
		// name in use gets a new one.
		Instance string `json:"instance,omitempty"`
	}
	JoinResponse struct {
		Protocol int  `json:"protocol"`
		Job      *Job `json:"job"`
		// Worker is the name the worker must use in every later request:
		// the name it asked for, or that name with "#N" appended when
		// another worker holds it.
		Worker string `json:"worker"`
		// HeartbeatMillis is how often the worker must heartbeat; a
		// worker silent for LeaseMillis loses its tasks.
		HeartbeatMillis int64 `json:"heartbeat_ms"`
		LeaseMillis     int64 `json:"lease_ms"`
	}
	LeaseRequest struct {
		Worker string `json:"worker"`
		Slots  int    `json:"slots"`   // tasks the worker can start now
		WaitMS int64  `json:"wait_ms"` // how long the call may wait for work
		// HaveModel says the worker already holds the model and first
		// lines of an earlier transform lease, so they need not be sent
		// again.
		HaveModel bool `json:"have_model,omitempty"`
	}
	LeaseResponse struct {
		State Phase  `json:"state"`
		Error string `json:"error,omitempty"` // why the job failed
		Tasks []Task `json:"tasks,omitempty"`
		// Model and FirstLines come with transform tasks, unless the
		// request said HaveModel.
		Model      *features.Model `json:"model,omitempty"`
		FirstLines []int64         `json:"first_lines,omitempty"`
	}
	ReportRequest struct {
		Worker string      `json:"worker"`
		Task   Task        `json:"task"`
		Result *taskResult `json:"result,omitempty"`
		Error  string      `json:"error,omitempty"`
		// DataError marks an error caused by the input: the job fails
		// without retrying the split elsewhere.
		DataError bool `json:"data_error,omitempty"`
	}
	ReportResponse struct {
		State Phase `json:"state"`
	}
	HeartbeatRequest struct {
		Worker string `json:"worker"`
		Tasks  []Task `json:"tasks"` // tasks the worker is running
		// Progress of the worker in Phase: input bytes read and rows
		// decoded so far.
		Phase Phase `json:"phase,omitempty"`
		Bytes int64 `json:"bytes"`
		Rows  int64 `json:"rows"`
	}
	HeartbeatResponse struct {
		State Phase  `json:"state"`
		Error string `json:"error,omitempty"`
	}
)

// Transport is how a worker talks to its coordinator: *Coordinator itself
// in one process, an HTTP client between hosts.
type Transport interface {
	Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error)
	Lease(ctx context.Context, req *LeaseRequest) (*LeaseResponse, error)
	Report(ctx context.Context, req *ReportRequest) (*ReportResponse, error)
	Heartbeat(ctx context.Context, req *HeartbeatRequest) (*HeartbeatResponse, error)
}

// CoordinatorOptions tune a coordinator; nil means defaults.
type CoordinatorOptions struct {
	LeaseTTL time.Duration // default 30s
	// Heartbeat is how often workers heartbeat; default LeaseTTL/4, at
	// most 1s.
	Heartbeat time.Duration
	// MaxAttempts bounds the attempts per task (failed or lost) before
	// the job fails; default 3. A data error fails the job at once.
	MaxAttempts int
	Logger      *slog.Logger
	// Now is the clock of leases and timings; default time.Now.
	Now func() time.Time
}

type taskState struct {
	task     Task
	state    int // pending, leased, done
	worker   string
	deadline time.Time
	result   *taskResult
	workers  []string // every worker that held it
	failedOn []string // workers on which an attempt failed
}

const (
	pending = iota
	leased
	done
)

type workerState struct {
	id        string
	instance  string
	joined    time.Time
	lastSeen  time.Time
	lastDone  time.Time
	progress  map[Phase][2]int64 // bytes and rows per phase, from heartbeats
	tasks     map[Task]bool
	done      int // tasks completed
	doneRows  int64
	doneBytes int64
	gone      bool // its lease expired and it has not been heard from since
	lost      bool // it lost a lease at least once
	informed  bool // it was told the job's final state
}

// splitQueue is a min-heap of pending split indices: tasks are handed out
// in input order, and a task returned to the pool goes before later ones.
type splitQueue []int

func (q splitQueue) Len() int           { return len(q) }
func (q splitQueue) Less(i, j int) bool { return q[i] < q[j] }
func (q splitQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *splitQueue) Push(x any)        { *q = append(*q, x.(int)) }
func (q *splitQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// Coordinator runs a job's phases and hands out tasks under leases. Its
// methods are the protocol (it is a Transport); Run drives the phases and
// commits.
type Coordinator struct {
	job  *Job
	sink Sink
	opts CoordinatorOptions
	log  *slog.Logger

	mu         sync.Mutex
	phase      Phase
	err        error
	tasks      []*taskState
	queue      splitQueue // pending tasks of the phase
	ndone      int        // tasks of the phase done
	doneBytes  int64      // input bytes and rows of the phase's done tasks
	doneRows   int64
	stats      *features.Stats
	fit        []taskResult
	results    []taskResult
	workers    map[string]*workerState
	reassigned []Reassignment
	changed    chan struct{} // closed and replaced on every change
	failed     chan struct{} // closed when the job fails
	timings    Timings
	started    time.Time
	phaseStart time.Time
}

// Reassignment records a task taken from a worker that stopped answering.
type Reassignment struct {
	Phase  Phase  `json:"phase"`
	Split  int    `json:"split"`
	From   string `json:"from"`
	Reason string `json:"reason"`
}

// NewCoordinator starts a job in its first phase: fit, or transform when
// the job carries a model.
func NewCoordinator(job *Job, sink Sink, opts *CoordinatorOptions) *Coordinator {
	c := &Coordinator{job: job, sink: sink, workers: map[string]*workerState{}, changed: make(chan struct{}), failed: make(chan struct{})}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.LeaseTTL <= 0 {
		c.opts.LeaseTTL = 30 * time.Second
	}
	if c.opts.Heartbeat <= 0 {
		c.opts.Heartbeat = min(time.Second, c.opts.LeaseTTL/4)
	}
	if c.opts.MaxAttempts <= 0 {
		c.opts.MaxAttempts = 3
	}
	if c.opts.Now == nil {
		c.opts.Now = time.Now
	}
	c.log = c.opts.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.started = c.opts.Now()
	c.phaseStart = c.started
	if job.Model != nil {
		c.startPhase(PhaseTransform)
	} else {
		c.stats = features.NewStats(job.Spec)
		c.startPhase(PhaseFit)
	}
	return c
}

// startPhase must be called with mu held (or before the coordinator is shared).
func (c *Coordinator) startPhase(p Phase) {
	now := c.opts.Now()
	switch c.phase {
	case PhaseFit:
		c.timings.FitMS = now.Sub(c.phaseStart).Milliseconds()
	case PhaseTransform:
		c.timings.TransformMS = now.Sub(c.phaseStart).Milliseconds()
	}
	c.phaseStart = now
	c.phase = p
	// The commit keeps the transform tasks: the manifest names the
	// workers of each part.
	if p == PhaseFit || p == PhaseTransform {
		c.ndone, c.doneBytes, c.doneRows = 0, 0, 0
		c.tasks = make([]*taskState, len(c.job.Splits))
		c.queue = make(splitQueue, len(c.job.Splits))
		for i := range c.tasks {
			c.tasks[i] = &taskState{task: Task{Phase: p, Split: i}}
			c.queue[i] = i // sorted: already a heap
		}
	}
	c.notify()
}

func (c *Coordinator) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Coordinator) fail(err error) {
	if c.phase == PhaseFailed || c.phase == PhaseCommitted {
		return
	}
	c.err = err
	c.phase = PhaseFailed
	close(c.failed)
	c.notify()
}

// Failed returns a channel closed when the job fails.
func (c *Coordinator) Failed() <-chan struct{} { return c.failed }

func (c *Coordinator) errText() string {
	if c.err == nil {
		return ""
	}
	return c.err.Error()
}

// seen returns the state of worker id, created if new, and records that
// it was heard from now: a worker thought gone is alive again.
func (c *Coordinator) seen(id string) *workerState {
	now := c.opts.Now()
	w := c.workers[id]
	if w == nil {
		w = &workerState{id: id, joined: now, tasks: map[Task]bool{}, progress: map[Phase][2]int64{}}
		c.workers[id] = w
	}
	w.lastSeen = now
	w.gone = false
	return w
}

// final marks w as told the job's state, when that state is final.
func (c *Coordinator) final(w *workerState, p Phase) {
	if p == PhaseCommitted || p == PhaseFailed {
		w.informed = true
	}
}

// ProtocolError is a request the coordinator cannot accept as sent: a
// worker of another protocol version, a nameless worker, a malformed
// report. Retrying it cannot help.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return e.Msg }

// Join registers a worker and returns the job (without its model, which
// comes with the first transform lease).
func (c *Coordinator) Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error) {
	if req.Protocol != ProtocolVersion {
		return nil, &ProtocolError{fmt.Sprintf("worker %s speaks protocol %d, coordinator %d (shardprep %s): run the same shardprep version everywhere",
			req.Worker, req.Protocol, ProtocolVersion, Version)}
	}
	if req.Worker == "" {
		return nil, &ProtocolError{"worker has no name"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := req.Worker
	for n := 2; ; n++ {
		w := c.workers[id]
		if w == nil || w.instance == req.Instance {
			break
		}
		id = req.Worker + "#" + strconv.Itoa(n)
	}
	w := c.seen(id)
	w.instance = req.Instance
	if id != req.Worker {
		c.log.Warn("worker name in use; renamed", "asked", req.Worker, "worker", id)
	}
	c.log.Info("worker joined", "worker", id, "version", req.Version, "phase", string(c.phase))
	job := *c.job
	job.Model = nil
	job.FirstLines = nil
	return &JoinResponse{Protocol: ProtocolVersion, Job: &job, Worker: id,
		HeartbeatMillis: c.opts.Heartbeat.Milliseconds(), LeaseMillis: c.opts.LeaseTTL.Milliseconds()}, nil
}

// otherCanTake reports whether a live worker other than id, on which t
// has not failed, could take t: then t should go to it rather than back
// to id.
func (c *Coordinator) otherCanTake(t *taskState, id string, now time.Time) bool {
	for _, w := range c.workers {
		if w.id != id && !w.gone && now.Sub(w.lastSeen) <= c.opts.LeaseTTL && !c.failedOn(t, w.id) {
			return true
		}
	}
	return false
}

// pop takes up to n pending tasks for worker id, lowest split first,
// passing over tasks that failed on id while another live worker could
// take them.
func (c *Coordinator) pop(id string, n int, now time.Time) []*taskState {
	var got, skipped []*taskState
	for len(got) < n && c.queue.Len() > 0 {
		t := c.tasks[heap.Pop(&c.queue).(int)]
		if t.state != pending {
			continue // a stale entry: taken or done since it was queued
		}
		if c.failedOn(t, id) && c.otherCanTake(t, id, now) {
			skipped = append(skipped, t)
			continue
		}
		got = append(got, t)
	}
	for _, t := range skipped {
		heap.Push(&c.queue, t.task.Split)
	}
	return got
}

func (c *Coordinator) failedOn(t *taskState, id string) bool {
	for _, f := range t.failedOn {
		if f == id {
			return true
		}
	}
	return false
}

// requeue returns a task to the pool.
func (c *Coordinator) requeue(t *taskState) {
	t.state, t.worker = pending, ""
	heap.Push(&c.queue, t.task.Split)
}

// Lease hands the worker up to Slots pending tasks of the current phase,
// waiting up to WaitMS for some to become available. A task whose attempt
// failed on this worker goes to another live worker if there is one.
func (c *Coordinator) Lease(ctx context.Context, req *LeaseRequest) (*LeaseResponse, error) {
	deadline := time.Now().Add(time.Duration(req.WaitMS) * time.Millisecond)
	for {
		c.mu.Lock()
		w := c.seen(req.Worker)
		now := w.lastSeen
		resp := &LeaseResponse{State: c.phase, Error: c.errText()}
		if c.phase == PhaseFit || c.phase == PhaseTransform {
			for _, t := range c.pop(req.Worker, req.Slots, now) {
				t.state, t.worker, t.deadline = leased, req.Worker, now.Add(c.opts.LeaseTTL)
				t.task.Attempt++
				t.workers = append(t.workers, req.Worker)
				w.tasks[t.task] = true
				resp.Tasks = append(resp.Tasks, t.task)
				c.log.Debug("task leased", "task", t.task.String(), "worker", req.Worker)
			}
			if len(resp.Tasks) > 0 && c.phase == PhaseTransform && !req.HaveModel {
				resp.Model = c.job.Model
				resp.FirstLines = c.job.FirstLines
			}
		}
		c.final(w, resp.State)
		ch := c.changed
		c.mu.Unlock()
		if len(resp.Tasks) > 0 || resp.State == PhaseCommitted || resp.State == PhaseFailed {
			return resp, nil
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return resp, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ch:
			t.Stop()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// Report records a finished (or failed) task. A result is accepted from
// any worker that ran the task, even after its lease passed to another
// (parts are deterministic, so both wrote the same bytes); a second result
// is ignored. A failure counts only from the task's current holder and
// attempt: a stale one is ignored. A data error fails the job at once;
// another error returns the task to the pool, or fails the job after
// MaxAttempts.
func (c *Coordinator) Report(ctx context.Context, req *ReportRequest) (*ReportResponse, error) {
	if req.Error == "" && req.Result == nil {
		return nil, &ProtocolError{"report without result or error"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.seen(req.Worker)
	delete(w.tasks, req.Task)
	resp := func() (*ReportResponse, error) {
		c.final(w, c.phase)
		return &ReportResponse{State: c.phase}, nil
	}
	if req.Task.Phase != c.phase || req.Task.Split < 0 || req.Task.Split >= len(c.tasks) {
		return resp() // stale: a phase already over
	}
	t := c.tasks[req.Task.Split]
	if t.state == done {
		return resp() // done twice: parts are identical
	}
	if req.Error != "" {
		if req.DataError {
			c.log.Error("data error; the job fails", "task", req.Task.String(), "worker", req.Worker, "error", req.Error)
			c.fail(errors.New(req.Error))
			return resp()
		}
		if t.state != leased || t.worker != req.Worker || t.task.Attempt != req.Task.Attempt {
			return resp() // stale: the task has moved on
		}
		c.log.Warn("task failed", "task", req.Task.String(), "worker", req.Worker, "error", req.Error)
		t.failedOn = append(t.failedOn, req.Worker)
		if t.task.Attempt >= c.opts.MaxAttempts {
			c.fail(fmt.Errorf("%s failed %d times, last on %s: %s", t.task, t.task.Attempt, req.Worker, req.Error))
			return resp()
		}
		c.reassigned = append(c.reassigned, Reassignment{Phase: t.task.Phase, Split: t.task.Split, From: req.Worker, Reason: "failed: " + req.Error})
		c.requeue(t)
		c.notify()
		return resp()
	}
	if t.state == leased {
		if h := c.workers[t.worker]; h != nil && h != w {
			delete(h.tasks, t.task) // its holder's copy is now a duplicate
		}
	}
	c.log.Debug("task done", "task", req.Task.String(), "worker", req.Worker)
	t.state, t.result = done, req.Result
	c.ndone++
	c.doneBytes += req.Result.BytesRead
	c.doneRows += req.Result.RowsIn
	w.done++
	w.lastDone = c.opts.Now()
	if c.phase == PhaseTransform {
		w.doneRows += req.Result.RowsIn
		w.doneBytes += req.Result.BytesRead
	}
	if c.phase == PhaseFit && req.Result.Stats != nil {
		if err := c.stats.Merge(req.Result.Stats); err != nil {
			c.fail(fmt.Errorf("merging fit statistics of split %d: %w", req.Task.Split, err))
			return resp()
		}
	}
	c.advance()
	return resp()
}

// advance moves to the next phase when every task of this one is done.
func (c *Coordinator) advance() {
	if c.ndone < len(c.tasks) {
		c.notify()
		return
	}
	results := make([]taskResult, len(c.tasks))
	for i, t := range c.tasks {
		results[i] = *t.result
		results[i].Stats = nil
	}
	switch c.phase {
	case PhaseFit:
		c.fit = results
		if c.stats.Rows() == 0 {
			c.fail(c.emptyInputError(results))
			return
		}
		m, err := c.stats.Model()
		if err != nil {
			c.fail(err)
			return
		}
		c.job.Model = m
		// Number lines across splits of each object for error messages.
		c.job.FirstLines = make([]int64, len(c.job.Splits))
		next := map[int]int64{}
		for i, s := range c.job.Splits {
			if _, ok := next[s.Object]; !ok {
				next[s.Object] = 1
			}
			c.job.FirstLines[i] = next[s.Object]
			next[s.Object] += results[i].Lines
		}
		c.startPhase(PhaseTransform)
	case PhaseTransform:
		c.results = results
		var rows, rejected int64
		for _, r := range results {
			rows += r.RowsIn
			rejected += r.Rejected
		}
		if rows+rejected == 0 {
			c.fail(c.emptyInputError(results))
			return
		}
		c.startPhase(PhaseCommit)
	}
}

func (c *Coordinator) emptyInputError(results []taskResult) error {
	var rejected int64
	for _, r := range results {
		rejected += r.Rejected
	}
	if rejected > 0 {
		return fmt.Errorf("no valid rows in the input: all %d rows were rejected (see %s/)", rejected, RejectedFolder)
	}
	return fmt.Errorf("no rows in the input: its %d objects hold only blank lines", len(c.job.Objects))
}

// Heartbeat extends the worker's leases and records its progress.
func (c *Coordinator) Heartbeat(ctx context.Context, req *HeartbeatRequest) (*HeartbeatResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.seen(req.Worker)
	now := w.lastSeen
	if req.Phase != "" {
		w.progress[req.Phase] = [2]int64{req.Bytes, req.Rows}
	}
	for _, task := range req.Tasks {
		if task.Phase != c.phase || task.Split < 0 || task.Split >= len(c.tasks) {
			continue
		}
		if t := c.tasks[task.Split]; t.state == leased && t.worker == req.Worker {
			t.deadline = now.Add(c.opts.LeaseTTL)
		}
	}
	c.final(w, c.phase)
	return &HeartbeatResponse{State: c.phase, Error: c.errText()}, nil
}

// expire returns leased tasks whose worker went silent to the pool.
func (c *Coordinator) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	changed := false
	for _, t := range c.tasks {
		if t.state == leased && now.After(t.deadline) {
			c.log.Warn("lease expired; reassigning", "task", t.task.String(), "worker", t.worker)
			c.reassigned = append(c.reassigned, Reassignment{Phase: t.task.Phase, Split: t.task.Split, From: t.worker, Reason: "lease expired"})
			if w := c.workers[t.worker]; w != nil {
				w.gone, w.lost = true, true
				delete(w.tasks, t.task)
			}
			if t.task.Attempt >= c.opts.MaxAttempts {
				c.fail(fmt.Errorf("%s lost %d times; last worker %s stopped answering", t.task, t.task.Attempt, t.worker))
				return
			}
			c.requeue(t)
			changed = true
		}
	}
	if changed {
		c.notify()
	}
}

// Snapshot is a point-in-time view of a job's progress.
type Snapshot struct {
	Phase       Phase
	SplitsDone  int
	SplitsTotal int
	BytesDone   int64 // input bytes read in this phase (finished tasks and live workers)
	BytesTotal  int64
	Rows        int64
	Workers     int
}

// Snapshot returns the job's progress.
func (c *Coordinator) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Snapshot{Phase: c.phase, SplitsTotal: len(c.tasks), SplitsDone: c.ndone}
	for _, o := range c.job.Objects {
		s.BytesTotal += o.Size
	}
	doneBytes, doneRows := c.doneBytes, c.doneRows
	var liveBytes, liveRows int64
	for _, w := range c.workers {
		if !w.gone {
			s.Workers++
		}
		p := w.progress[c.phase]
		liveBytes += p[0]
		liveRows += p[1]
	}
	// Heartbeats lag behind reports: show whichever is further along.
	s.BytesDone, s.Rows = max(doneBytes, liveBytes), max(doneRows, liveRows)
	if s.BytesDone > s.BytesTotal {
		s.BytesDone = s.BytesTotal
	}
	return s
}

// wait returns when the job is ready to commit, or has ended.
func (c *Coordinator) wait(ctx context.Context) (Phase, error) {
	for {
		c.mu.Lock()
		p, ch := c.phase, c.changed
		c.mu.Unlock()
		if p == PhaseCommit || p == PhaseCommitted || p == PhaseFailed {
			return p, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return p, ctx.Err()
		}
	}
}

// Run drives the job: it expires leases, waits for the transform phase to
// finish, then commits (model, manifest, then _SUCCESS in each split
// folder). On failure or cancellation it removes every part the job may
// have written and returns the cause.
func (c *Coordinator) Run(ctx context.Context) (*Result, error) {
	tick := time.NewTicker(c.opts.LeaseTTL / 4)
	defer tick.Stop()
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			select {
			case <-tick.C:
				c.expire()
			case <-waitCtx.Done():
				return
			}
		}
	}()
	phase, err := c.wait(waitCtx)
	if err != nil {
		c.mu.Lock()
		c.fail(fmt.Errorf("interrupted: %w", err))
		c.mu.Unlock()
	}
	if phase == PhaseCommit && err == nil {
		res, err := c.commit(ctx)
		c.mu.Lock()
		if err != nil {
			c.fail(fmt.Errorf("commit: %w", err))
		} else {
			c.phase = PhaseCommitted
			c.notify()
		}
		c.mu.Unlock()
		if err == nil {
			return res, nil
		}
	}
	c.mu.Lock()
	cause := c.err
	c.mu.Unlock()
	c.drain(context.WithoutCancel(ctx))
	c.cleanup(context.WithoutCancel(ctx))
	return nil, cause
}

// drain waits, at most one lease period, until no worker is running a
// task, so that no part is written after the cleanup.
func (c *Coordinator) drain(ctx context.Context) {
	deadline := time.NewTimer(c.opts.LeaseTTL)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		busy := false
		now := c.opts.Now()
		for _, w := range c.workers {
			if len(w.tasks) > 0 && !w.gone && now.Sub(w.lastSeen) < c.opts.LeaseTTL {
				busy = true
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if !busy {
			return
		}
		select {
		case <-ch:
		case <-time.After(c.opts.Heartbeat):
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// cleanup deletes every key the job may have written. Part names are
// deterministic, so no record of what was written is needed.
func (c *Coordinator) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, k := range c.outputKeys() {
		if err := c.sink.Delete(ctx, k); err != nil {
			c.log.Warn("could not remove a part of the failed job", "key", k, "error", err)
		}
	}
}

func (c *Coordinator) outputKeys() []string {
	var keys []string
	folders := append(splitNames(c.job.Spec), RejectedFolder)
	for _, f := range folders {
		keys = append(keys, f+"/"+SuccessName)
	}
	keys = append(keys, ManifestKey, ModelKey)
	for _, f := range folders {
		for i := range c.job.Splits {
			keys = append(keys, PartKey(f, i))
		}
	}
	return keys
}

func (c *Coordinator) workerSummaries() []WorkerSummary {
	var out []WorkerSummary
	for _, w := range c.workers {
		out = append(out, WorkerSummary{Worker: w.id, Tasks: w.done, Rows: w.doneRows, Bytes: w.doneBytes, Lost: w.lost})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Worker < out[j].Worker })
	return out
}

// WaitInformed waits, at most timeout, until every worker has learned
// the job's outcome from the coordinator, so that it can exit with the
// right status. Workers in this process ("coordinator", "local") and
// workers silent for a lease period (gone) are not waited for.
func (c *Coordinator) WaitInformed(ctx context.Context, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		waiting := false
		now := c.opts.Now()
		for _, w := range c.workers {
			if !w.informed && !w.gone && w.id != "coordinator" && w.id != "local" && now.Sub(w.lastSeen) <= c.opts.LeaseTTL {
				waiting = true
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if !waiting {
			return
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// WorkerStatus is one worker's share of a job so far.
type WorkerStatus struct {
	Worker  string
	Tasks   int   // tasks completed, both phases
	Rows    int64 // valid rows transformed
	Bytes   int64 // input bytes transformed
	Running int   // tasks it holds now
	Lost    bool  // it lost a lease at least once
	Gone    bool  // it is silent now
	// Active is the time from its join to its last completed task.
	Active time.Duration
}

// Workers returns every worker's status, by name.
func (c *Coordinator) Workers() []WorkerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]WorkerStatus, 0, len(c.workers))
	for _, w := range c.workers {
		s := WorkerStatus{Worker: w.id, Tasks: w.done, Rows: w.doneRows, Bytes: w.doneBytes, Running: len(w.tasks), Lost: w.lost, Gone: w.gone}
		if w.done > 0 {
			s.Active = w.lastDone.Sub(w.joined)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Worker < out[j].Worker })
	return out
}
