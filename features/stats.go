package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// StatsVersion is the version written in Stats JSON.
const StatsVersion = 1

// Stats are the fit statistics of a Spec over some rows: for each
// categorical column, how many times each label occurs, and the row count.
// Stats computed over disjoint parts of the input and merged (in any order
// and grouping) equal the stats of the whole input, so the fit pass can be
// spread over workers and processes. A Stats is not safe for concurrent
// use; give each goroutine its own and Merge them.
type Stats struct {
	categorical []string
	numeric     []string
	label       string
	rows        int64
	cols        []labelCounts // one per categorical column, in spec order
	gen         *stageStats   // a spec with stages: one fit pass's statistics
	spec        *Spec         // the spec of NewStats, which the model carries; nil from JSON
}

// labelCounts counts the labels of one column in first-seen order.
type labelCounts struct {
	index  map[string]int // label -> position in labels/counts
	labels []string
	counts []int64
}

// add counts label n times. label may alias Arrow memory: it is only
// stored (copied) when first seen.
func (c *labelCounts) add(label string, n int64) {
	c.counts[c.find(label)] += n
}

// find returns the position of label, which it adds with a count of 0
// when it is new. A few labels are compared in turn, which beats hashing.
func (c *labelCounts) find(label string) int {
	if len(c.labels) <= 8 {
		for i, l := range c.labels {
			if l == label {
				return i
			}
		}
	} else if i, ok := c.index[label]; ok {
		return i
	}
	label = strings.Clone(label)
	c.index[label] = len(c.labels)
	c.labels = append(c.labels, label)
	c.counts = append(c.counts, 0)
	return len(c.labels) - 1
}

// addStrings counts the labels of col, looking up only those that differ
// from the row before.
func (c *labelCounts) addStrings(col *array.String) {
	last, k := "", -1
	for r := range col.Len() {
		if v := col.Value(r); k < 0 || v != last {
			last, k = v, c.find(v)
		}
		c.counts[k]++
	}
}

// NewStats returns empty stats for spec, which must be valid.
func NewStats(spec *Spec) *Stats {
	if spec.HasStages() {
		p, err := newPipe(spec)
		if err != nil {
			return &Stats{label: spec.Label, gen: &stageStats{err: err}}
		}
		return &Stats{label: spec.Label, gen: newStageStats(p, 1)}
	}
	s := &Stats{
		spec:        spec,
		categorical: slices.Clone(spec.Categorical),
		numeric:     slices.Clone(spec.Numeric),
		label:       spec.Label,
	}
	s.cols = make([]labelCounts, len(s.categorical))
	for i := range s.cols {
		s.cols[i].index = make(map[string]int)
	}
	return s
}

func (s *Stats) ready() error {
	if s == nil || s.label == "" {
		return errors.New("features: stats not initialised (use NewStats or UnmarshalJSON)")
	}
	return nil
}

// Rows is the number of rows counted.
func (s *Stats) Rows() int64 {
	if s.gen != nil {
		return s.gen.rows
	}
	return s.rows
}

// DecodeColumns are the CSV columns this fit pass reads, in file order,
// for a spec with stages; nil for the flat form.
func (s *Stats) DecodeColumns() []string {
	if s.gen == nil || s.gen.p == nil {
		return nil
	}
	return s.gen.p.decodeColumns(s.gen.pass)
}

