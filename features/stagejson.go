package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// stagesModelVersion is the version of the JSON of a model (and of fit
// statistics) of a spec with stages.
const stagesModelVersion = 2

// wireStagesModel is the JSON of a model of a spec with stages: the spec
// itself, so that the model alone can transform, the fit passes done and
// every stage's fitted values ({} for a stage that learns nothing).
type wireStagesModel struct {
	Version int          `json:"version"`
	Spec    *Spec        `json:"spec"`
	Passes  int          `json:"passes"`
	Fitted  int          `json:"fitted_passes"`
	Rows    int64        `json:"rows"`
	Stages  []wireFitted `json:"stages"`
}

type wireFitted struct {
	Stage      string       `json:"stage"`
	Labels     []wireColumn `json:"labels,omitempty"`
	Sizes      []int        `json:"sizes,omitempty"`
	Surrogates []jsonFloat  `json:"surrogates,omitempty"`
	Mean       []jsonFloat  `json:"mean,omitempty"`
	Std        []jsonFloat  `json:"std,omitempty"`
	Min        []jsonFloat  `json:"min,omitempty"`
	Max        []jsonFloat  `json:"max,omitempty"`
}

// hasStages reports whether data is the JSON of a model or stats of a
// spec with stages: an object with "stages".
func hasStages(data []byte) bool {
	var v struct {
		Stages json.RawMessage `json:"stages"`
	}
	return json.Unmarshal(data, &v) == nil && v.Stages != nil
}

func floatsOut(v []float64) []jsonFloat {
	out := make([]jsonFloat, len(v))
	for i, f := range v {
		out[i] = jsonFloat(f)
	}
	return out
}

