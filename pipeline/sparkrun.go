package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// The Spark mode of a text part, on several cores.
//
// The split (a whole object) is cut into line-aligned byte ranges, runs,
// read at the same time. Each run decodes its lines in batches, as the
// hash mode does, transforms them only to learn which rows the model
// refuses, and keeps of each row only, per column, the id of its value
// among the run's distinct values. Once every run is read, the ids become
// ranks among the distinct values of the whole object, in the column's
// sort order; the rows of each run are sorted (at the same time) by their
// ranks laid end to end, the runs merged, and the draws made in that
// order, as Spark makes them. The rows are then built again, in that
// order, from their columns' ranks (sparkwrite.go), transformed and
// written: the mode holds a few bytes of ids per row rather than each
// row's output line, whose fresh memory cost more than the second
// transform.

// minRunBytes is the least bytes of a split per run.
const minRunBytes = 4 << 20

// sparkRun is one byte range of the split and what its rows became.
type sparkRun struct {
	tt      *transformTask // over the range, its rejected rows kept here
	release func()
	rows    int // the rows kept, those the model does not refuse
	keys    []keyColumn
	ids     idMatrix              // of the key columns
	cols    *features.ColumnStats // the numeric columns; labels are added once drawn
	noRows  [][]int               // for cols.Add: no labels yet
	colIdx  []int                 // per spec column: its field in the batches, -1 unknown
	decoded []rejectedRow         // rows the decoder refused
	refused []rejectedRow         // rows the model refused
	res     taskResult
	err     error // the scan's
	failed  error // the model's, with the error policy: the scan reads on
}

type rejectedRow struct {
	line []byte
	pe   *parseError
}

// sparkRunCount returns how many runs the split is read in.
func (t *splitTask) sparkRunCount() int {
	switch {
	case isCompressed(t.object()):
		return 1 // read from its start only
	case t.sparkRuns > 0:
		return t.sparkRuns
	}
	return int(max(1, min(int64(runtime.GOMAXPROCS(0)), t.split.Length/minRunBytes)))
}

// newSparkRun returns the run over bytes [off, off+n) of the split.
func (t *transformTask) newSparkRun(base memory.Allocator, off, n int64) *sparkRun {
	st := *t.splitTask
	st.split.Offset, st.split.Length = off, n
	st.computed = nil
	// The split's first line is not the range's: the range numbers its
	// lines itself.
	st.fit = &fitResult{model: t.fit.model}
	rc := newRecycler(base)
	st.mem = rc
	r := &sparkRun{release: rc.Release, cols: newColumnStats(t.job.Spec),
		noRows: make([][]int, len(t.outs)), keys: make([]keyColumn, len(t.job.Spec.Columns)),
		ids: idMatrix{cols: len(t.job.Spec.Columns)}}
	r.tt = &transformTask{splitTask: &st, model: t.model, onReject: r.refuse}
	for i, c := range t.job.Spec.Columns {
		r.keys[i].str = c.Type == features.ColumnString
	}
	return r
}

// readSparkRuns reads the split in runs, at the same time.
func (t *transformTask) readSparkRuns(ctx context.Context) []*sparkRun {
	base := shared(t.mem)
	ranges := t.sparkRanges()
	runs := make([]*sparkRun, len(ranges))
	var wg sync.WaitGroup
	for i, rg := range ranges {
		r := t.newSparkRun(base, rg.Offset, rg.Length)
		runs[i] = r
		wg.Go(func() { r.read(ctx) })
	}
	wg.Wait()
	return runs
}

// sparkRanges cuts the split into the byte ranges of its runs.
func (t *splitTask) sparkRanges() []Split {
	n := int64(t.sparkRunCount())
	ranges := make([]Split, n)
	for i := range n {
		ranges[i] = t.split
		ranges[i].Offset = t.split.Offset + t.split.Length*i/n
		ranges[i].Length = t.split.Offset + t.split.Length*(i+1)/n - ranges[i].Offset
	}
	return ranges
}

