package pipeline

import (
	"errors"
	"fmt"
	"slices"

	"github.com/shardprep/shardprep/features"
)

// A job whose fit only counts labels (the categorical/numeric form of a
// spec, or stages whose only fitted ones are StringIndexers: see
// features.Spec.FitsLabelCounts), without a model given, needs the whole
// input's counts only for
// the order of each column's labels, which a sample of the input almost
// always gets right. Such a job of more than sampleSize splits fits on a
// sample, its first sampleSize(n) splits, and transforms every split with
// that model at once, speculatively: each transform task counts the
// labels of the rows it transforms (by their index in the model, which
// the transform looks up anyway) and returns the counts with its result.
//
//   - A speculative task that meets a label the model does not hold, or
//     an invalid row (under either policy: the fit counts rows that the
//     transform would reject, and the invalid row's error or rejected
//     line must come as the exact path makes it), stops and reports
//     mispredicted at once. The coordinator abandons the generation (its
//     tasks still running are refused when they report, and told to stop
//     with the next lease or heartbeat), fits the splits after the sample
//     and transforms with that model, as a job without a sample does.
//   - When every split is transformed, the counts, merged, are exactly
//     the fit statistics of the whole input. The model they fit is the
//     job's model; if its labels are in the sample model's order, the
//     transformed parts are those the exact model makes, and the job
//     commits. Otherwise it transforms every split again with the exact
//     model.
//
// Either way the output is byte for byte that of a fit over every split,
// and the manifest's fit_sample tells what happened.

// fitSample is the manifest's record of a fit on a sample.
type fitSample struct {
	Splits int `json:"splits"` // the leading splits the sample's fit ran on
	Of     int `json:"of"`     // the job's splits
	// Outcome: "verified" (the whole input's label counts order the
	// labels as the sample's did), "redone" (they do not: the splits were
	// transformed again with the exact model), "abandoned" (the rest of
	// the input was fitted before the transform), or "running".
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"` // why it was redone or abandoned
}

// Outcomes of a fitSample.
const (
	sampleRunning   = "running"
	sampleVerified  = "verified"
	sampleRedone    = "redone"
	sampleAbandoned = "abandoned"
)

// sampleSize is the number of leading splits the fit of a job of n splits
// samples: a sixteenth of them, and at least two, so that the sample's fit
// keeps two slots busy. A split holds up to 32 MiB by default, so a large
// input's sample has tens of thousands of rows or more.
func sampleSize(n int) int { return max(2, (n+15)/16) }

// planSample decides whether the job fits on a sample; mu must be held
// (or the coordinator not yet shared).
func (c *Coordinator) planSample() {
	n := len(c.job.Splits)
	k := sampleSize(n)
	if c.opts.twoPass || !c.job.Spec.FitsLabelCounts() || k >= n {
		return
	}
	c.sample = &fitSample{Splits: k, Of: n, Outcome: sampleRunning}
	c.log.Info("the fit runs on a sample, the first splits; the transform counts the labels of every split to verify it",
		"sample_splits", k, "splits", n)
}

// sampling reports whether the phase is the fit of the sample.
func (c *Coordinator) sampling() bool {
	return c.sample != nil && c.sample.Outcome == sampleRunning && c.gen == 0
}

// speculating reports whether the transform generation is speculative.
func (c *Coordinator) speculating() bool {
	return c.sample != nil && c.sample.Outcome == sampleRunning && c.gen > 0
}

// sampleFitted starts the speculative transform with the model of the
// sample's fit, whose tasks' results are results; or, if the sample
// cannot be trusted, the fit of the rest of the input. mu must be held.
func (c *Coordinator) sampleFitted(results []taskResult) {
	c.sampleTasks, c.sampleStats = c.tasks, c.stats
	reason := ""
	for _, r := range results {
		if r.Rejected > 0 {
			reason = "the sample holds invalid rows"
		}
	}
	var m *features.Model
	if reason == "" && c.stats.Rows() == 0 {
		reason = "the sample holds no rows"
	}
	if reason == "" {
		var err error
		if m, err = c.stats.Model(); err != nil {
			reason = "the sample fits no model: " + err.Error()
		}
	}
	if reason != "" {
		c.resumeFit(reason)
		return
	}
	first := firstLines(c.job.Splits[:len(results)], results)
	c.fit = &fitResult{model: m, firstLines: append(first, make([]int64, len(c.job.Splits)-len(first))...)}
	c.guess = m
	c.stats = features.NewStats(c.job.Spec)
	c.startPhase(PhaseTransform)
}

