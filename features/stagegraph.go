package features

import (
	"errors"
	"fmt"
)

// colInfo is what is known of a column before any data is read.
type colInfo struct {
	kind     colKind
	producer int  // index of the stage that makes it; -1 for a CSV column
	nominal  bool // carries nominal or binary metadata (an index OneHotEncoder can size without a fit)
	level    int  // fit passes needed before its values can be computed
}

// graph is a spec's stages checked as a DAG by column names, with the fit
// pass of each stage that needs one.
type graph struct {
	stages []*stageDef
	cols   map[string]*colInfo
	// fitPass is, per stage, the 1-based fit pass that fits it, 0 for a
	// stage that needs no fit (a transformer, or a OneHotEncoder sized by
	// its inputs' metadata).
	fitPass []int
	passes  int   // number of fit passes: the deepest fitPass, at least 1
	level   []int // per stage: the passes needed before its outputs can be computed
	label   string
	feats   string
}

// needsFit reports whether stage d learns from the data (given the
// kinds of its inputs).
func (g *graph) needsFit(d *stageDef) bool {
	switch d.class {
	case "StringIndexer", "Imputer", "StandardScaler", "MinMaxScaler", "MaxAbsScaler":
		return true
	case "OneHotEncoder":
		for _, c := range d.in {
			if !g.cols[c].nominal {
				return true
			}
		}
	}
	return false
}

// wantKinds are the input kinds each class accepts.
var wantKinds = map[string][]colKind{
	"StringIndexer":   {kindString, kindDouble},
	"OneHotEncoder":   {kindDouble},
	"VectorAssembler": {kindDouble, kindVector},
	"Imputer":         {kindDouble},
	"StandardScaler":  {kindVector},
	"MinMaxScaler":    {kindVector},
	"MaxAbsScaler":    {kindVector},
	"Bucketizer":      {kindDouble},
	"Binarizer":       {kindDouble, kindVector},
}

// buildGraph checks the stages of spec against its columns: every input
// is a CSV column or made by an earlier stage, of a kind the stage takes;
// no name is made twice (or names a CSV column); the label is a double
// CSV column and the features column a double or vector one made by a
// stage. It assigns the fit passes.
func buildGraph(s *Spec) (*graph, error) {
	g := &graph{cols: map[string]*colInfo{}, label: s.Label, feats: s.Features}
	if g.feats == "" {
		g.feats = FeaturesField
	}
	for _, c := range s.Columns {
		k := kindDouble
		if c.Type == ColumnString {
			k = kindString
		}
		g.cols[c.Name] = &colInfo{kind: k, producer: -1}
	}
	dropLevel := 0 // rows that earlier stages drop are known after this many passes
	for i, st := range s.Stages {
		d, err := parseStage(i, st)
		if err != nil {
			return nil, err
		}
		level, err := g.checkInputs(d)
		if err != nil {
			return nil, err
		}
		pass := 0
		if g.needsFit(d) {
			pass = max(level, dropLevel) + 1
			level = pass
			g.passes = max(g.passes, pass)
		}
		if err := g.addOutputs(d, level); err != nil {
			return nil, err
		}
		if d.handleInvalid == invalidSkip {
			dropLevel = max(dropLevel, level)
		}
		g.stages = append(g.stages, d)
		g.fitPass = append(g.fitPass, pass)
		g.level = append(g.level, level)
	}
	g.passes = max(g.passes, 1)
	return g, g.checkEnds()
}

// checkInputs checks d's inputs and returns the deepest level among them.
func (g *graph) checkInputs(d *stageDef) (int, error) {
	level := 0
	for j, name := range d.in {
		c, ok := g.cols[name]
		if !ok {
			return 0, fmt.Errorf("spec: %s: input column %q is neither a CSV column nor made by an earlier stage", d.name(), name)
		}
		want := wantKinds[d.class]
		okKind := false
		for _, k := range want {
			okKind = okKind || k == c.kind
		}
		if !okKind {
			return 0, fmt.Errorf("spec: %s: input column %q is a %s column; %s takes %s", d.name(), name, c.kind, d.class, kindList(want))
		}
		if d.class == "VectorAssembler" && c.kind == kindString {
			return 0, fmt.Errorf("spec: %s: inputCols[%d] %q is a string column", d.name(), j, name)
		}
		level = max(level, c.level)
	}
	return level, nil
}

func kindList(ks []colKind) string {
	s := ""
	for i, k := range ks {
		if i > 0 {
			s += " or "
		}
		s += k.String()
	}
	return s
}

// addOutputs declares d's outputs, computable after level passes.
func (g *graph) addOutputs(d *stageDef, level int) error {
	for j, name := range d.out {
		if prev, ok := g.cols[name]; ok {
			if prev.producer < 0 {
				return fmt.Errorf("spec: %s: output column %q is a CSV column: give it another name", d.name(), name)
			}
			return fmt.Errorf("spec: %s: output column %q is already made by stages[%d]", d.name(), name, prev.producer)
		}
		c := &colInfo{producer: d.index, level: level}
		switch d.class {
		case "StringIndexer", "Bucketizer":
			c.kind, c.nominal = kindDouble, true
		case "Imputer":
			c.kind = kindDouble
		case "Binarizer":
			c.kind = g.cols[d.in[j]].kind
			c.nominal = c.kind == kindDouble
		default:
			c.kind = kindVector
		}
		g.cols[name] = c
	}
	return nil
}

// checkEnds checks the label and features columns.
func (g *graph) checkEnds() error {
	lc, ok := g.cols[g.label]
	switch {
	case g.label == "":
		return errors.New("spec: label is empty")
	case !ok:
		return fmt.Errorf("spec: label %q is not a declared column", g.label)
	case lc.producer >= 0 || lc.kind != kindDouble:
		return fmt.Errorf("spec: label %q: want a double column of the CSV", g.label)
	}
	fc, ok := g.cols[g.feats]
	switch {
	case !ok:
		return fmt.Errorf("spec: features %q is not made by any stage", g.feats)
	case fc.producer < 0:
		return fmt.Errorf("spec: features %q is a CSV column: name a column a stage makes (a VectorAssembler's outputCol)", g.feats)
	case fc.kind == kindString:
		return fmt.Errorf("spec: features %q is a string column: want a vector or double", g.feats)
	}
	return nil
}

// needed returns, per stage, whether the stage must run to compute the
// given target columns: the stages that make them or their inputs, and
// every stage before limit that drops rows (handleInvalid skip); only
// stages with index < limit are considered.
func (g *graph) needed(targets []string, limit int) []bool {
	run := make([]bool, len(g.stages))
	want := map[string]bool{}
	for _, t := range targets {
		want[t] = true
	}
	for i := limit - 1; i >= 0; i-- {
		d := g.stages[i]
		hit := d.handleInvalid == invalidSkip
		for _, o := range d.out {
			hit = hit || want[o]
		}
		if !hit {
			continue
		}
		run[i] = true
		for _, c := range d.in {
			want[c] = true
		}
	}
	return run
}

// inputColumns returns the CSV columns the stages marked in run read,
// plus extra, in the order of spec's columns.
func (g *graph) inputColumns(s *Spec, run []bool, extra ...string) []string {
	want := map[string]bool{}
	for _, e := range extra {
		want[e] = true
	}
	for i, d := range g.stages {
		if run[i] {
			for _, c := range d.in {
				want[c] = true
			}
		}
	}
	var out []string
	for _, c := range s.Columns {
		if want[c.Name] {
			out = append(out, c.Name)
		}
	}
	return out
}
