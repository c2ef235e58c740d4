package pipeline

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// CoordinatorOptions tune a coordinator; nil means defaults.
type CoordinatorOptions struct {
	// Model, if set, is used instead of fitting one: the job starts in
	// the transform phase.
	Model    *features.Model
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

	// Workers is how many tasks a worker in the coordinator's own process
	// runs at once, with buffers from Mem; 0 means none.
	Workers int
	Mem     memory.Allocator
	// Progress, if set, is called about every ProgressEvery (default 1s)
	// while Run runs, and once at the end.
	Progress      func(Snapshot)
	ProgressEvery time.Duration
	// GrantCalls, if set, counts the credential calls made so far, for
	// the manifest and the metrics.
	GrantCalls func() int64

	// twoPass fits on every split before the transform, never on a
	// sample (see speculate.go): the path a sample's fit must match.
	twoPass bool
}

// Names of the in-process worker: of a coordinator that also works, and
// of an in-process run.
const (
	coordinatorWorker = "coordinator"
	localWorker       = "local"
)

type taskState struct {
	task     taskID // with its current (or accepted) attempt and lease
	state    int    // pending, leased, done
	worker   string
	deadline time.Time
	result   *taskResult
	parts    []stagedPart // what the accepted transform attempt staged
	workers  []string     // every worker that held it
	failedOn []string     // workers on which an attempt failed
	attempt  int          // its current attempt's index in Coordinator.attempts; -1: none
}

const (
	pending = iota
	leased
	done
)

