package features

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// pipe is a spec with stages, fitted up to some pass.
type pipe struct {
	spec   *Spec
	g      *graph
	fits   []*fittedStage // per stage; nil until fitted (and for transformers)
	passes int            // fit passes done
	rows   int64          // rows the last pass counted
}

func newPipe(spec *Spec) (*pipe, error) {
	g, err := buildGraph(spec)
	if err != nil {
		return nil, err
	}
	return &pipe{spec: spec, g: g, fits: make([]*fittedStage, len(g.stages))}, nil
}

// complete fits the OneHotEncoders sized by metadata whose inputs can be
// computed now.
func (p *pipe) complete() {
	for i, d := range p.g.stages {
		if d.class != "OneHotEncoder" || p.g.fitPass[i] != 0 || p.g.level[i] > p.passes || p.fits[i] != nil {
			continue
		}
		fs := &fittedStage{}
		for _, in := range d.in {
			fs.sizes = append(fs.sizes, p.g.categories(in, p.fits))
		}
		p.fits[i] = fs
	}
}

// categories is the number of categories a nominal column's metadata
// names: a StringIndexer's labels (and "__unknown" with keep), a
// Bucketizer's buckets, a Binarizer's two values.
func (g *graph) categories(col string, fits []*fittedStage) int {
	c := g.cols[col]
	if c.producer < 0 {
		return 0
	}
	d := g.stages[c.producer]
	j := slices.Index(d.out, col)
	switch d.class {
	case "StringIndexer":
		n := len(fits[c.producer].labels[j])
		if d.handleInvalid == invalidKeep {
			n++
		}
		return n
	case "Bucketizer":
		return len(d.splits[j]) - 1
	}
	return 2
}

// eval runs rec through the stages that targets need, up to the passes
// fitted; accs (by stage) accumulate instead of transforming. The caller
// releases the frame.
func (p *pipe) eval(rec arrow.Record, mem memory.Allocator, targets []string, accs map[int]*stageAcc, t *Tally) (*frame, error) {
	f := newFrame(rec, mem)
	f.tally = t
	limit := len(p.g.stages)
	if accs != nil {
		limit = 0
		for i := range accs {
			limit = max(limit, i+1)
		}
	}
	run := p.g.needed(targets, limit)
	for i, d := range p.g.stages[:limit] {
		if acc := accs[i]; acc != nil {
			if err := acc.add(f, d); err != nil {
				f.release()
				return nil, err
			}
			continue
		}
		if !run[i] || p.g.level[i] > p.passes {
			continue
		}
		if err := stageApply[d.class](f, d, p.fits[i]); err != nil {
			f.release()
			return nil, err
		}
	}
	return f, nil
}

// passTargets are the input columns of the stages fitted in pass, by
// stage.
func (p *pipe) passAccs(pass int) (map[int]*stageAcc, []string) {
	accs := map[int]*stageAcc{}
	var targets []string
	for i, d := range p.g.stages {
		if p.g.fitPass[i] == pass {
			accs[i] = newStageAcc(p.g, i)
			targets = append(targets, d.in...)
		}
	}
	return accs, targets
}

// decodeColumns are the CSV columns a pass (0: the transform) reads, in
// file order: those its stages need, and the label.
func (p *pipe) decodeColumns(pass int) []string {
	var run []bool
	if pass == 0 {
		run = p.g.needed([]string{p.g.feats}, len(p.g.stages))
	} else {
		accs, targets := p.passAccs(pass)
		limit := 0
		for i := range accs {
			limit = max(limit, i+1)
		}
		run = p.g.needed(targets, limit)
		for i := range accs {
			run[i] = true
		}
	}
	return p.g.inputColumns(p.spec, run, p.g.label)
}

// widthOf is the number of slots of a column: 1 for a double.
func (p *pipe) widthOf(col string) int {
	c := p.g.cols[col]
	if c.kind != kindVector {
		return 1
	}
	d := p.g.stages[c.producer]
	switch d.class {
	case "OneHotEncoder":
		return oneHotSize(d, p.fits[c.producer].sizes[slices.Index(d.out, col)])
	case "VectorAssembler":
		w := 0
		for _, in := range d.in {
			w += p.widthOf(in)
		}
		return w
	}
	return p.widthOf(d.in[slices.Index(d.out, col)])
}

