package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shardprep/shardprep/features"
)

// manifestVersion is the version of the manifest's layout, written in its
// manifest_version field. Version 2 added attempts, columns and
// rejections; readers ignore fields they do not know.
const manifestVersion = 2

// taskAttempt is one attempt at a task: which worker held it, in which
// phase, when the coordinator leased it and when the attempt ended
// (milliseconds since the job started), and how it ended: "done",
// "failed", "expired" (its worker stopped answering), "dropped" (the
// worker gave it back as it stopped) or "running" (a job that failed
// before the attempt ended).
type taskAttempt struct {
	Split   int    `json:"split"`
	Phase   Phase  `json:"phase"`
	Attempt int    `json:"attempt"`
	Worker  string `json:"worker"`
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
	Outcome string `json:"outcome"`
	// Gen is a transform attempt's generation, in a job that fitted on
	// a sample (fit_sample): 1 is the speculative one.
	Gen int `json:"gen,omitempty"`
}

// Outcomes of a taskAttempt.
const (
	attemptRunning = "running"
	attemptDone    = "done"
	attemptFailed  = "failed"
	attemptExpired = "expired"
	attemptDropped = "dropped"
	// attemptAbandoned: a task of a transform generation that was
	// abandoned (see speculate.go) before it ended.
	attemptAbandoned = "abandoned"
)

// rejectSummary sums up the rows refused under the skip policy: counts by
// column and reason, and the first rows (in input order) verbatim.
type rejectSummary struct {
	Counts []rejectCount  `json:"counts"`
	First  []rejectedLine `json:"first"`
}

// rejectCount is how many rows were refused for one reason in one column
// ("" for a whole-line problem).
type rejectCount struct {
	Column string `json:"column"`
	Reason string `json:"reason"`
	Rows   int64  `json:"rows"`
}

// rejectedLine is one refused row: where it is, why, and its text
// (shortened to maxRejectText bytes).
type rejectedLine struct {
	Split  int    `json:"split"`
	Object string `json:"object"`
	Line   int64  `json:"line"`
	Offset int64  `json:"offset"`
	Column string `json:"column"`
	Reason string `json:"reason"`
	Text   string `json:"text"`
}

// Bounds of the rejected rows a task reports and the manifest keeps.
const (
	maxRejectedLines = 10
	maxRejectText    = 256
	maxRejectCounts  = 1000
)

// add records a refused row of split.
func (r *rejectSummary) add(split int, pe *parseError, line []byte) {
	r.count(pe.Column, pe.Reason, 1)
	if len(r.First) < maxRejectedLines {
		r.First = append(r.First, rejectedLine{Split: split, Object: pe.Object, Line: pe.Line, Offset: pe.Offset,
			Column: pe.Column, Reason: pe.Reason, Text: truncate(string(line), maxRejectText)})
	}
}

func (r *rejectSummary) count(column, reason string, n int64) {
	for i := range r.Counts {
		if c := &r.Counts[i]; c.Column == column && c.Reason == reason {
			c.Rows += n
			return
		}
	}
	if len(r.Counts) >= maxRejectCounts {
		column, reason = "", "other reasons"
		for i := range r.Counts {
			if c := &r.Counts[i]; c.Column == column && c.Reason == reason {
				c.Rows += n
				return
			}
		}
	}
	r.Counts = append(r.Counts, rejectCount{Column: column, Reason: reason, Rows: n})
}

// merge adds o, keeping the first rows in input order (split, then
// offset), so that the result does not depend on the order of reports.
func (r *rejectSummary) merge(o *rejectSummary) {
	for _, c := range o.Counts {
		r.count(c.Column, c.Reason, c.Rows)
	}
	r.First = append(r.First, o.First...)
	slices.SortStableFunc(r.First, func(a, b rejectedLine) int {
		if a.Split != b.Split {
			return a.Split - b.Split
		}
		return int(min(max(a.Offset-b.Offset, -1), 1))
	})
	r.First = r.First[:min(len(r.First), maxRejectedLines)]
	slices.SortStableFunc(r.Counts, func(a, b rejectCount) int {
		if a.Rows != b.Rows {
			return int(min(max(b.Rows-a.Rows, -1), 1))
		}
		return cmp.Or(cmp.Compare(a.Column, b.Column), cmp.Compare(a.Reason, b.Reason))
	})
}

// check checks a task's rejections against its count of rejected rows.
func (r *rejectSummary) check(rejected int64) error {
	var sum int64
	for _, c := range r.Counts {
		if c.Rows <= 0 {
			return fmt.Errorf("rejection count %d", c.Rows)
		}
		sum += c.Rows
	}
	if sum != rejected || len(r.First) > maxRejectedLines || len(r.Counts) > maxRejectCounts {
		return fmt.Errorf("rejections add up to %d rows, %d reported rejected", sum, rejected)
	}
	return nil
}

