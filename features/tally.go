package features

import (
	"errors"
	"slices"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Tally counts the labels of the rows a model transforms, by their index
// in the model: the fit statistics of those rows, got while transforming
// them. A model fitted on part of the input can so be checked against the
// whole input without a pass of its own: merge the tallies' Stats into
// NewStats(spec) and compare the model they fit. A Tally is not safe for
// concurrent use.
type Tally struct {
	m      *Model
	rows   int64
	counts [][]int64 // per categorical column, per label index
	batch  [][]int64 // the counts of the batch being transformed
}

// NewTally returns an empty tally of m's labels. Only a model of the flat
// categorical/numeric form counts its labels so; for a model of a spec
// with stages it returns an error.
func (m *Model) NewTally() (*Tally, error) {
	if m == nil || m.schema == nil {
		return nil, errors.New("features: model not initialised")
	}
	if m.pipe != nil {
		return nil, errors.New("features: a model of a spec with stages keeps no tally")
	}
	t := &Tally{m: m, counts: make([][]int64, len(m.cats)), batch: make([][]int64, len(m.cats))}
	for i, c := range m.cats {
		t.counts[i] = make([]int64, len(c.labels))
		t.batch[i] = make([]int64, len(c.labels))
	}
	return t, nil
}

// TransformTally is Transform (see there), which also counts in t, a tally
// of m, the labels of rec's rows when it succeeds; when it fails nothing
// is counted.
func (m *Model) TransformTally(rec arrow.Record, mem memory.Allocator, t *Tally) (arrow.Record, error) {
	if t == nil || t.m != m {
		return nil, errors.New("features: the tally is not of this model")
	}
	return m.transform(rec, mem, t)
}

// scratch returns the zeroed counts of column i for the batch.
func (t *Tally) scratch(i int) []int64 {
	clear(t.batch[i])
	return t.batch[i]
}

// keep adds the batch's counts, of n rows, to the tally.
func (t *Tally) keep(n int64) {
	for i, b := range t.batch {
		for k, c := range b {
			t.counts[i][k] += c
		}
	}
	t.rows += n
}

// Rows is the number of rows counted.
func (t *Tally) Rows() int64 { return t.rows }

// Stats returns what the tally counted as fit statistics of the model's
// columns (each label seen, with its count), which merge into the Stats of
// the model's spec as the statistics of a fit of the same rows would.
func (t *Tally) Stats() *Stats {
	m := t.m
	s := &Stats{categorical: m.CategoricalColumns(), numeric: slices.Clone(m.numeric), label: m.label, rows: t.rows,
		cols: make([]labelCounts, len(m.cats)), spec: m.spec}
	for i, c := range m.cats {
		lc := labelCounts{index: map[string]int{}}
		for k, n := range t.counts[i] {
			if n > 0 {
				lc.index[c.labels[k]] = len(lc.labels)
				lc.labels = append(lc.labels, c.labels[k])
				lc.counts = append(lc.counts, n)
			}
		}
		s.cols[i] = lc
	}
	return s
}