type workerState struct {
	id        string
	instance  string
	inProcess bool // a worker the coordinator runs itself
	joined    time.Time
	lastSeen  time.Time
	lastDone  time.Time
	progress  map[Phase][2]int64 // bytes and rows per phase, from heartbeats
	tasks     map[taskID]bool
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

// Coordinator runs a job's phases and hands out its tasks under leases to
// workers: those that reach it through a Handler, and its own. Run drives
// the phases and commits.
type Coordinator struct {
	job  *Job
	sink Sink
	opts CoordinatorOptions
	log  *slog.Logger

	// own are the workers Run runs in this process; their instances are
	// marked in-process when they join.
	own       []*Worker
	inProcess map[string]bool

	mu         sync.Mutex
	phase      Phase
	err        error
	fit        *fitResult // the model, once given or fitted
	modelGiven bool
	tasks      []*taskState
	queue      splitQueue // pending tasks of the phase
	ndone      int        // tasks of the phase done
	bad        *badRow    // the earliest invalid row reported (see firstbad.go)
	doneBytes  int64      // input bytes and rows of the phase's done tasks
	doneRows   int64
	stats      *features.Stats
	fitPass    int // the fit pass running, from 2 on; 0 for the first
	gen        int // the transform generation running or last run (taskID.Gen)
	stale      int // the last transform generation abandoned
	// A fit on a sample (speculate.go): what the manifest tells of it,
	// the fit tasks and statistics of the sample while the transform
	// verifies it, and the sample's model.
	sample      *fitSample
	sampleTasks []*taskState
	sampleStats *features.Stats
	guess       *features.Model
	results     []taskResult
	workers     map[string]*workerState
	reassigned  []reassignment
	// written are the keys the commit wrote or began to: what the
	// cleanup of a failed commit removes, last first. The commit's
	// writers append to it, under writtenMu, and the goroutine of Run
	// cleans up after they have ended.
	writtenMu  sync.Mutex
	written    []string
	changed    chan struct{} // closed and replaced on every change
	failed     chan struct{} // closed when the job fails
	timings    phaseTimings
	started    time.Time
	phaseStart time.Time

	// What the manifest and the metrics tell beyond the counts
	// (record.go, metrics.go).
	attempts   []taskAttempt
	columns    *features.ColumnStats
	rejections rejectSummary
	expired    int64 // leases that expired
	retried    int64 // attempts that failed or expired and were retried
	fitDone    int   // fit tasks done, kept past the fit phase
}

// NewCoordinator starts a job in its first phase: fit, or transform when
// opts gives a model, which must fit the job's spec. The job's output goes
// to sink. src is read by the coordinator's own worker, if opts asks for
// one; it may be nil otherwise.
func NewCoordinator(job *Job, src Source, sink Sink, opts *CoordinatorOptions) (*Coordinator, error) {
	return newCoordinator(job, src, sink, opts, coordinatorWorker)
}

// newCoordinator is NewCoordinator, naming its own worker self.
func newCoordinator(job *Job, src Source, sink Sink, opts *CoordinatorOptions, self string) (*Coordinator, error) {
	c := &Coordinator{job: job, sink: sink, workers: map[string]*workerState{}, inProcess: map[string]bool{},
		changed: make(chan struct{}), failed: make(chan struct{})}
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
	if c.opts.Workers > 0 {
		if src == nil {
			return nil, errors.New("the coordinator's own worker has no input source")
		}
		c.attach(newWorker(c, func(context.Context, *Job) (Source, Sink, error) { return src, sink, nil },
			&WorkerOptions{ID: self, Slots: c.opts.Workers, Mem: c.opts.Mem, Logger: c.log}))
	}
	c.started = c.opts.Now()
	c.phaseStart = c.started
	if m := c.opts.Model; m != nil {
		if err := m.Check(job.Spec); err != nil {
			return nil, err
		}
		c.fit, c.modelGiven = &fitResult{model: m}, true
		c.startPhase(PhaseTransform)
	} else {
		c.stats = features.NewStats(job.Spec)
		c.planSample()
		c.startPhase(PhaseFit)
	}
	return c, nil
}

// attach adds a worker that Run runs in this process.
func (c *Coordinator) attach(w *Worker) {
	c.own = append(c.own, w)
	c.inProcess[w.instance] = true
}

// startPhase must be called with mu held (or before the coordinator is shared).
func (c *Coordinator) startPhase(p Phase) {
	now := c.opts.Now()
	switch c.phase {
	case PhaseFit:
		c.timings.FitMS += now.Sub(c.phaseStart).Milliseconds()
	case PhaseTransform:
		c.timings.TransformMS += now.Sub(c.phaseStart).Milliseconds()
	}
	c.phaseStart = now
	c.phase = p
	// The commit keeps the transform tasks: the manifest names the
	// workers of each part.
	if p == PhaseFit || p == PhaseTransform {
		n := len(c.job.Splits)
		if p == PhaseFit && c.sampling() {
			n = c.sample.Splits
		}
		if p == PhaseTransform {
			c.gen++
		}
		c.ndone, c.doneBytes, c.doneRows = 0, 0, 0
		c.tasks = make([]*taskState, n)
		c.queue = make(splitQueue, n)
		for i := range c.tasks {
			c.tasks[i] = &taskState{task: taskID{Phase: p, Split: i}, attempt: -1}
			if p == PhaseFit {
				c.tasks[i].task.Pass = c.fitPass
			} else {
				c.tasks[i].task.Gen, c.tasks[i].task.Speculative = c.gen, c.speculating()
			}
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
		w = &workerState{id: id, joined: now, tasks: map[taskID]bool{}, progress: map[Phase][2]int64{}}
		c.workers[id] = w
	}
	w.lastSeen = now
	w.gone = false
	return w
}

// final marks w as told the job's state, when that state is final, and
// notifies the change (WaitInformed waits for it).
func (c *Coordinator) final(w *workerState, p Phase) {
	if (p == PhaseCommitted || p == PhaseFailed) && !w.informed {
		w.informed = true
		c.notify()
	}
}

// join registers a worker and returns the job (without the fit result,
// which comes with the first transform lease).
func (c *Coordinator) join(ctx context.Context, req *joinRequest) (*joinResponse, error) {
	if req.Protocol != ProtocolVersion {
		return nil, &protocolError{fmt.Sprintf("worker %s speaks protocol %d, coordinator %d (shardprep %s): run the same shardprep version everywhere",
			req.Worker, req.Protocol, ProtocolVersion, Version)}
	}
	if req.Worker == "" {
		return nil, &protocolError{"worker has no name"}
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
	w.inProcess = c.inProcess[req.Instance]
	if id != req.Worker {
		c.log.Warn("worker name in use; renamed", "asked", req.Worker, "worker", id)
	}
	c.log.Info("worker joined", "worker", id, "version", req.Version, "phase", string(c.phase))
	return &joinResponse{Protocol: ProtocolVersion, Job: c.job, Worker: id,
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
		if t.state != pending || !c.needed(t.task.Split) {
			continue // a stale entry, or one an earlier invalid row made moot
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

// newLeaseID draws a lease id: 16 hex digits.
func newLeaseID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requeue returns a task to the pool.
func (c *Coordinator) requeue(t *taskState) {
	t.state, t.worker = pending, ""
	heap.Push(&c.queue, t.task.Split)
}

// lease hands the worker up to Slots pending tasks of the current phase,
// waiting up to WaitMS for some to become available. A task whose attempt
// failed on this worker goes to another live worker if there is one.
func (c *Coordinator) lease(ctx context.Context, req *leaseRequest) (*leaseResponse, error) {
	deadline := c.opts.Now().Add(time.Duration(req.WaitMS) * time.Millisecond)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	expired := false
	for {
		resp, changed := c.tryLease(req)
		if len(resp.Tasks) > 0 || resp.State == PhaseCommitted || resp.State == PhaseFailed || expired {
			return resp, nil
		}
		wait := deadline.Sub(c.opts.Now())
		if wait <= 0 {
			return resp, nil
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-changed:
		case <-timer.C:
			expired = true
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// tryLease leases what it can now; it returns the channel closed at the
// next change.
func (c *Coordinator) tryLease(req *leaseRequest) (*leaseResponse, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.seen(req.Worker)
	now := w.lastSeen
	resp := &leaseResponse{State: c.phase, Error: c.errText()}
	if c.phase == PhaseFit || c.phase == PhaseTransform {
		for _, t := range c.pop(req.Worker, req.Slots, now) {
			t.state, t.worker, t.deadline = leased, req.Worker, now.Add(c.opts.LeaseTTL)
			t.task.Attempt++
			t.task.Lease = newLeaseID()
			t.workers = append(t.workers, req.Worker)
			c.leased(t, req.Worker, now)
			w.tasks[t.task] = true
			resp.Tasks = append(resp.Tasks, t.task)
			c.log.Debug("task leased", "task", t.task.String(), "worker", req.Worker)
		}
		if len(resp.Tasks) > 0 && (c.phase == PhaseTransform && req.HaveModel != c.gen || c.phase == PhaseFit && c.fit != nil) {
			resp.Model, resp.FirstLines = c.fit.model, c.fit.firstLines
		}
	}
	resp.Stale = c.stale
	c.final(w, resp.State)
	return resp, c.changed
}

// report records a finished (or failed) task. A report is taken only
// from the worker that holds the task's live lease, for that lease and
// attempt, once: the same report again (its answer was lost) is accepted
// without counting twice; any other is refused, and the parts it staged
// for this run are discarded. A data error fails the job at once; another
// error returns the task to the pool, or fails the job after MaxAttempts.
func (c *Coordinator) report(ctx context.Context, req *reportRequest) (*reportResponse, error) {
	if err := c.checkReport(req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	resp, drop := c.reportLocked(req)
	c.mu.Unlock()
	c.discard(ctx, drop)
	return resp, nil
}

// reportLocked takes or refuses a checked report; it returns the answer
// and the staged parts to discard. mu must be held.
func (c *Coordinator) reportLocked(req *reportRequest) (*reportResponse, []stagedPart) {
	w := c.seen(req.Worker)
	delete(w.tasks, req.Task)
	resp := &reportResponse{Accepted: true}
	if req.Task.Split >= len(c.tasks) {
		// Only the fit of a sample has fewer tasks than splits.
		resp.Accepted, resp.Reason, resp.State = false, "the job runs no "+req.Task.String(), c.phase
		c.log.Warn("report refused", "task", req.Task.String(), "worker", req.Worker, "reason", resp.Reason)
		return resp, c.ownStages(req)
	}
	t := c.tasks[req.Task.Split]
	var drop []stagedPart
	switch reason := c.refusal(t, req); {
	case reason != "":
		c.log.Warn("report refused", "task", req.Task.String(), "worker", req.Worker, "reason", reason)
		resp.Accepted, resp.Reason = false, reason
		if t.task.Lease != req.Task.Lease { // not the stages of a live or accepted attempt
			drop = c.ownStages(req)
		}
	case t.state == done:
		// the accepted report again: its answer was lost
	case req.Error != "":
		c.taskFailed(t, req)
	default:
		c.taskDone(t, w, req)
	}
	resp.State = c.phase
	c.final(w, c.phase)
	return resp, drop
}

// refusal says why a report of task t cannot be taken, or "" when it
// can: it must come from the holder of t's live lease, for that lease
// and attempt, while the job is in t's phase; or repeat the accepted
// result.
func (c *Coordinator) refusal(t *taskState, req *reportRequest) string {
	switch {
	case t.task.Phase != req.Task.Phase:
		return fmt.Sprintf("the %s phase is over", req.Task.Phase)
	case t.task.Pass != req.Task.Pass:
		return fmt.Sprintf("fit pass %d is over", max(req.Task.Pass, 1))
	case t.task.Gen != req.Task.Gen:
		return fmt.Sprintf("transform generation %d is over", req.Task.Gen)
	case t.worker != req.Worker || t.task.Lease != req.Task.Lease || t.task.Attempt != req.Task.Attempt:
		return "the worker holds no live lease " + req.Task.Lease + " on " + req.Task.String()
	case t.state == done && req.Error == "":
		return ""
	case t.state == done:
		return "the task is done"
	case t.state != leased:
		return "the lease lapsed"
	case c.phase != t.task.Phase:
		return "the job is " + string(c.phase)
	}
	return ""
}

// ownStages returns the parts of req staged under its own lease in this
// run: those a refused report may have left.
func (c *Coordinator) ownStages(req *reportRequest) []stagedPart {
	var own []stagedPart
	want := stageID(c.job.RunID, req.Task.Lease)
	for _, p := range req.Parts {
		var d stagedDesc
		if json.Unmarshal(p.Staged, &d) == nil && d.Stage == want && req.Task.Lease != "" {
			own = append(own, p)
		}
	}
	return own
}

// discard discards staged parts, logging failures: the job's last sweep
// of its stages removes what is left.
func (c *Coordinator) discard(ctx context.Context, parts []stagedPart) {
	for _, p := range parts {
		if err := c.sink.Discard(ctx, p.Staged); err != nil {
			c.log.Warn("could not discard a refused attempt's part", "key", p.Key, "error", err)
		}
	}
}

// taskFailed handles a report of a failed attempt at t.
func (c *Coordinator) taskFailed(t *taskState, req *reportRequest) {
	if req.Mispredicted {
		c.mispredicted(t, req)
		return
	}
	if req.InvalidRow {
		c.invalidRow(t, req)
		return
	}
	if req.DataError {
		c.log.Error("data error; the job fails", "task", req.Task.String(), "worker", req.Worker, "error", req.Error)
		c.fail(errors.New(req.Error))
		return
	}
	c.log.Warn("task failed", "task", req.Task.String(), "worker", req.Worker, "error", req.Error)
	c.ended(t, attemptOutcome(req.Error))
	t.failedOn = append(t.failedOn, req.Worker)
	if t.task.Attempt >= c.opts.MaxAttempts {
		c.fail(fmt.Errorf("%s failed %d times, last on %s: %s", t.task, t.task.Attempt, req.Worker, req.Error))
		return
	}
	c.reassigned = append(c.reassigned, reassignment{Phase: t.task.Phase, Split: t.task.Split, From: req.Worker, Reason: "failed: " + req.Error})
	c.retried++
	c.requeue(t)
	c.notify()
}

// taskDone records the result of t that worker w reported.
func (c *Coordinator) taskDone(t *taskState, w *workerState, req *reportRequest) {
	c.log.Debug("task done", "task", req.Task.String(), "worker", req.Worker)
	t.state, t.result, t.parts = done, req.Result, req.Parts
	c.ended(t, attemptDone)
	if c.bad != nil {
		// The job fails with an invalid row: this task only tells
		// whether its split holds an earlier one.
		c.settleInvalidRow()
		return
	}
	if err := c.recordResult(t.task.Split, t.result); err != nil {
		c.fail(err)
		return
	}
	c.ndone++
	c.doneBytes += req.Result.BytesRead
	c.doneRows += req.Result.RowsIn
	w.done++
	w.lastDone = c.opts.Now()
	if c.phase == PhaseTransform {
		w.doneRows += req.Result.RowsIn
		w.doneBytes += req.Result.BytesRead
	}
	if c.phase == PhaseFit {
		c.fitDone++
	}
	if (c.phase == PhaseFit || t.task.Speculative) && req.Result.Stats != nil {
		if err := c.stats.Merge(req.Result.Stats); err != nil {
			c.fail(fmt.Errorf("merging fit statistics of split %d: %w", req.Task.Split, err))
			return
		}
	}
	c.advance()
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
		if c.sampling() {
			c.sampleFitted(results)
			return
		}
		if c.stats.Rows() == 0 {
			c.fail(c.emptyInputError(results))
			return
		}
		m, err := c.stats.Model()
		if err != nil {
			c.fail(err)
			return
		}
		c.fit = &fitResult{model: m, firstLines: firstLines(c.job.Splits, results)}
		if total, done := m.Passes(); done < total {
			// The next pass fits the stages that need the ones fitted.
			c.stats, c.fitPass = m.NextStats(), done+1
			c.startPhase(PhaseFit)
			return
		}
		c.startPhase(PhaseTransform)
	case PhaseTransform:
		if c.speculating() && !c.verify(results) {
			return
		}
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

// firstLines numbers the lines across the splits of each object, from the
// lines each split's fit task saw.
func firstLines(splits []Split, fit []taskResult) []int64 {
	first := make([]int64, len(splits))
	next := map[int]int64{}
	for i, s := range splits {
		if _, ok := next[s.Object]; !ok {
			next[s.Object] = 1
		}
		first[i] = next[s.Object]
		next[s.Object] += fit[i].Lines
	}
	return first
}

func (c *Coordinator) emptyInputError(results []taskResult) error {
	var rejected int64
	for _, r := range results {
		rejected += r.Rejected
	}
	if rejected > 0 {
		return fmt.Errorf("no valid rows in the input: all %d rows were rejected (see %s/)", rejected, rejectedFolder)
	}
	return fmt.Errorf("no rows in the input: its %d objects hold only blank lines", len(c.job.Objects))
}

// heartbeat extends the worker's leases and records its progress.
func (c *Coordinator) heartbeat(ctx context.Context, req *heartbeatRequest) (*heartbeatResponse, error) {
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
		if t := c.tasks[task.Split]; t.state == leased && t.worker == req.Worker && t.task.Lease == task.Lease {
			t.deadline = now.Add(c.opts.LeaseTTL)
		}
	}
	c.final(w, c.phase)
	return &heartbeatResponse{State: c.phase, Error: c.errText(), Stale: c.stale}, nil
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
			c.reassigned = append(c.reassigned, reassignment{Phase: t.task.Phase, Split: t.task.Split, From: t.worker, Reason: "lease expired"})
			c.ended(t, attemptExpired)
			c.expired++
			if w := c.workers[t.worker]; w != nil {
				w.gone, w.lost = true, true
				delete(w.tasks, t.task)
			}
			if t.task.Attempt >= c.opts.MaxAttempts {
				c.fail(fmt.Errorf("%s lost %d times; last worker %s stopped answering", t.task, t.task.Attempt, t.worker))
				return
			}
			c.retried++
			c.requeue(t)
			changed = true
		}
	}
	if changed {
		c.notify()
	}
}