func floatsIn(v []jsonFloat) []float64 {
	if v == nil {
		return nil
	}
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

func (p *pipe) marshal() ([]byte, error) {
	w := wireStagesModel{Version: stagesModelVersion, Spec: p.spec, Passes: p.g.passes, Fitted: p.passes, Rows: p.rows}
	for i, d := range p.g.stages {
		wf := wireFitted{Stage: d.class}
		if fs := p.fits[i]; fs != nil && !(d.class == "OneHotEncoder" && p.g.fitPass[i] == 0) {
			for j := range fs.labels {
				wf.Labels = append(wf.Labels, wireColumnOf(d.in[j], fs.labels[j], fs.counts[j]))
			}
			wf.Sizes = fs.sizes
			wf.Surrogates = floatsOut(fs.surrogates)
			if d.class == "StandardScaler" {
				wf.Mean, wf.Std = floatsOut(fs.mean), floatsOut(fs.std)
			} else {
				wf.Min, wf.Max = floatsOut(fs.emin), floatsOut(fs.emax)
			}
		}
		w.Stages = append(w.Stages, wf)
	}
	return json.Marshal(w)
}

// unmarshalPipe reads what marshal wrote and checks it against its spec.
func unmarshalPipe(data []byte) (*pipe, error) {
	var w wireStagesModel
	if err := decodeStrict(data, &w); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if w.Version != stagesModelVersion {
		return nil, fmt.Errorf("model: version %d: want %d", w.Version, stagesModelVersion)
	}
	if w.Spec == nil {
		return nil, errors.New("model: spec is missing")
	}
	if err := w.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	p, err := newPipe(w.Spec)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if w.Passes != p.g.passes || w.Fitted < 0 || w.Fitted > w.Passes || len(w.Stages) != len(p.g.stages) || w.Rows < 0 {
		return nil, fmt.Errorf("model: %d fitted of %d passes and %d stages do not fit its spec (%d passes, %d stages)", w.Fitted, w.Passes, len(w.Stages), p.g.passes, len(p.g.stages))
	}
	p.passes, p.rows = w.Fitted, w.Rows
	for i, d := range p.g.stages {
		wf := w.Stages[i]
		if wf.Stage != d.class {
			return nil, fmt.Errorf("model: stages[%d] is %s, its spec says %s", i, wf.Stage, d.class)
		}
		if p.g.fitPass[i] == 0 || p.g.fitPass[i] > p.passes {
			continue
		}
		fs, err := readFitted(d, wf)
		if err != nil {
			return nil, fmt.Errorf("model: %s: %w", d.name(), err)
		}
		p.fits[i] = fs
	}
	p.complete()
	if p.passes == p.g.passes {
		if err := p.checkWidths(); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
	}
	return p, nil
}

// readFitted reads and checks one stage's fitted values.
func readFitted(d *stageDef, wf wireFitted) (*fittedStage, error) {
	fs := &fittedStage{sizes: wf.Sizes, surrogates: floatsIn(wf.Surrogates), mean: floatsIn(wf.Mean), std: floatsIn(wf.Std),
		emin: floatsIn(wf.Min), emax: floatsIn(wf.Max)}
	n := len(d.in)
	switch d.class {
	case "StringIndexer":
		if len(wf.Labels) != n {
			return nil, fmt.Errorf("%d label lists for %d input columns", len(wf.Labels), n)
		}
		for j, c := range wf.Labels {
			if c.Column != d.in[j] || len(c.Labels) == 0 {
				return nil, fmt.Errorf("labels[%d]: column %q with %d labels, want %q with at least one", j, c.Column, len(c.Labels), d.in[j])
			}
			var labels []string
			var counts []int64
			for k, wl := range c.Labels {
				l, cnt, err := wl.decode()
				if err != nil {
					return nil, fmt.Errorf("labels[%d][%d]: %w", j, k, err)
				}
				if slices.Contains(labels, l) {
					return nil, fmt.Errorf("labels[%d]: label %q is listed twice", j, l)
				}
				labels, counts = append(labels, l), append(counts, cnt)
			}
			fs.labels, fs.counts = append(fs.labels, labels), append(fs.counts, counts)
		}
		fs.buildIndex()
	case "OneHotEncoder":
		if len(fs.sizes) != n {
			return nil, fmt.Errorf("%d sizes for %d input columns", len(fs.sizes), n)
		}
	case "Imputer":
		if len(fs.surrogates) != n {
			return nil, fmt.Errorf("%d surrogates for %d input columns", len(fs.surrogates), n)
		}
	case "StandardScaler":
		if len(fs.mean) != len(fs.std) {
			return nil, fmt.Errorf("%d means and %d stds", len(fs.mean), len(fs.std))
		}
	default:
		if len(fs.emin) != len(fs.emax) {
			return nil, fmt.Errorf("%d min and %d max", len(fs.emin), len(fs.emax))
		}
	}
	return fs, nil
}

// checkWidths checks that every scaler's fitted slots match its input's
// width, so a model read from JSON cannot index out of range.
func (p *pipe) checkWidths() error {
	for i, d := range p.g.stages {
		fs := p.fits[i]
		var n int
		switch d.class {
		case "StandardScaler":
			n = len(fs.mean)
		case "MinMaxScaler", "MaxAbsScaler":
			n = len(fs.emin)
		case "OneHotEncoder":
			for _, k := range fs.sizes {
				if k < 1 || k > math.MaxInt32 {
					return fmt.Errorf("%s: %d categories", d.name(), k)
				}
			}
			continue
		default:
			continue
		}
		if w := p.widthOf(d.in[0]); w != n {
			return fmt.Errorf("%s: %d fitted slots for a vector of %d", d.name(), n, w)
		}
	}
	return nil
}

// wireStageStats is the JSON of one pass's fit statistics.
type wireStageStats struct {
	Version int       `json:"version"`
	Pass    int       `json:"pass"`
	Rows    int64     `json:"rows"`
	Stages  []wireAcc `json:"stages"`
}

type wireAcc struct {
	Stage    int             `json:"stage"`
	Labels   []wireColumn    `json:"labels,omitempty"`
	MaxIndex []jsonFloat     `json:"max_index,omitempty"`
	Numbers  []ColumnSummary `json:"numbers,omitempty"`
	Width    int             `json:"width"`
	Values   []wireValues    `json:"values,omitempty"`
}

type wireValues struct {
	Value []jsonFloat `json:"value"`
	Count []int64     `json:"count"`
}

func (s *stageStats) marshal() ([]byte, error) {
	w := wireStageStats{Version: stagesModelVersion, Pass: s.pass, Rows: s.rows, Stages: []wireAcc{}}
	idx := make([]int, 0, len(s.accs))
	for i := range s.accs {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		a := s.accs[i]
		wa := wireAcc{Stage: i, MaxIndex: floatsOut(a.maxIdx), Width: a.width}
		for j := range a.labels {
			c := &a.labels[j]
			order := make([]int, len(c.labels))
			for k := range order {
				order[k] = k
			}
			sort.Slice(order, func(x, y int) bool { return c.labels[order[x]] < c.labels[order[y]] })
			ls, cs := make([]string, len(order)), make([]int64, len(order))
			for k, o := range order {
				ls[k], cs[k] = c.labels[o], c.counts[o]
			}
			wa.Labels = append(wa.Labels, wireColumnOf(strconvItoa(j), ls, cs))
		}
		for k := range a.nums {
			wa.Numbers = append(wa.Numbers, a.nums[k].summary(strconvItoa(k)))
		}
		for _, m := range a.values {
			keys := make([]float64, 0, len(m))
			for b := range m {
				keys = append(keys, math.Float64frombits(b))
			}
			slices.SortFunc(keys, javaCompare)
			wv := wireValues{Value: floatsOut(keys), Count: make([]int64, len(keys))}
			for k, v := range keys {
				wv.Count[k] = m[math.Float64bits(v)]
			}
			wa.Values = append(wa.Values, wv)
		}
		w.Stages = append(w.Stages, wa)
	}
	return json.Marshal(w)
}

func strconvItoa(i int) string { return fmt.Sprint(i) }

func unmarshalStageStats(data []byte) (*stageStats, error) {
	var w wireStageStats
	if err := decodeStrict(data, &w); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	if w.Version != stagesModelVersion || w.Pass < 1 || w.Rows < 0 {
		return nil, fmt.Errorf("stats: pass %d, rows %d", w.Pass, w.Rows)
	}
	s := &stageStats{pass: w.Pass, rows: w.Rows, accs: map[int]*stageAcc{}}
	for _, wa := range w.Stages {
		if _, dup := s.accs[wa.Stage]; dup || wa.Stage < 0 {
			return nil, fmt.Errorf("stats: stage %d twice or out of range", wa.Stage)
		}
		a := &stageAcc{stage: wa.Stage, maxIdx: floatsIn(wa.MaxIndex), width: wa.Width}
		for _, c := range wa.Labels {
			lc := labelCounts{index: map[string]int{}}
			for _, wl := range c.Labels {
				l, n, err := wl.decode()
				if err != nil || n < 1 {
					return nil, fmt.Errorf("stats: stage %d: bad label count (%v)", wa.Stage, err)
				}
				lc.add(l, n)
			}
			a.labels = append(a.labels, lc)
		}
		for k := range wa.Numbers {
			n, err := wa.Numbers[k].stats()
			if err != nil {
				return nil, fmt.Errorf("stats: stage %d: %w", wa.Stage, err)
			}
			a.nums = append(a.nums, n)
		}
		for _, wv := range wa.Values {
			if len(wv.Value) != len(wv.Count) {
				return nil, fmt.Errorf("stats: stage %d: %d values and %d counts", wa.Stage, len(wv.Value), len(wv.Count))
			}
			m := make(map[uint64]int64, len(wv.Value))
			for k, v := range wv.Value {
				m[math.Float64bits(float64(v))] += wv.Count[k]
			}
			a.values = append(a.values, m)
		}
		s.accs[wa.Stage] = a
	}
	return s, nil
}
