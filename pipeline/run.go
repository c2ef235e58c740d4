package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// Version is shardprep's version, recorded in manifests and checked
// loosely between coordinator and workers.
const Version = "0.1.0"

// Timings of a job's phases, in milliseconds.
type Timings struct {
	FitMS       int64 `json:"fit_ms"`
	TransformMS int64 `json:"transform_ms"`
	CommitMS    int64 `json:"commit_ms"`
	TotalMS     int64 `json:"total_ms"`
}

// WorkerSummary is one worker's share of the transform phase.
type WorkerSummary struct {
	Worker string `json:"worker"`
	Tasks  int    `json:"tasks"` // tasks completed, both phases
	Rows   int64  `json:"rows"`  // valid rows transformed
	Bytes  int64  `json:"bytes"` // input bytes transformed
	Lost   bool   `json:"lost,omitempty"`
}

// PartSummary describes the parts written for one split.
type PartSummary struct {
	Split    int              `json:"split"`
	Object   string           `json:"object"`
	Offset   int64            `json:"offset"`
	Length   int64            `json:"length"`
	RowsIn   int64            `json:"rows_in"`
	Rejected int64            `json:"rejected"`
	RowsOut  map[string]int64 `json:"rows_out"`
	Workers  []string         `json:"workers"` // every worker that held the task, in order
}

// Totals sums the parts.
type Totals struct {
	BytesIn  int64            `json:"bytes_in"` // input objects' total size
	RowsIn   int64            `json:"rows_in"`
	Rejected int64            `json:"rejected"`
	RowsOut  map[string]int64 `json:"rows_out"`
}

// Manifest is written to _shardprep/manifest.json at commit.
type Manifest struct {
	Version    string          `json:"shardprep_version"`
	Job        string          `json:"job_name,omitempty"`
	Output     string          `json:"output"`
	Started    time.Time       `json:"started"`
	Finished   time.Time       `json:"finished"`
	Seed       int64           `json:"seed"`
	SplitMode  SplitMode       `json:"split_mode"`
	OnInvalid  Policy          `json:"on_invalid"`
	Header     bool            `json:"header"`
	SplitSize  int64           `json:"split_size"`
	Inputs     []Object        `json:"inputs"`
	Spec       *features.Spec  `json:"spec"`
	ModelKey   string          `json:"model"`
	Model      *features.Model `json:"fitted_model"`
	ModelGiven bool            `json:"model_given"`
	Totals     Totals          `json:"totals"`
	Parts      []PartSummary   `json:"parts"`
	Workers    []WorkerSummary `json:"workers"`
	Reassigned []Reassignment  `json:"reassigned"`
	Timings    Timings         `json:"timings"`
}

// Result is what a committed job reports.
type Result struct {
	Manifest *Manifest
}

