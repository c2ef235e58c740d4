package pipeline

import (
	"context"
	"encoding/json"
	"time"

	"github.com/shardprep/shardprep/features"
)

// Manifest is written to _shardprep/manifest.json at commit.
type Manifest struct {
	Version    string          `json:"shardprep_version"`
	Job        string          `json:"job_name,omitempty"`
	RunID      string          `json:"run_id"`
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
	Workers    []WorkerStatus  `json:"workers"`
	Reassigned []Reassignment  `json:"reassigned"`
	Timings    Timings         `json:"timings"`
}

// Totals sums the parts.
type Totals struct {
	BytesIn  int64            `json:"bytes_in"` // input objects' total size
	RowsIn   int64            `json:"rows_in"`
	Rejected int64            `json:"rejected"`
	RowsOut  map[string]int64 `json:"rows_out"`
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

// Reassignment records a task taken from a worker that failed it or
// stopped answering.
type Reassignment struct {
	Phase  Phase  `json:"phase"`
	Split  int    `json:"split"`
	From   string `json:"from"`
	Reason string `json:"reason"`
}

// Timings of a job's phases, in milliseconds.
type Timings struct {
	FitMS       int64 `json:"fit_ms"`
	TransformMS int64 `json:"transform_ms"`
	CommitMS    int64 `json:"commit_ms"`
	TotalMS     int64 `json:"total_ms"`
}

// commit writes the model, the manifest, and last the _SUCCESS markers.
func (c *Coordinator) commit(ctx context.Context) (*Manifest, error) {
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
	return m, nil
}

func (c *Coordinator) manifestLocked() *Manifest {
	j := c.job
	names := splitNames(j.Spec)
	m := &Manifest{
		Version: Version, Job: j.Name, RunID: j.RunID, Output: j.Output, Started: c.started,
		Seed: j.Seed, SplitMode: j.SplitMode, OnInvalid: j.OnInvalid, Header: j.Header, SplitSize: j.SplitSize,
		Inputs: j.Objects, Spec: j.Spec, ModelKey: ModelKey, Model: c.fit.model, ModelGiven: c.modelGiven,
		Totals:     Totals{RowsOut: map[string]int64{}},
		Workers:    c.workerStatus(),
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

// cleanup deletes every key the job may have written. Part names are
// deterministic, so no record of what was written is needed.
func (c *Coordinator) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, k := range outputKeys(c.job.Spec, len(c.job.Splits)) {
		if err := c.sink.Delete(ctx, k); err != nil {
			c.log.Warn("could not remove a part of the failed job", "key", k, "error", err)
		}
	}
}