// checkColumns checks a transform result's column stats against its
// counts: every valid row in the numeric columns, each split's rows in
// the label's.
func checkColumns(cs *features.ColumnStats, r *taskResult) error {
	if cs == nil {
		if !columnStats {
			return nil
		}
		return fmt.Errorf("no column statistics")
	}
	numeric, label := cs.Counts()
	for i, n := range numeric {
		if n != r.RowsIn {
			return fmt.Errorf("numeric column %d counts %d values of %d rows", i, n, r.RowsIn)
		}
	}
	if len(label) != len(r.RowsOut) {
		return fmt.Errorf("label statistics of %d splits, want %d", len(label), len(r.RowsOut))
	}
	for k, n := range label {
		if n != r.RowsOut[k] {
			return fmt.Errorf("label of split %d counts %d values of %d rows", k, n, r.RowsOut[k])
		}
	}
	return nil
}

// leased records the start of an attempt at t by worker; mu must be held.
func (c *Coordinator) leased(t *taskState, worker string, now time.Time) {
	t.attempt = len(c.attempts)
	c.attempts = append(c.attempts, taskAttempt{Split: t.task.Split, Phase: t.task.Phase, Attempt: t.task.Attempt,
		Worker: worker, StartMS: now.Sub(c.started).Milliseconds(), EndMS: -1, Outcome: attemptRunning})
	if c.sample != nil && t.task.Phase == PhaseTransform {
		c.attempts[t.attempt].Gen = t.task.Gen
	}
}

// ended records the end of t's current attempt; mu must be held.
func (c *Coordinator) ended(t *taskState, outcome string) {
	if t.attempt < 0 || t.attempt >= len(c.attempts) {
		return
	}
	a := &c.attempts[t.attempt]
	if a.Outcome == attemptRunning {
		a.EndMS = c.opts.Now().Sub(c.started).Milliseconds()
		a.Outcome = outcome
	}
}

// recordResult merges what a transform task reports beyond its counts:
// the column statistics and the rejections; mu must be held.
func (c *Coordinator) recordResult(split int, r *taskResult) error {
	if r.Columns != nil {
		if c.columns == nil {
			c.columns = features.NewColumnStats(c.job.Spec)
		}
		if err := c.columns.Merge(r.Columns); err != nil {
			return fmt.Errorf("merging column statistics of split %d: %w", split, err)
		}
		r.Columns = nil
	}
	if r.Rejects != nil {
		for i := range r.Rejects.First {
			r.Rejects.First[i].Split = split
		}
		c.rejections.merge(r.Rejects)
		r.Rejects = nil
	}
	return nil
}

// attemptOutcome is the outcome of an attempt reported failed with msg.
func attemptOutcome(msg string) string {
	if strings.HasPrefix(msg, "worker stopped: ") {
		return attemptDropped
	}
	return attemptFailed
}

// checkDescription checks what a transform result says of its rows
// beyond the counts.
func checkDescription(r *taskResult) error {
	if err := checkColumns(r.Columns, r); err != nil {
		return err
	}
	switch {
	case r.Rejects == nil && r.Rejected > 0:
		return fmt.Errorf("%d rows rejected without their reasons", r.Rejected)
	case r.Rejects != nil:
		return r.Rejects.check(r.Rejected)
	}
	return nil
}

// describeLocked adds to m what the coordinator recorded beyond the
// counts; mu must be held.
func (c *Coordinator) describeLocked(m *Manifest) {
	m.Attempts = slices.Clone(c.attempts)
	if m.Attempts == nil {
		m.Attempts = []taskAttempt{}
	}
	m.Columns = c.columns
	m.Rejections = rejectSummary{Counts: slices.Clone(c.rejections.Counts), First: slices.Clone(c.rejections.First)}
	if m.Rejections.Counts == nil {
		m.Rejections.Counts = []rejectCount{}
	}
	if m.Rejections.First == nil {
		m.Rejections.First = []rejectedLine{}
	}
	if c.opts.GrantCalls != nil {
		m.GrantCalls = c.opts.GrantCalls()
	}
}

// Manifest returns the manifest of the job as far as it got: for a job
// that failed, what its report shows. It is the committed manifest once
// the job has committed, except for the commit's timings.
func (c *Coordinator) Manifest() *Manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.manifestLocked()
	m.Finished = c.opts.Now()
	m.Timings.TotalMS = m.Finished.Sub(m.Started).Milliseconds()
	return m
}

// fitModel is the model, nil before one is fitted.
func (c *Coordinator) fitModel() *features.Model {
	if c.fit == nil {
		return nil
	}
	return c.fit.model
}

// resultOf is split i's transform result: the accepted one, or, for a
// job that failed before its commit, that of a finished task, if any.
func (c *Coordinator) resultOf(i int) taskResult {
	switch {
	case i < len(c.results):
		return c.results[i]
	case i < len(c.tasks) && c.tasks[i].result != nil && c.tasks[i].task.Phase == PhaseTransform:
		return *c.tasks[i].result
	}
	return taskResult{}
}

// RebuildReport renders the report of the committed output out from its
// manifest (and its model, for a manifest that lacks one).
func RebuildReport(ctx context.Context, out Output) ([]byte, error) {
	m, err := readManifest(ctx, out)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest: %w", err)
	}
	if m.Model == nil && !m.ModelGiven {
		var model features.Model
		if err := readJSON(ctx, out, ModelKey, &model); err == nil {
			m.Model = &model
		}
	}
	failure := ""
	if !committed(ctx, out, m) {
		failure = "the output is not committed (no _SUCCESS markers)"
	}
	var b bytes.Buffer
	if err := writeReport(&b, m, failure); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
