package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/format"
)

// Manifest is written to _shardprep/manifest.json at commit. Its layout
// is versioned by Layout (manifest_version, 2 now); record.go documents
// the fields of version 2. Its records (totals, parts, workers,
// reassignments, timings, attempts, rejections) are read through its
// fields; their types are this package's own.
type Manifest struct {
	Layout     int             `json:"manifest_version"`
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
	// FitPasses is the number of fit passes the job ran over its input
	// (0 with a model given).
	FitPasses int `json:"fit_passes"`
	// FitSample, present when the fit ran on a sample of the splits,
	// tells how many and whether the whole input's label counts, which
	// the transform counted, verified the sample's model (see
	// speculate.go).
	FitSample  *fitSample     `json:"fit_sample,omitempty"`
	Totals     totals         `json:"totals"`
	Parts      []partSummary  `json:"parts"`
	Workers    []workerShare  `json:"workers"`
	Reassigned []reassignment `json:"reassigned"`
	Timings    phaseTimings   `json:"timings"`
	// Attempts are every attempt at every task, in the order leased.
	Attempts []taskAttempt `json:"attempts"`
	// Columns describe the numbers of the rows written (nil when no
	// transform task finished).
	Columns    *features.ColumnStats `json:"columns"`
	Rejections rejectSummary         `json:"rejections"`
	// GrantCalls counts the credential calls of the coordinator's
	// process (workers elsewhere make their own).
	GrantCalls int64 `json:"grant_calls"`
}

// totals sums the parts.
type totals struct {
	BytesIn  int64            `json:"bytes_in"` // input objects' total size
	RowsIn   int64            `json:"rows_in"`
	Rejected int64            `json:"rejected"`
	RowsOut  map[string]int64 `json:"rows_out"`
}

// partSummary describes the parts written for one split.
type partSummary struct {
	Split    int              `json:"split"`
	Object   string           `json:"object"`
	Offset   int64            `json:"offset"`
	Length   int64            `json:"length"`
	RowsIn   int64            `json:"rows_in"`
	Rejected int64            `json:"rejected"`
	RowsOut  map[string]int64 `json:"rows_out"`
	Workers  []string         `json:"workers"` // every worker that held the task, in order
}

// reassignment records a task taken from a worker that failed it or
// stopped answering.
type reassignment struct {
	Phase  Phase  `json:"phase"`
	Split  int    `json:"split"`
	From   string `json:"from"`
	Reason string `json:"reason"`
}

// phaseTimings are the durations of a job's phases, in milliseconds.
type phaseTimings struct {
	FitMS       int64 `json:"fit_ms"`
	TransformMS int64 `json:"transform_ms"`
	CommitMS    int64 `json:"commit_ms"`
	TotalMS     int64 `json:"total_ms"`
}

// commit publishes the parts of the accepted attempts, checks that each
// is in place with the size its attempt reported, then writes the model,
// the manifest, and last the _SUCCESS markers.
func (c *Coordinator) commit(ctx context.Context) (*Manifest, error) {
	c.mu.Lock()
	start := c.opts.Now()
	m := c.manifestLocked()
	var parts []stagedPart
	for _, t := range c.tasks {
		parts = append(parts, t.parts...)
	}
	c.mu.Unlock()
	if err := c.publish(ctx, parts); err != nil {
		return nil, err
	}
	m.Finished = c.opts.Now()
	m.Timings.CommitMS = m.Finished.Sub(start).Milliseconds()
	m.Timings.TotalMS = m.Finished.Sub(m.Started).Milliseconds()
	if m.Columns != nil {
		// The manifest and the report both read the column statistics:
		// settled, they can be read at once.
		m.Columns.Settle()
	}
	// The model, the feature names, the manifest and the report are
	// objects of their own: encoded and written at once, and all before
	// the markers. Every write has ended before an error returns: the
	// cleanup of a failed commit removes what they wrote.
	g, gctx := errgroup.WithContext(ctx)
	encode := func(key string, f func() ([]byte, error)) {
		g.Go(func() error {
			data, err := f()
			if err != nil || data == nil {
				return err
			}
			return c.put(gctx, key, data)
		})
	}
	encode(ModelKey, func() ([]byte, error) { return indentedJSON(m.Model) })
	encode(FeaturesKey, func() ([]byte, error) { return c.featuresJSON(m.Model) })
	encode(ManifestKey, func() ([]byte, error) { return indentedJSON(m) })
	encode(ReportKey, func() ([]byte, error) { return renderReport(m) })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The markers, once everything they vouch for is in place.
	markers, mctx := errgroup.WithContext(ctx)
	for _, name := range splitNames(c.job.Spec) {
		markers.Go(func() error { return c.put(mctx, name+"/"+SuccessName, nil) })
	}
	if err := markers.Wait(); err != nil {
		return nil, err
	}
	c.log.Info("job committed", "output", c.job.Output)
	return m, nil
}

// publishers bounds the parts published, or checked, at once.
const publishers = 8