// commit writes the model, the manifest, and last the _SUCCESS markers.
func (c *Coordinator) commit(ctx context.Context) (*Result, error) {
	c.mu.Lock()
	start := c.opts.Now()
	m := c.manifestLocked()
	c.mu.Unlock()
	modelJSON, err := json.MarshalIndent(m.Model, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := putObject(ctx, c.sink, ModelKey, append(modelJSON, '\n')); err != nil {
		return nil, err
	}
	m.Finished = c.opts.Now()
	m.Timings.CommitMS = m.Finished.Sub(start).Milliseconds()
	m.Timings.TotalMS = m.Finished.Sub(m.Started).Milliseconds()
	manJSON, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := putObject(ctx, c.sink, ManifestKey, append(manJSON, '\n')); err != nil {
		return nil, err
	}
	for _, name := range splitNames(c.job.Spec) {
		if err := putObject(ctx, c.sink, name+"/"+SuccessName, nil); err != nil {
			return nil, err
		}
	}
	c.log.Info("job committed", "output", c.job.Output)
	return &Result{Manifest: m}, nil
}

func (c *Coordinator) manifestLocked() *Manifest {
	j := c.job
	names := splitNames(j.Spec)
	m := &Manifest{
		Version: Version, Job: j.Name, Output: j.Output, Started: c.started,
		Seed: j.Seed, SplitMode: j.SplitMode, OnInvalid: j.OnInvalid, Header: j.Header, SplitSize: j.SplitSize,
		Inputs: j.Objects, Spec: j.Spec, ModelKey: ModelKey, Model: j.Model, ModelGiven: c.fit == nil,
		Totals:     Totals{RowsOut: map[string]int64{}},
		Workers:    c.workerSummaries(),
		Reassigned: c.reassigned,
		Timings:    c.timings,
	}
	if m.Reassigned == nil {
		m.Reassigned = []Reassignment{}
	}
	for _, o := range j.Objects {
		m.Totals.BytesIn += o.Size
	}
	for i, s := range j.Splits {
		r := c.results[i]
		p := PartSummary{Split: s.Index, Object: j.Objects[s.Object].URL, Offset: s.Offset, Length: s.Length,
			RowsIn: r.RowsIn, Rejected: r.Rejected, RowsOut: map[string]int64{}}
		if i < len(c.tasks) {
			p.Workers = c.tasks[i].workers
		}
		for k, n := range names {
			if k < len(r.RowsOut) {
				p.RowsOut[n] = r.RowsOut[k]
				m.Totals.RowsOut[n] += r.RowsOut[k]
			}
		}
		m.Totals.RowsIn += r.RowsIn
		m.Totals.Rejected += r.Rejected
		m.Parts = append(m.Parts, p)
	}
	return m
}

// putObject writes one small object; on error the cancelled context
// aborts the writer, so nothing is published.
func putObject(ctx context.Context, sink Sink, key string, data []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := sink.NewWriter(ctx, key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Close()
}

// Options tune an in-process run; nil means defaults.
type Options struct {
	Workers int // splits processed at once; default 1
	Mem     memory.Allocator
	Logger  *slog.Logger
	// Progress, if set, is called about every ProgressEvery with the
	// job's progress, and once at the end.
	Progress      func(Snapshot)
	ProgressEvery time.Duration
}

// Run runs job in this process: a coordinator and one worker with
// Options.Workers slots, talking through the same protocol as between
// hosts. It returns only after the output is committed, or after a failure
// has been cleaned up.
func Run(ctx context.Context, job *Job, src Source, sink Sink, opts *Options) (*Result, error) {
	if opts == nil {
		opts = &Options{}
	}
	c := NewCoordinator(job, sink, &CoordinatorOptions{Heartbeat: 200 * time.Millisecond, Logger: opts.Logger})
	w := NewWorker(c, func(context.Context, *Job) (Source, Sink, error) { return src, sink, nil },
		&WorkerOptions{ID: "local", Slots: opts.Workers, Mem: opts.Mem, Logger: opts.Logger})
	return Serve(ctx, c, opts, w.Run)
}

// Serve runs coordinator c until it commits or fails, with the given
// in-process workers, reporting progress as opts says.
func Serve(ctx context.Context, c *Coordinator, opts *Options, workers ...func(context.Context) error) (*Result, error) {
	if opts == nil {
		opts = &Options{}
	}
	wctx, cancelWorkers := context.WithCancel(ctx)
	defer cancelWorkers()
	werrs := make(chan error, len(workers))
	for _, run := range workers {
		go func() { werrs <- run(wctx) }()
	}
	stopProgress := startProgress(ctx, c, opts)
	go func() {
		// Stop local work at once when the job fails, so the
		// coordinator's cleanup need not wait for leases to lapse.
		select {
		case <-c.Failed():
			cancelWorkers()
		case <-wctx.Done():
		}
	}()
	res, err := c.Run(ctx)
	stopProgress()
	cancelWorkers()
	for range workers {
		<-werrs
	}
	return res, err
}

func startProgress(ctx context.Context, c *Coordinator, opts *Options) func() {
	if opts.Progress == nil {
		return func() {}
	}
	every := opts.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				opts.Progress(c.Snapshot())
			case <-done:
				opts.Progress(c.Snapshot())
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// describe is used in logs.
func (s Snapshot) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %d/%d splits, %d/%d bytes, %d rows", s.Phase, s.SplitsDone, s.SplitsTotal, s.BytesDone, s.BytesTotal, s.Rows)
	return b.String()
}