// attrNames are the ML attribute names of a vector column's slots (nil:
// unnamed): a OneHotEncoder's category names, a VectorAssembler's slot
// names, a scaler's input's names.
func (p *pipe) attrNames(col string) []string {
	c := p.g.cols[col]
	if c.kind != kindVector {
		return nil
	}
	d := p.g.stages[c.producer]
	j := slices.Index(d.out, col)
	switch d.class {
	case "OneHotEncoder":
		return p.oneHotNames(d, j)
	case "VectorAssembler":
		var names []string
		for _, in := range d.in {
			names = append(names, p.slotNames(in)...)
		}
		return names
	case "Binarizer":
		return nil
	}
	return p.attrNames(d.in[j])
}

// slotNames names a column's slots inside a VectorAssembler: a double is
// its column's name, a vector slot "<col>_<attr>" (or "<col>_<i>").
func (p *pipe) slotNames(col string) []string {
	if p.g.cols[col].kind != kindVector {
		return []string{col}
	}
	attrs := p.attrNames(col)
	names := make([]string, p.widthOf(col))
	for i := range names {
		a := strconv.Itoa(i)
		if attrs != nil {
			a = attrs[i]
		}
		names[i] = col + "_" + a
	}
	return names
}

// oneHotNames names the slots of OneHotEncoder d's j-th output: its
// input's category names (StringIndexer labels, with "__unknown" under
// keep; Bucketizer's "a, b"; else "0", "1", ...), the last left out with
// dropLast, "invalidValues" appended with keep and no dropLast.
func (p *pipe) oneHotNames(d *stageDef, j int) []string {
	in := d.in[j]
	k := p.fits[d.index].sizes[j]
	var names []string
	c := p.g.cols[in]
	if c.producer >= 0 && c.nominal {
		src := p.g.stages[c.producer]
		sj := slices.Index(src.out, in)
		switch src.class {
		case "StringIndexer":
			names = slices.Clone(p.fits[c.producer].labels[sj])
			if src.handleInvalid == invalidKeep {
				names = append(names, "__unknown")
			}
		case "Bucketizer":
			s := src.splits[sj]
			for i := 0; i+1 < len(s); i++ {
				names = append(names, fmt.Sprintf("%s, %s", javaDouble(s[i]), javaDouble(s[i+1])))
			}
		}
	}
	if len(names) != k {
		names = make([]string, k)
		for i := range names {
			names[i] = strconv.Itoa(i)
		}
	}
	keep := d.handleInvalid == invalidKeep
	switch {
	case d.dropLast && !keep:
		names = names[:k-1]
	case !d.dropLast && keep:
		names = append(names, "invalidValues")
	}
	return names
}

// featureNames names the slots of the features column.
func (p *pipe) featureNames() []string {
	f := p.g.feats
	if p.g.cols[f].kind != kindVector {
		return []string{f}
	}
	if attrs := p.attrNames(f); attrs != nil {
		return attrs
	}
	return p.slotNames(f)
}