// publish publishes the staged parts, then checks that every one is in
// place with the size its attempt reported.
func (c *Coordinator) publish(ctx context.Context, parts []stagedPart) error {
	if want := c.expectedParts(); len(parts) != want {
		return fmt.Errorf("%d parts staged, the job has %d", len(parts), want)
	}
	err := forEachPart(ctx, parts, func(ctx context.Context, p stagedPart) error {
		// Recorded first: a publication whose answer was lost may
		// still have happened.
		c.writtenMu.Lock()
		c.written = append(c.written, p.Key)
		c.writtenMu.Unlock()
		if err := c.sink.Publish(ctx, p.Staged); err != nil {
			return fmt.Errorf("publishing %s: %w", p.Key, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return forEachPart(ctx, parts, func(ctx context.Context, p stagedPart) error {
		size, err := c.sink.Size(ctx, p.Key)
		if err != nil {
			return fmt.Errorf("checking %s: %w", p.Key, err)
		}
		if size != p.Size {
			return fmt.Errorf("%s holds %d bytes; the attempt that wrote it reported %d", p.Key, size, p.Size)
		}
		return nil
	})
}

// forEachPart calls f on each part, a few at a time, and returns the
// first error.
func forEachPart(ctx context.Context, parts []stagedPart, f func(context.Context, stagedPart) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(publishers)
	for _, p := range parts {
		g.Go(func() error { return f(gctx, p) })
	}
	return g.Wait()
}

// expectedParts is how many parts the accepted results call for: one per
// split of the spec for each input split, and one of rejected rows for
// each input split that has some.
func (c *Coordinator) expectedParts() int {
	n := 0
	for _, r := range c.results {
		n += len(c.job.Spec.Splits)
		if r.Rejected > 0 {
			n++
		}
	}
	return n
}

// featureNames is the content of FeaturesKey: the output format and the
// names of the label column and of the feature vector's slots, in vector
// order (slot i is libsvm index i+1), as the csv header and the parquet
// columns name them.
type featureNames struct {
	Format features.OutputFormat `json:"format"`
	Label  string                `json:"label"`
	Slots  []string              `json:"slots"`
}

// featuresJSON encodes the names of model's slots.
func (c *Coordinator) featuresJSON(model *features.Model) ([]byte, error) {
	if model == nil {
		return nil, errors.New("no model to name the slots of")
	}
	cols := format.Columns(model.LabelColumn(), model.SlotNames())
	return indentedJSON(featureNames{Format: outputFormat(c.job.Spec), Label: cols[0], Slots: cols[1:]})
}

// indentedJSON encodes v as the job's small JSON objects are written:
// indented by two spaces, with a newline at the end.
func indentedJSON(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// put writes one small object of the commit.
func (c *Coordinator) put(ctx context.Context, key string, data []byte) error {
	c.writtenMu.Lock()
	c.written = append(c.written, key)
	c.writtenMu.Unlock()
	return putObject(ctx, c.sink, key, data)
}

func (c *Coordinator) manifestLocked() *Manifest {
	j := c.job
	names := splitNames(j.Spec)
	m := &Manifest{
		Layout: manifestVersion, Version: Version, Job: j.Name, RunID: j.RunID, Output: j.Output, Started: c.started,
		Seed: j.Seed, SplitMode: j.SplitMode, OnInvalid: j.OnInvalid, Header: j.Header, SplitSize: j.SplitSize,
		Inputs: j.Objects, Spec: j.Spec, ModelKey: ModelKey, Model: c.fitModel(), ModelGiven: c.modelGiven, FitPasses: c.fitPasses(),
		Totals:     totals{RowsOut: map[string]int64{}},
		Workers:    c.workerStatus(),
		Reassigned: c.reassigned,
		Timings:    c.timings,
	}
	if c.sample != nil {
		s := *c.sample
		m.FitSample = &s
	}
	if m.Reassigned == nil {
		m.Reassigned = []reassignment{}
	}
	c.describeLocked(m)
	for _, o := range j.Objects {
		m.Totals.BytesIn += o.Size
	}
	for i, s := range j.Splits {
		r := c.resultOf(i)
		p := partSummary{Split: s.Index, Object: j.Objects[s.Object].URL, Offset: s.Offset, Length: s.Length,
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

// cleanup removes what a failed job wrote: the objects its commit wrote,
// the last first (so the markers go before the parts they vouch for),
// and every stage of this run.
func (c *Coordinator) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for i := len(c.written) - 1; i >= 0; i-- {
		if err := c.sink.Delete(ctx, c.written[i]); err != nil {
			c.log.Warn("could not remove an object of the failed job", "key", c.written[i], "error", err)
		}
	}
	c.discardStages(ctx)
}

// discardStages discards every stage of this run left under the output:
// those of attempts that were lost, refused or never reported. Stages of
// other runs are not this job's to touch.
func (c *Coordinator) discardStages(ctx context.Context) {
	own := stageID(c.job.RunID, "")
	n, err := c.sink.DiscardStages(ctx, "", func(key, stage string) bool { return !strings.HasPrefix(stage, own) })
	if err != nil {
		c.log.Warn("could not discard the job's leftover staged parts", "error", err)
	}
	if n > 0 {
		c.log.Info("discarded staged parts of lost or refused attempts", "parts", n)
	}
}
