package pipeline

import (
	"context"
	"errors"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/shardprep/shardprep/features"
)

// fitStats returns the empty statistics of the task's fit pass: the
// first, or the next one of the model fitted so far.
func (t *splitTask) fitStats() *features.Stats {
	if t.fit != nil && t.fit.model != nil {
		if st := t.fit.model.NextStats(); st != nil {
			return st
		}
	}
	return features.NewStats(t.job.Spec)
}

// fitRows adds rec to st. Rows that a stage fitted in an earlier pass
// refuses are, with the skip policy, left out of the statistics (the
// transform rejects them); otherwise the first is the job's error.
func (t *splitTask) fitRows(ctx context.Context, st *features.Stats, rec arrow.Record) error {
	err := st.Add(rec)
	if err == nil {
		return nil
	}
	var bad features.RowErrors
	if !errors.As(err, &bad) || len(bad) == 0 {
		return err
	}
	if t.job.OnInvalid == PolicySkip {
		return nil
	}
	return t.rowError(ctx, rec, bad[0])
}

// lineCursor numbers the lines of one object at increasing offsets,
// reading each byte before them once.
type lineCursor struct {
	off, line int64 // the line starting at off has number line; line 0: none yet
}

// lineAt returns the 1-based number of the line starting at off.
func (c *lineCursor) lineAt(ctx context.Context, t *splitTask, off int64) (int64, error) {
	obj := t.object()
	if c.line == 0 || off < c.off {
		n, err := countLinesBefore(ctx, t.src, obj, off)
		if err != nil {
			return 0, err
		}
		c.off, c.line = off, n+1
		return c.line, nil
	}
	if off == c.off {
		return c.line, nil
	}
	rc, err := t.src.NewRangeReader(ctx, obj.URL, obj.ETag, c.off, off-c.off)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := countLines(rc, off-c.off)
	if err != nil {
		return 0, err
	}
	c.off, c.line = off, c.line+n
	return c.line, nil
}

// dropBad handles the rows of rec that a spec's stages refuse or drop
// (bad, in row order): a row a stage drops (handleInvalid skip), and
// with the skip policy any refused row, is counted and kept with its
// reason among the rejected rows; otherwise the first refused row is the
// job's error. It returns rec without those rows, which the caller
// releases.
func (t *transformTask) dropBad(ctx context.Context, rec arrow.Record, bad features.RowErrors) (arrow.Record, error) {
	if t.job.OnInvalid != PolicySkip {
		for _, e := range bad {
			if !e.Dropped {
				return nil, t.rowError(ctx, rec, e)
			}
		}
	}
	offs := offsets(rec)
	var keep []arrow.Record
	defer func() {
		for _, r := range keep {
			r.Release()
		}
	}()
	from := 0
	for _, e := range bad {
		off := offs.Value(e.Row)
		pe := &parseError{Object: t.object().URL, Offset: off, Column: e.Column, Value: e.Value, Reason: e.Reason, Err: e}
		if e.Stage != "" {
			pe.Reason = e.Stage + ": " + e.Reason
		}
		if n, err := t.lines.lineAt(ctx, t.splitTask, off); err == nil {
			pe.Line = n
		}
		t.adj.Rejected++
		t.adj.RowsIn--
		if err := t.reject(ctx, readLineAt(ctx, t.src, t.object(), off, rec, e.Row), pe); err != nil {
			return nil, err
		}
		keep = append(keep, rec.NewSlice(int64(from), int64(e.Row)))
		from = e.Row + 1
	}
	keep = append(keep, rec.NewSlice(int64(from), rec.NumRows()))
	return concatRecords(t.mem, keep...)
}

// fitPasses is the number of fit passes the job runs: none with a model
// given, else what its spec needs.
func (c *Coordinator) fitPasses() int {
	if c.modelGiven {
		return 0
	}
	return c.job.Spec.FitPasses()
}

// rowErrors returns the bad rows a spec's stages found, if err lists
// them.
func rowErrors(err error) features.RowErrors {
	if err == nil {
		return nil
	}
	var bad features.RowErrors
	if errors.As(err, &bad) {
		return bad
	}
	return nil
}
