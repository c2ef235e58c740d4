//go:build !shardprep_nostats

package pipeline

import (
	"github.com/apache/arrow/go/v17/arrow"

	"github.com/shardprep/shardprep/features"
)

// columnStats is whether transform tasks compute column statistics and a
// committing job writes its report. The build tag shardprep_nostats turns
// both off, for one purpose only: measuring what they cost, side by side
// with the normal build (scripts/bench.sh --report-cost). Such a build
// writes the same parts, with no "columns" in its manifest and no report.
const columnStats = true

func newColumnStats(spec *features.Spec) *features.ColumnStats {
	return features.NewColumnStats(spec)
}

// addColumns adds the rows of rec, drawn into t.rows, to t's stats.
func (t *transformTask) addColumns(rec arrow.Record) error {
	return t.cols.Add(rec, t.rows)
}
