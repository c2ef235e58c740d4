package features

import "fmt"

// AddLabels adds vals, values of the label column, none of them null, to
// the label's stats of split k. With it, the label of rows drawn into
// splits only after their other columns were added (by Add, with no rows
// for any split) is counted as Add counts it.
func (s *ColumnStats) AddLabels(k int, vals []float64) error {
	if s == nil || s.label == "" {
		return fmt.Errorf("features: column stats not initialised")
	}
	if k < 0 || k >= len(s.labels) {
		return fmt.Errorf("features: split %d of %d", k, len(s.labels))
	}
	n := &s.labels[k]
	for len(vals) > 0 {
		m := min(len(vals), 4096)
		n.accumulate(m).addValues(n, vals[:m])
		vals = vals[m:]
	}
	return nil
}