// fitRuns is the fit pass of the Spark mode over a split read in runs,
// at the same time: the statistics of all, merged, and the first error
// met in the split's order.
func (t *splitTask) fitRuns(ctx context.Context, validate bool) (taskResult, error) {
	ranges := t.sparkRanges()
	res := make([]taskResult, len(ranges))
	errs := make([]error, len(ranges))
	var wg sync.WaitGroup
	for i, rg := range ranges {
		st := *t
		st.split, st.sparkRuns, st.computed = rg, 1, nil
		// The split's first line is not the range's.
		st.fit = nil
		if t.fit != nil {
			st.fit = &fitResult{model: t.fit.model}
		}
		wg.Go(func() { res[i], errs[i] = st.runFit(ctx, validate) })
	}
	wg.Wait()
	var pe *parseError
	for _, err := range errs {
		if err != nil && !errors.As(err, &pe) {
			return taskResult{}, err
		}
	}
	all := res[0]
	for i, r := range res {
		if errs[i] != nil && i > 0 && t.job.OnInvalid != PolicySkip && !validate {
			// A fit that parses only the categorical columns found it: an
			// earlier run may hold a bad number, as in runFit.
			return all, t.firstInvalid(ctx, errs[i])
		}
		if errs[i] != nil {
			return all, errs[i]
		}
		if i == 0 {
			continue
		}
		all.Lines += r.Lines
		all.RowsIn += r.RowsIn
		all.Rejected += r.Rejected
		if err := all.Stats.Merge(r.Stats); err != nil {
			return all, err
		}
	}
	last := ranges[len(ranges)-1]
	all.BytesRead = last.Offset - t.split.Offset + res[len(res)-1].BytesRead
	return all, nil
}

func (r *sparkRun) read(ctx context.Context) {
	r.res, r.err = r.tt.scan(ctx, scanOptions{batchRows: r.tt.job.BatchRows,
		rows: r.batch, reject: r.decodeReject})
	r.res.Rejected += r.tt.adj.Rejected
	r.res.RowsIn += r.tt.adj.RowsIn
	r.release()
}

func (r *sparkRun) decodeReject(_ context.Context, line []byte, pe *parseError) error {
	r.decoded = append(r.decoded, rejectedRow{bytes.Clone(line), pe})
	return nil
}

func (r *sparkRun) refuse(_ context.Context, line []byte, pe *parseError) error {
	r.refused = append(r.refused, rejectedRow{bytes.Clone(line), pe})
	return nil
}

// batch transforms a batch of the run, as the hash mode does
// (transformSkipping), and keeps the rows that the model does not refuse;
// once the run has failed, it keeps no more rows.
func (r *sparkRun) batch(ctx context.Context, rec arrow.Record) error {
	if r.failed != nil {
		return nil
	}
	return r.tt.transformSkipping(ctx, rec, func(rec, _ arrow.Record) error {
		if r.failed != nil {
			return nil
		}
		return r.add(rec)
	}, r.fail)
}

// fail handles an error of the model: a row that the decoder refuses in
// any run comes first, as in a whole split that is decoded before it is
// transformed, so the run reads on to find such a row.
func (r *sparkRun) fail(err error) error {
	var pe *parseError
	if errors.As(err, &pe) {
		if r.failed == nil { // the first, in the run's row order
			r.failed = err
		}
		return nil
	}
	return err
}

// add keeps the rows of rec.
func (r *sparkRun) add(rec arrow.Record) error {
	n := int(rec.NumRows())
	if n == 0 {
		return nil
	}
	if r.cols != nil {
		if err := r.cols.Add(rec, r.noRows); err != nil {
			return err
		}
	}
	if r.colIdx == nil {
		if err := r.index(rec.Schema()); err != nil {
			return err
		}
	}
	if r.ids.ids == nil {
		r.reserve(rec, n)
	}
	from := r.ids.grow(n)
	for c := range r.tt.job.Spec.Columns {
		r.keys[c].add(rec.Column(r.colIdx[c]), &r.ids, c, from)
	}
	r.rows += n
	return nil
}

// index finds the spec's columns in the batches' schema.
func (r *sparkRun) index(s *arrow.Schema) error {
	spec := r.tt.job.Spec
	r.colIdx = make([]int, len(spec.Columns))
	label := false
	for c, col := range spec.Columns {
		idx := s.FieldIndices(col.Name)
		if len(idx) == 0 {
			return fmt.Errorf("pipeline: the decoded rows have no column %q", col.Name)
		}
		r.colIdx[c] = idx[0]
		want := arrow.FLOAT64
		if col.Type == features.ColumnString {
			want = arrow.STRING
		}
		if s.Field(idx[0]).Type.ID() != want {
			return fmt.Errorf("pipeline: column %q is %s", col.Name, s.Field(idx[0]).Type)
		}
		label = label || (col.Name == spec.Label && want == arrow.FLOAT64)
	}
	if !label {
		return fmt.Errorf("pipeline: no double label column %q", spec.Label)
	}
	return nil
}

