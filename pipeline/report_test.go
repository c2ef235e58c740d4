package pipeline

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardprep/shardprep/features"
)

// TestReportOf100kSplits: the report of a job of 100,000 splits, each
// tried on one of 100 workers (some twice), stays under 1 MB.
func TestReportOf100kSplits(t *testing.T) {
	spec, err := features.ParseSpec([]byte(`{"columns":[{"name":"c","type":"string"},{"name":"x","type":"double"},{"name":"y","type":"double"}],
	  "categorical":["c"],"numeric":["x"],"label":"y","splits":[{"name":"train","weight":0.8},{"name":"validation","weight":0.2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	const splits = 100_000
	m := &Manifest{Layout: manifestVersion, Job: "big", RunID: "r", Spec: spec, Started: time.Now(),
		Totals:  totals{RowsIn: splits * 1000, RowsOut: map[string]int64{"train": splits * 800, "validation": splits * 200}},
		Timings: phaseTimings{FitMS: 400_000, TransformMS: 600_000, CommitMS: 5000, TotalMS: 1_005_000}}
	for i := range splits {
		m.Parts = append(m.Parts, partSummary{Split: i, Length: 32 << 20, RowsIn: 1000 + int64(i%7),
			RowsOut: map[string]int64{"train": 800, "validation": 200 + int64(i%7)}})
		for _, ph := range []Phase{PhaseFit, PhaseTransform} {
			start := int64(i) * 4 * int64(phaseIndex(ph)+1)
			m.Attempts = append(m.Attempts, taskAttempt{Split: i, Phase: ph, Attempt: 1, Worker: fmt.Sprintf("worker-%03d", i%100),
				StartMS: start, EndMS: start + 3000, Outcome: attemptDone})
			if i%1000 == 0 {
				m.Attempts[len(m.Attempts)-1].Outcome = attemptExpired
				m.Attempts = append(m.Attempts, taskAttempt{Split: i, Phase: ph, Attempt: 2, Worker: "worker-000",
					StartMS: start + 3000, EndMS: start + 6000, Outcome: attemptDone})
			}
		}
	}
	var b bytes.Buffer
	if err := writeReport(&b, m, ""); err != nil {
		t.Fatal(err)
	}
	if b.Len() > 1<<20 {
		t.Errorf("report of %d splits: %d bytes, want under 1 MiB", splits, b.Len())
	}
	if !strings.Contains(b.String(), "busy time per worker") || strings.Count(b.String(), "<rect") < 100 {
		t.Error("the timeline of many attempts is not aggregated")
	}
	t.Logf("report of %d splits, %d attempts: %d bytes", splits, len(m.Attempts), b.Len())
}