// Add counts the rows of rec. It finds the categorical columns in rec by
// name (rec may hold other columns too, which are ignored); each must be a
// string column (utf8, large_utf8 or string_view). A null label is a
// *RowError naming the first such row; on any error nothing is counted.
// rec is only read, never retained.
//
// For a spec with stages, rec goes through the stages fitted in earlier
// passes; every row a stage refuses is left out and the rows refused come
// back as RowErrors (rows a stage drops by handleInvalid "skip" are left
// out silently, as Spark drops them). Its scratch memory comes from the
// default allocator.
func (s *Stats) Add(rec arrow.Record) error {
	if err := s.ready(); err != nil {
		return err
	}
	if s.gen != nil {
		if s.gen.err != nil {
			return s.gen.err
		}
		return s.gen.add(rec, memory.DefaultAllocator)
	}
	cols := make([]array.StringLike, len(s.categorical))
	for i, name := range s.categorical {
		col, err := stringColumn(rec, name)
		if err != nil {
			return err
		}
		if col.NullN() > 0 {
			for r := 0; r < col.Len(); r++ {
				if col.IsNull(r) {
					return &RowError{Row: r, Column: name, Reason: ReasonNull}
				}
			}
		}
		cols[i] = col
	}
	for i, col := range cols {
		c := &s.cols[i]
		n := col.Len()
		if n == 0 {
			continue
		}
		if sc, ok := col.(*array.String); ok {
			c.addStrings(sc)
			continue
		}
		// Runs of the same label are common in sorted or grouped input;
		// count them without a map lookup per row.
		run, runLen := col.Value(0), int64(1)
		for r := 1; r < n; r++ {
			if v := col.Value(r); v == run {
				runLen++
			} else {
				c.add(run, runLen)
				run, runLen = v, 1
			}
		}
		c.add(run, runLen)
	}
	s.rows += rec.NumRows()
	return nil
}

// column finds the single column of rec called name.
func column(rec arrow.Record, name string) (arrow.Array, error) {
	idx := rec.Schema().FieldIndices(name)
	switch len(idx) {
	case 0:
		return nil, fmt.Errorf("features: record has no column %q", name)
	case 1:
		return rec.Column(idx[0]), nil
	}
	return nil, fmt.Errorf("features: record has %d columns called %q", len(idx), name)
}

func stringColumn(rec arrow.Record, name string) (array.StringLike, error) {
	col, err := column(rec, name)
	if err != nil {
		return nil, err
	}
	s, ok := col.(array.StringLike)
	if !ok {
		return nil, fmt.Errorf("features: column %q is %s, want a string column", name, col.DataType())
	}
	return s, nil
}

func float64Column(rec arrow.Record, name string) (*array.Float64, error) {
	col, err := column(rec, name)
	if err != nil {
		return nil, err
	}
	f, ok := col.(*array.Float64)
	if !ok {
		return nil, fmt.Errorf("features: column %q is %s, want float64", name, col.DataType())
	}
	return f, nil
}

func (s *Stats) sameSpec(o *Stats) error {
	switch {
	case !slices.Equal(s.categorical, o.categorical):
		return fmt.Errorf("features: stats for different specs: categorical %q vs %q", s.categorical, o.categorical)
	case !slices.Equal(s.numeric, o.numeric):
		return fmt.Errorf("features: stats for different specs: numeric %q vs %q", s.numeric, o.numeric)
	case s.label != o.label:
		return fmt.Errorf("features: stats for different specs: label %q vs %q", s.label, o.label)
	}
	return nil
}

// Merge adds o's counts to s. Merging is associative and commutative. It is
// an error (and s is left unchanged) if o was made for a different spec
// (categorical, numeric or label columns differ).
func (s *Stats) Merge(o *Stats) error {
	if err := s.ready(); err != nil {
		return err
	}
	if err := o.ready(); err != nil {
		return err
	}
	if (s.gen == nil) != (o.gen == nil) {
		return errors.New("features: stats of a spec with stages and of a flat spec")
	}
	if s.gen != nil {
		return s.gen.merge(o.gen)
	}
	if err := s.sameSpec(o); err != nil {
		return err
	}
	if o == s {
		for i := range s.cols {
			for j := range s.cols[i].counts {
				s.cols[i].counts[j] *= 2
			}
		}
		s.rows *= 2
		return nil
	}
	for i := range o.cols {
		oc := &o.cols[i]
		for j, label := range oc.labels {
			s.cols[i].add(label, oc.counts[j])
		}
	}
	s.rows += o.rows
	return nil
}

