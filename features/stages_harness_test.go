package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// stagesSpec makes a spec of the given columns (JSON list entries) plus
// a double label "y" last, the stages (a JSON list) and features column.
func stagesSpec(t testing.TB, cols, stages, feats string) *Spec {
	t.Helper()
	js := fmt.Sprintf(`{"columns": [%s, {"name":"y","type":"double"}], "stages": %s, "label": "y", "features": %q,
	  "splits": [{"name":"all","weight":1}]}`, cols, stages, feats)
	spec, err := ParseSpec([]byte(js))
	if err != nil {
		t.Fatalf("spec: %v\n%s", err, js)
	}
	return spec
}

// fitRecords fits spec pass by pass, each record counted in stats of its
// own that travel through JSON and merge, as workers' do.
func fitRecords(spec *Spec, recs ...arrow.Record) (*Model, error) {
	st := NewStats(spec)
	for {
		for _, rec := range recs {
			part := st.fresh()
			if err := part.Add(rec); err != nil {
				var bad RowErrors
				if !errors.As(err, &bad) {
					return nil, err
				}
			}
			b, err := json.Marshal(part)
			if err != nil {
				return nil, err
			}
			var back Stats
			if err := json.Unmarshal(b, &back); err != nil {
				return nil, fmt.Errorf("%v: %s", err, b)
			}
			if err := st.Merge(&back); err != nil {
				return nil, err
			}
		}
		m, err := st.Model()
		if err != nil {
			return nil, err
		}
		if total, done := m.Passes(); done == total {
			return m, nil
		}
		st = m.NextStats()
	}
}

// fresh returns empty stats of the same pass as s.
func (s *Stats) fresh() *Stats {
	return &Stats{label: s.label, gen: newStageStats(s.gen.p, s.gen.pass)}
}

// result is the transform of each row: its features, or why it was left
// out.
type result struct {
	feats [][]float64 // nil for a row left out
	bad   map[int]*RowError
}

// transformRows transforms rows with m: first once to learn the bad rows,
// then the others, as the pipeline does.
func transformRows(t *testing.T, m *Model, spec *Spec, rows [][]any) result {
	t.Helper()
	mem := checkedMem(t)
	rec := recordOf(t, mem, spec.Schema(), rows)
	defer rec.Release()
	res := result{feats: make([][]float64, len(rows)), bad: map[int]*RowError{}}
	out, err := m.Transform(rec, mem)
	keep := make([]int, 0, len(rows))
	if err != nil {
		var bad RowErrors
		if !errors.As(err, &bad) {
			t.Fatalf("transform: %v", err)
		}
		for _, e := range bad {
			res.bad[e.Row] = e
		}
		var good [][]any
		for r, row := range rows {
			if res.bad[r] == nil {
				good = append(good, row)
				keep = append(keep, r)
			}
		}
		kept := recordOf(t, mem, spec.Schema(), good)
		defer kept.Release()
		if out, err = m.Transform(kept, mem); err != nil {
			t.Fatalf("transform of the good rows: %v", err)
		}
	} else {
		for r := range rows {
			keep = append(keep, r)
		}
	}
	defer out.Release()
	list := out.Column(1).(*array.FixedSizeList)
	vals := list.ListValues().(*array.Float64).Float64Values()
	w := m.Width()
	for i, r := range keep {
		res.feats[r] = append([]float64(nil), vals[i*w:i*w+w]...)
	}
	return res
}

// sameFloats compares bit for bit (-0.0 is not 0.0), NaN equal to NaN.
func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != a[i] && b[i] != b[i] {
			continue
		}
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

// stageCase is one table row: a pipeline, the rows it is fitted on, the
// rows it transforms (nil: the same) and per transformed row the
// features wanted, or a substring of the reason it is left out (with
// "dropped:" first for a row a stage drops).
type stageCase struct {
	name    string
	cols    string
	stages  string
	feats   string
	fit     [][]any
	apply   [][]any
	want    [][]float64
	refused map[int]string
	fitErr  string
}

func runStageCases(t *testing.T, cases []stageCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := stagesSpec(t, c.cols, c.stages, c.feats)
			mem := checkedMem(t)
			fitRec := recordOf(t, mem, spec.Schema(), c.fit)
			defer fitRec.Release()
			// Two parts, so that the fit goes through a merge.
			half := fitRec.NumRows() / 2
			a, b := fitRec.NewSlice(0, half), fitRec.NewSlice(half, fitRec.NumRows())
			defer a.Release()
			defer b.Release()
			m, err := fitRecords(spec, a, b)
			if c.fitErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.fitErr) {
					t.Fatalf("fit error %v, want one with %q", err, c.fitErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rows := c.apply
			if rows == nil {
				rows = c.fit
			}
			checkResult(t, transformRows(t, m, spec, rows), c)
		})
	}
}

func checkResult(t *testing.T, res result, c stageCase) {
	t.Helper()
	for r := range res.feats {
		if why, ok := c.refused[r]; ok {
			e := res.bad[r]
			dropped := strings.HasPrefix(why, "dropped:")
			why = strings.TrimPrefix(why, "dropped:")
			if e == nil || !strings.Contains(e.Error(), why) || e.Dropped != dropped {
				t.Errorf("row %d: %v (dropped %v), want refused for %q (dropped %v)", r, e, e != nil && e.Dropped, why, dropped)
			}
			continue
		}
		if res.bad[r] != nil {
			t.Errorf("row %d refused: %v", r, res.bad[r])
			continue
		}
		if r >= len(c.want) || !sameFloats(res.feats[r], c.want[r]) {
			var w []float64
			if r < len(c.want) {
				w = c.want[r]
			}
			t.Errorf("row %d: features %v, want %v", r, res.feats[r], w)
		}
	}
}
