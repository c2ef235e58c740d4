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
	m    *Model
	rows int64
	// counts are per categorical column (for stages: per input column
	// of each StringIndexer, from base[stage] on), per label index.
	counts [][]int64
	batch  [][]int64 // the counts of the batch being transformed
	base   map[int]int
}

// FitsLabelCounts reports whether fitting the spec only counts labels,
// so that a model of it can keep a Tally: the categorical/numeric form,
// or stages fitted in one pass whose only fitted stages are StringIndexers
// that the features need, no column indexed twice.
func (s *Spec) FitsLabelCounts() bool {
	if !s.HasStages() {
		return true
	}
	g, err := buildGraph(s)
	if err != nil || g.passes != 1 {
		return false
	}
	run := g.needed([]string{g.feats}, len(g.stages))
	indexed := map[string]bool{}
	for i, d := range g.stages {
		if g.fitPass[i] == 0 {
			continue
		}
		if d.class != "StringIndexer" || !run[i] {
			return false
		}
		for _, c := range d.in {
			if indexed[c] {
				return false
			}
			indexed[c] = true
		}
	}
	return true
}

// NewTally returns an empty tally of m's labels, for a complete model of
// a spec whose fit only counts labels (see Spec.FitsLabelCounts).
func (m *Model) NewTally() (*Tally, error) {
	if m == nil || m.schema == nil {
		return nil, errors.New("features: model not initialised or not complete")
	}
	t := &Tally{m: m}
	add := func(labels []string) {
		t.counts = append(t.counts, make([]int64, len(labels)))
		t.batch = append(t.batch, make([]int64, len(labels)))
	}
	if p := m.pipe; p != nil {
		if !p.spec.FitsLabelCounts() {
			return nil, errors.New("features: the fit of the model's stages does more than count labels")
		}
		t.base = map[int]int{}
		for i, fs := range p.fits {
			if p.g.fitPass[i] == 1 {
				t.base[i] = len(t.counts)
				for _, ls := range fs.labels {
					add(ls)
				}
			}
		}
		return t, nil
	}
	for _, c := range m.cats {
		add(c.labels)
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
	if p := m.pipe; p != nil {
		st := newStageStats(p, 1)
		for i, a := range st.accs {
			for j := range a.labels {
				for k, n := range t.counts[t.base[i]+j] {
					if n > 0 {
						a.labels[j].add(p.fits[i].labels[j][k], n)
					}
				}
			}
		}
		st.rows = t.rows
		return &Stats{label: m.label, gen: st}
	}
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