// Model fits the model: for each categorical column its labels ordered by
// descending count, equal counts by ascending byte order (Spark's
// StringIndexer "frequencyDesc"). A categorical column without any label
// (no rows were counted) is an error, and so is an empty feature vector
// (every categorical column has a single label and there are no numeric
// columns).
func (s *Stats) Model() (*Model, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if s.gen != nil {
		if s.gen.p == nil {
			return nil, errors.New("features: stats read from JSON cannot fit; merge them into stats from NewStats")
		}
		return s.gen.model()
	}
	cols := make([]fitColumn, len(s.cols))
	for i := range s.cols {
		c := &s.cols[i]
		if len(c.labels) == 0 {
			return nil, fmt.Errorf("features: column %q has no labels: no rows were fitted", s.categorical[i])
		}
		order := make([]int, len(c.labels))
		for j := range order {
			order[j] = j
		}
		sort.Slice(order, func(a, b int) bool {
			ca, cb := c.counts[order[a]], c.counts[order[b]]
			if ca != cb {
				return ca > cb
			}
			return c.labels[order[a]] < c.labels[order[b]] // Go compares strings bytewise
		})
		fc := fitColumn{name: s.categorical[i], labels: make([]string, len(order)), counts: make([]int64, len(order))}
		for j, k := range order {
			fc.labels[j], fc.counts[j] = c.labels[k], c.counts[k]
		}
		cols[i] = fc
	}
	m, err := newModel(s.label, s.numeric, s.rows, cols)
	if err != nil {
		return nil, err
	}
	m.spec = s.spec
	return m, nil
}

// MarshalJSON encodes the stats as
//
//	{"version":1,"label":"rings","numeric":["length",...],"rows":4177,
//	 "categorical":[{"column":"sex","labels":[{"label":"F","count":1307},...]}]}
//
// with each column's labels in ascending byte order, so equal stats encode
// to equal bytes. A label that is not valid UTF-8 is written as
// "label_base64" instead of "label".
func (s *Stats) MarshalJSON() ([]byte, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if s.gen != nil {
		return s.gen.marshal()
	}
	w := wireFit{Version: StatsVersion, Label: s.label, Numeric: nonNil(s.numeric), Rows: s.rows, Categorical: make([]wireColumn, len(s.cols))}
	for i := range s.cols {
		c := &s.cols[i]
		order := make([]int, len(c.labels))
		for j := range order {
			order[j] = j
		}
		sort.Slice(order, func(a, b int) bool { return c.labels[order[a]] < c.labels[order[b]] })
		labels := make([]string, len(order))
		counts := make([]int64, len(order))
		for j, k := range order {
			labels[j], counts[j] = c.labels[k], c.counts[k]
		}
		w.Categorical[i] = wireColumnOf(s.categorical[i], labels, counts)
	}
	return json.Marshal(w)
}

// UnmarshalJSON replaces s with the stats encoded by MarshalJSON. The input
// is checked: unknown fields, duplicate labels or columns, counts < 1 and
// per-column counts that do not add up to rows are errors.
func (s *Stats) UnmarshalJSON(data []byte) error {
	if hasStages(data) {
		g, err := unmarshalStageStats(data)
		if err != nil {
			return err
		}
		*s = Stats{label: "-", gen: g}
		return nil
	}
	w, cols, err := decodeFit(data, "stats", StatsVersion, 1)
	if err != nil {
		return err
	}
	n := Stats{label: w.Label, numeric: nonNil(w.Numeric), rows: w.Rows, categorical: make([]string, len(cols)), cols: make([]labelCounts, len(cols))}
	for i, fc := range cols {
		var sum int64
		for _, c := range fc.counts {
			sum += c
		}
		if sum != w.Rows {
			return fmt.Errorf("stats: column %q: counts add up to %d, want rows = %d", fc.name, sum, w.Rows)
		}
		n.categorical[i] = fc.name
		idx := make(map[string]int, len(fc.labels))
		for j, l := range fc.labels {
			idx[l] = j
		}
		n.cols[i] = labelCounts{index: idx, labels: fc.labels, counts: fc.counts}
	}
	*s = n
	return nil
}