// reserve makes room, at the first batch, for the rows the range is
// likely to hold, guessed from the batch's share of the range's bytes
// (its rows' offsets), so that the run's ids are not grown (and copied)
// again and again.
func (r *sparkRun) reserve(rec arrow.Record, n int) {
	rows := n
	if offs := offsets(rec); n > 1 {
		perRow := float64(offs.Value(n-1)-offs.Value(0)) / float64(n-1)
		if guess := float64(r.tt.split.Length) / perRow * 1.03; guess > float64(n) && guess < 1<<32 {
			rows = int(guess)
		}
	}
	r.ids.ids = make([]uint16, 0, (rows+64)*r.ids.cols)
	adviseHuge(r.ids.ids)
}

// sparkText is the transform pass of the Spark mode over a split of text
// parts: it reads the split in runs, sorts and draws its rows and writes
// the parts.
func (t *transformTask) sparkText(ctx context.Context) (taskResult, error) {
	runs := t.readSparkRuns(ctx)
	res, err := t.joinRuns(ctx, runs)
	if err != nil {
		return res, err
	}
	order, values, err := sortRuns(runs)
	if err != nil {
		return res, err
	}
	return res, t.writeSpark(ctx, runs, order, values)
}

// joinRuns adds up the runs' results, returns the error a whole split read
// at once would meet first, and hands the rejected rows on in the order it
// would: the rows the decoder refused, in input order, then those the
// model refused.
func (t *transformTask) joinRuns(ctx context.Context, runs []*sparkRun) (taskResult, error) {
	var res taskResult
	for _, r := range runs {
		res.Lines += r.res.Lines
		res.RowsIn += r.res.RowsIn
		res.Rejected += r.res.Rejected
	}
	// Each run reads on past its range to finish its last line, into the
	// next: the runs read the split's bytes up to where the last stopped.
	last := runs[len(runs)-1]
	res.BytesRead = last.tt.split.Offset - t.split.Offset + last.res.BytesRead
	var pe *parseError
	for _, r := range runs {
		if r.err != nil && !errors.As(r.err, &pe) {
			return res, r.err
		}
	}
	for _, r := range runs {
		if r.err != nil {
			return res, r.err
		}
	}
	for _, r := range runs {
		if r.failed != nil {
			return res, r.failed
		}
	}
	for _, rows := range [](func(*sparkRun) []rejectedRow){
		func(r *sparkRun) []rejectedRow { return r.decoded },
		func(r *sparkRun) []rejectedRow { return r.refused },
	} {
		for _, r := range runs {
			for _, rj := range rows(r) {
				if err := t.reject(ctx, rj.line, rj.pe); err != nil {
					return res, err
				}
			}
		}
	}
	for _, r := range runs {
		if t.cols != nil {
			if err := t.cols.Merge(r.cols); err != nil {
				return res, err
			}
		}
		r.decoded, r.refused, r.cols = nil, nil, nil
	}
	return res, nil
}

// sortRuns returns the rows of the runs in Spark's order, and each
// column's distinct values in order, which the rows' ranks number.
func sortRuns(runs []*sparkRun) (*keyMerge, []sparkValues, error) {
	cols := len(runs[0].keys)
	widths := make([]int, cols)
	values := make([]sparkValues, cols)
	parallel(cols, func(c int) {
		values[c] = rankColumn(runs, c)
		widths[c] = bits.Len(uint(values[c].len()))
	})
	o := newKeyOrder(runs, widths)
	for _, r := range runs {
		if r.rows > math.MaxUint32 {
			return nil, nil, fmt.Errorf("pipeline: %d rows in %d bytes of the object, more than the Spark mode sorts", r.rows, r.tt.split.Length)
		}
	}
	sorted := make([][]sparkKey, len(runs))
	parallel(len(runs), func(i int) {
		sorted[i] = o.keys(i)
		o.sort(sorted[i], i)
		if o.exact {
			// The keys hold the ranks (and may be where the ids were).
			runs[i].ids.ids = nil
			for c := range runs[i].keys {
				runs[i].keys[c].wide, runs[i].keys[c].rank = nil, nil
			}
		}
	})
	return &keyMerge{o: o, sorted: sorted}, values, nil
}

// parallel calls f(0) to f(n-1), on as many goroutines as there are
// cores.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	wg.Wait()
}