// resumeFit gives up the sample's model and fits the splits after the
// sample, whose statistics are kept; mu must be held.
func (c *Coordinator) resumeFit(reason string) {
	c.sample.Outcome, c.sample.Reason = sampleAbandoned, reason
	c.log.Info("fitting the rest of the input: the sample's model may not hold", "reason", reason)
	c.stats, c.fit, c.guess, c.columns, c.rejections = c.sampleStats, nil, nil, nil, rejectSummary{}
	c.startPhase(PhaseFit)
	k := len(c.sampleTasks)
	copy(c.tasks, c.sampleTasks)
	c.queue = c.queue[k:] // still sorted, so still a heap
	c.ndone = k
	for _, t := range c.sampleTasks {
		c.doneBytes += t.result.BytesRead
		c.doneRows += t.result.RowsIn
	}
	c.sampleTasks, c.sampleStats = nil, nil
}

// mispredicted handles the report of speculative task t that it met a
// row the sample's model may not fit: the generation is abandoned and the
// fit resumes. mu must be held.
func (c *Coordinator) mispredicted(t *taskState, req *reportRequest) {
	c.log.Info("the sample's model does not hold; abandoning the transform", "task", req.Task.String(), "worker", req.Worker, "reason", req.Error)
	c.ended(t, attemptAbandoned)
	t.state = done
	for _, o := range c.tasks {
		if o.state == leased {
			c.ended(o, attemptAbandoned)
			if w := c.workers[o.worker]; w != nil {
				delete(w.tasks, o.task)
			}
		}
	}
	c.stale = c.gen
	c.resumeFit(req.Error)
}

// verify fits the exact model from the label counts of the speculative
// transform, whose tasks' results are results, and compares it with the
// sample's. It returns true when the transform stands; otherwise it has
// started a transform with the exact model (or failed the job). mu must
// be held.
func (c *Coordinator) verify(results []taskResult) bool {
	if c.stats.Rows() == 0 {
		return true // the transform's own check fails the job
	}
	m, err := c.stats.Model()
	if err != nil {
		c.fail(err)
		return false
	}
	c.fit = &fitResult{model: m, firstLines: firstLines(c.job.Splits, results)}
	if diff := labelOrderDiff(c.guess, m); diff != "" {
		c.sample.Outcome, c.sample.Reason = sampleRedone, diff
		c.log.Info("the whole input orders the labels otherwise than the sample; transforming again with its model", "reason", diff)
		c.columns, c.rejections = nil, rejectSummary{}
		c.startPhase(PhaseTransform)
		return false
	}
	c.sample.Outcome = sampleVerified
	c.log.Info("the sample's model is the whole input's")
	return true
}

// labelOrderDiff says how the label order of guess differs from that of
// exact, the two transforming alike when it returns "".
func labelOrderDiff(guess, exact *features.Model) string {
	for _, col := range exact.CategoricalColumns() {
		g, _ := guess.Labels(col)
		e, _ := exact.Labels(col)
		if !slices.Equal(g, e) {
			return fmt.Sprintf("column %q: the sample orders its labels %s, the whole input %s", col, labelList(g), labelList(e))
		}
	}
	return ""
}

// labelList quotes the first labels of a list.
func labelList(labels []string) string {
	const show = 8
	if len(labels) > show {
		return fmt.Sprintf("%q and %d more", labels[:show], len(labels)-show)
	}
	return fmt.Sprintf("%q", labels)
}

// mispredictError stops a speculative transform task at a row that the
// sample's model may not fit.
type mispredictError struct{ msg string }

func (e *mispredictError) Error() string { return e.msg }

// mispredicted returns the mispredictError of err, the model's refusal of
// a row or an invalid row, in the task's split.
func (t *transformTask) mispredicted(err error) error {
	var re *features.RowError
	var pe *parseError
	if bad := rowErrors(err); len(bad) > 0 {
		err = bad[0] // a spec's stages list every row they refuse
	}
	switch {
	case errors.As(err, &re) && re.Reason == features.ReasonUnseen:
		return &mispredictError{fmt.Sprintf("split %d: column %q holds the label %q, which the sample's model does not", t.split.Index, re.Column, re.Value)}
	case errors.As(err, &re):
		return &mispredictError{fmt.Sprintf("split %d holds a row the model refuses (column %q: %s)", t.split.Index, re.Column, re.Reason)}
	case errors.As(err, &pe):
		return &mispredictError{fmt.Sprintf("split %d holds an invalid row (%s)", t.split.Index, truncate(pe.Error(), 512))}
	}
	return err
}