// transform evaluates rec through every needed stage and assembles the
// label and features columns; every row left out is in the RowErrors.
func (p *pipe) transform(rec arrow.Record, mem memory.Allocator, schema *arrow.Schema, t *Tally) (arrow.Record, error) {
	f, err := p.eval(rec, mem, []string{p.g.feats}, nil, t)
	if err != nil {
		return nil, err
	}
	defer f.release()
	label, err := f.input(&stageDef{index: -1, class: "label"}, p.g.label)
	if err != nil {
		return nil, err
	}
	feats, err := viewOf(f.cols[p.g.feats])
	if err != nil {
		return nil, err
	}
	var bad RowErrors
	for r := 0; r < f.n; r++ {
		switch {
		case f.bad[r] != nil:
			bad = append(bad, f.bad[r])
		case label.null(r):
			bad = append(bad, &RowError{Row: r, Column: p.g.label, Reason: ReasonNull + " label"})
		case feats.null(r):
			bad = append(bad, &RowError{Row: r, Column: p.g.feats, Reason: ReasonNull + " features (an input of its last stage is null)"})
		}
	}
	if len(bad) > 0 {
		return nil, bad
	}
	w := p.widthOf(p.g.feats)
	lb := newNumBuilder(mem, f.n, 0)
	fb := newNumBuilder(mem, f.n, w)
	for r := 0; r < f.n; r++ {
		lb.row(r)[0] = label.scalar(r)
		copy(fb.row(r), feats.slots(r))
	}
	la, fa := lb.finish(), fb.finish()
	defer la.Release()
	defer fa.Release()
	return array.NewRecord(schema, []arrow.Array{la, fa}, int64(f.n)), nil
}

// stageStats are the fit statistics of one pass of a spec with stages.
type stageStats struct {
	p    *pipe // nil for stats read from JSON, which only merge
	pass int
	accs map[int]*stageAcc
	rows int64
	err  error
}

func newStageStats(p *pipe, pass int) *stageStats {
	accs, _ := p.passAccs(pass)
	return &stageStats{p: p, pass: pass, accs: accs}
}

// add accumulates rec's rows; rows a stage refuses (not those it drops)
// come back as RowErrors, after the others are counted.
func (s *stageStats) add(rec arrow.Record, mem memory.Allocator) error {
	if s.p == nil {
		return fmt.Errorf("features: stats read from JSON cannot add rows")
	}
	_, targets := s.p.passAccs(s.pass)
	f, err := s.p.eval(rec, mem, targets, s.accs, nil)
	if err != nil {
		return err
	}
	defer f.release()
	s.rows += int64(f.n)
	var bad RowErrors
	for _, e := range f.bad {
		if e != nil && !e.Dropped {
			bad = append(bad, e)
		}
	}
	if len(bad) > 0 {
		return bad
	}
	return nil
}

func (s *stageStats) merge(o *stageStats) error {
	if s.pass != o.pass || len(s.accs) != len(o.accs) {
		return fmt.Errorf("features: stats of fit pass %d and %d", s.pass, o.pass)
	}
	for i, a := range o.accs {
		mine, ok := s.accs[i]
		if !ok {
			return fmt.Errorf("features: stats of stage %d, which pass %d does not fit", i, s.pass)
		}
		if err := mine.merge(a); err != nil {
			return err
		}
	}
	s.rows += o.rows
	return nil
}

// model fits the pass's stages into a copy of the pipe.
func (s *stageStats) model() (*Model, error) {
	p := &pipe{spec: s.p.spec, g: s.p.g, fits: slices.Clone(s.p.fits), passes: s.pass, rows: s.rows}
	for i, a := range s.accs {
		fs, err := a.fit(p.g, p.fits)
		if err != nil {
			return nil, err
		}
		p.fits[i] = fs
	}
	p.complete()
	return modelOfPipe(p)
}

func modelOfPipe(p *pipe) (*Model, error) {
	m := &Model{label: p.g.label, rows: p.rows, pipe: p}
	if p.passes < p.g.passes {
		return m, nil
	}
	m.width = p.widthOf(p.g.feats)
	m.schema = arrow.NewSchema([]arrow.Field{
		{Name: LabelField, Type: arrow.PrimitiveTypes.Float64},
		{Name: FeaturesField, Type: vectorType(m.width)},
	}, nil)
	return m, nil
}

// describeStages lists the stages with their fit passes, for a job plan.
func (p *pipe) describeStages() string {
	var b strings.Builder
	for i, d := range p.g.stages {
		if i > 0 {
			b.WriteString(" -> ")
		}
		b.WriteString(d.class)
		if p.g.fitPass[i] > 0 {
			fmt.Fprintf(&b, "[fit pass %d]", p.g.fitPass[i])
		}
	}
	return b.String()
}
