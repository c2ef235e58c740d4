package features

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow/array"
)

// fittedStage is what a stage learned from the data.
type fittedStage struct {
	labels     [][]string // StringIndexer: per input column, in index order
	counts     [][]int64  // and the counts they were fitted from
	index      []map[string]int
	sizes      []int     // OneHotEncoder: categories per input column
	surrogates []float64 // Imputer
	mean, std  []float64 // StandardScaler
	emin, emax []float64 // MinMaxScaler, MaxAbsScaler: per slot, NaN left out, zeros in
}

// maxDistinct bounds the distinct values an exact median or mode keeps
// per column (about 24 bytes each).
const maxDistinct = 1 << 22

// stageAcc accumulates the fit statistics of one stage over some rows.
// Every part is exact, so accumulators merge associatively and
// commutatively: the fit is the same for any cut of the rows.
type stageAcc struct {
	stage  int
	labels []labelCounts      // StringIndexer, per input column
	maxIdx []float64          // OneHotEncoder, per input column (-1: none seen; NaN for a column sized by metadata)
	nums   []NumberStats      // Imputer mean per column; scalers per slot
	values []map[uint64]int64 // Imputer median and mode, per column: count per value's bits
	width  int                // scalers: the vector's size, -1 until known
}

func newStageAcc(g *graph, i int) *stageAcc {
	d := g.stages[i]
	a := &stageAcc{stage: i, width: -1}
	switch d.class {
	case "StringIndexer":
		a.labels = make([]labelCounts, len(d.in))
		for j := range a.labels {
			a.labels[j].index = map[string]int{}
		}
	case "OneHotEncoder":
		a.maxIdx = make([]float64, len(d.in))
		for j, c := range d.in {
			a.maxIdx[j] = -1
			if g.cols[c].nominal {
				a.maxIdx[j] = math.NaN()
			}
		}
	case "Imputer":
		if d.strategy == "mean" {
			a.nums = make([]NumberStats, len(d.in))
			for j := range a.nums {
				a.nums[j].init()
			}
		} else {
			a.values = make([]map[uint64]int64, len(d.in))
			for j := range a.values {
				a.values[j] = map[uint64]int64{}
			}
		}
	}
	return a
}

// add accumulates the rows of f not left out.
func (a *stageAcc) add(f *frame, d *stageDef) error {
	switch d.class {
	case "StringIndexer":
		for j, in := range d.in {
			col := f.cols[in]
			for r := 0; r < f.n; r++ {
				if _, isF := col.(*array.Float64); isF && !col.IsNull(r) && col.(*array.Float64).Value(r) != col.(*array.Float64).Value(r) {
					continue // NaN is not counted
				}
				if key, null := indexerKey(col, r); f.ok(r) && !null {
					a.labels[j].add(key, 1)
				}
			}
		}
	case "OneHotEncoder":
		return a.addOneHot(f, d)
	case "Imputer":
		return a.addImputer(f, d)
	default:
		return a.addSlots(f, d)
	}
	return nil
}

func (a *stageAcc) addOneHot(f *frame, d *stageDef) error {
	for j, in := range d.in {
		if a.maxIdx[j] != a.maxIdx[j] {
			continue
		}
		v, err := f.input(d, in)
		if err != nil {
			return err
		}
		for r := 0; r < f.n; r++ {
			if !f.ok(r) {
				continue
			}
			if v.null(r) {
				f.refuse(r, d, in, "", ReasonNull+" (OneHotEncoder fits on indices)", false)
				continue
			}
			x := v.scalar(r)
			if !(x >= 0) || x != math.Trunc(x) || x > math.MaxInt32 {
				f.refuse(r, d, in, numText(x), "not an index (OneHotEncoder fits on non-negative whole numbers)", false)
				continue
			}
			a.maxIdx[j] = max(a.maxIdx[j], x)
		}
	}
	return nil
}

func (a *stageAcc) addImputer(f *frame, d *stageDef) error {
	for j, in := range d.in {
		v, err := f.input(d, in)
		if err != nil {
			return err
		}
		for r := 0; r < f.n; r++ {
			x := v.scalar(r)
			if !f.ok(r) || v.null(r) || x != x || x == d.missingValue {
				continue
			}
			if a.nums != nil {
				a.nums[j].accumulate(1).add(&a.nums[j], x)
				continue
			}
			a.values[j][math.Float64bits(x)]++
			if len(a.values[j]) > maxDistinct {
				return fmt.Errorf("%s: column %q has more than %d distinct values: an exact %s keeps each; use the mean strategy", d.name(), in, maxDistinct, d.strategy)
			}
		}
	}
	return nil
}

// addSlots accumulates a scaler's input vectors slot by slot; null rows
// are left out.
func (a *stageAcc) addSlots(f *frame, d *stageDef) error {
	v, err := f.input(d, d.in[0])
	if err != nil {
		return err
	}
	if a.width < 0 {
		a.width = v.width
		a.nums = make([]NumberStats, v.width)
		for i := range a.nums {
			a.nums[i].init()
		}
	}
	if a.width != v.width {
		return fmt.Errorf("%s: vectors of %d and %d slots", d.name(), a.width, v.width)
	}
	// Slot by slot, in chunks: the accumulator's fast path takes slices.
	var rows []int
	for r := 0; r < f.n; r++ {
		if f.ok(r) && !v.null(r) {
			rows = append(rows, r)
		}
	}
	buf := make([]float64, 0, 512)
	for i := range a.nums {
		for start := 0; start < len(rows); start += cap(buf) {
			buf = buf[:0]
			for _, r := range rows[start:min(start+cap(buf), len(rows))] {
				buf = append(buf, v.slots(r)[i])
			}
			a.nums[i].accumulate(len(buf)).addValues(&a.nums[i], buf)
		}
	}
	return nil
}

// merge adds o to a; both are of the same stage.
func (a *stageAcc) merge(o *stageAcc) error {
	if a.stage != o.stage || len(a.labels) != len(o.labels) || len(a.maxIdx) != len(o.maxIdx) || len(a.values) != len(o.values) {
		return fmt.Errorf("features: fit statistics of different stages (%d, %d)", a.stage, o.stage)
	}
	for j := range o.labels {
		for k, l := range o.labels[j].labels {
			a.labels[j].add(l, o.labels[j].counts[k])
		}
	}
	for j, m := range o.maxIdx {
		a.maxIdx[j] = max(a.maxIdx[j], m)
	}
	for j := range o.values {
		for k, c := range o.values[j] {
			a.values[j][k] += c
		}
	}
	if o.width >= 0 || o.nums != nil {
		if a.nums == nil {
			a.width = o.width
			a.nums = make([]NumberStats, len(o.nums))
			for i := range a.nums {
				a.nums[i].init()
			}
		}
		if len(a.nums) != len(o.nums) {
			return fmt.Errorf("features: fit statistics of vectors of %d and %d slots", len(a.nums), len(o.nums))
		}
		for i := range o.nums {
			a.nums[i].merge(&o.nums[i])
		}
	}
	return nil
}

// fit turns the accumulated statistics into the stage's fitted values.
func (a *stageAcc) fit(g *graph, fits []*fittedStage) (*fittedStage, error) {
	d := g.stages[a.stage]
	fs := &fittedStage{}
	switch d.class {
	case "StringIndexer":
		for j := range d.in {
			labels, counts := orderLabels(&a.labels[j], d.orderType)
			if len(labels) == 0 {
				return nil, fmt.Errorf("%s: column %q has no values to index (all null)", d.name(), d.in[j])
			}
			fs.labels, fs.counts = append(fs.labels, labels), append(fs.counts, counts)
		}
		fs.buildIndex()
	case "OneHotEncoder":
		for j, in := range d.in {
			k := int(a.maxIdx[j]) + 1
			if a.maxIdx[j] != a.maxIdx[j] {
				k = g.categories(in, fits)
			}
			if k < 1 || d.dropLast && d.handleInvalid != invalidKeep && k < 2 {
				return nil, fmt.Errorf("%s: column %q has %d categories: want at least %d", d.name(), in, k, 2)
			}
			fs.sizes = append(fs.sizes, k)
		}
	case "Imputer":
		for j, in := range d.in {
			s, ok := a.surrogate(j, d.strategy)
			if !ok {
				return nil, fmt.Errorf("%s: surrogate cannot be computed: all the values in %q are null, NaN or missingValue (%v)", d.name(), in, d.missingValue)
			}
			fs.surrogates = append(fs.surrogates, s)
		}
	default:
		if a.nums == nil {
			return nil, fmt.Errorf("%s: no rows to fit on", d.name())
		}
		for i := range a.nums {
			n := &a.nums[i]
			fs.mean, fs.std = append(fs.mean, exactMean(n)), append(fs.std, exactStd(n))
			lo, hi := math.MaxFloat64, -math.MaxFloat64 // Spark's start when a slot holds only NaN
			if n.count > 0 {
				lo, hi = n.min, n.max
			}
			fs.emin, fs.emax = append(fs.emin, lo), append(fs.emax, hi)
		}
	}
	return fs, nil
}

func (fs *fittedStage) buildIndex() {
	fs.index = make([]map[string]int, len(fs.labels))
	for j, ls := range fs.labels {
		fs.index[j] = make(map[string]int, len(ls))
		for k, l := range ls {
			fs.index[j][l] = k
		}
	}
}

// exactMean is the exact mean of n's values rounded once; NaN when a NaN
// was seen (n.missing) or infinities of both signs, ±Inf with one sign.
func exactMean(n *NumberStats) float64 {
	n.fold()
	switch {
	case n.missing > 0 || n.count == 0 || n.posInf > 0 && n.negInf > 0:
		return math.NaN()
	case n.posInf > 0:
		return math.Inf(1)
	case n.negInf > 0:
		return math.Inf(-1)
	}
	m, _ := new(big.Rat).Quo(ratOf(n.sum, 1074), big.NewRat(n.count, 1)).Float64()
	return m
}

// exactStd is sqrt of the exact sample variance (n-1) rounded once; 0 for
// one value, NaN with a NaN or an infinity.
func exactStd(n *NumberStats) float64 {
	n.fold()
	switch {
	case n.missing > 0 || n.posInf+n.negInf > 0:
		return math.NaN()
	case n.count <= 1:
		return 0
	}
	sum := ratOf(n.sum, 1074)
	v := new(big.Rat).Mul(sum, sum)
	v.Quo(v, big.NewRat(n.count, 1))
	v.Sub(ratOf(n.sumSq, 2148), v)
	v.Quo(v, big.NewRat(n.count-1, 1))
	f, _ := v.Float64()
	return math.Sqrt(f)
}

// surrogate is column j's Imputer value: the exact mean, the exact
// ceil(n/2)-th smallest value, or the most frequent value (ties to the
// smallest; -0.0 counts as 0.0).
func (a *stageAcc) surrogate(j int, strategy string) (float64, bool) {
	if strategy == "mean" {
		n := &a.nums[j]
		return exactMean(n), n.count > 0
	}
	vals := a.values[j]
	if len(vals) == 0 {
		return 0, false
	}
	keys := make([]float64, 0, len(vals))
	for b := range vals {
		keys = append(keys, math.Float64frombits(b))
	}
	slices.SortFunc(keys, javaCompare)
	if strategy == "median" {
		var total int64
		for _, c := range vals {
			total += c
		}
		rank := (total + 1) / 2
		for _, k := range keys {
			if rank -= vals[math.Float64bits(k)]; rank <= 0 {
				return k, true
			}
		}
	}
	// The mode: -0.0 counts as 0.0 (Spark's grouping normalises it).
	counts := make(map[float64]int64, len(vals))
	for _, k := range keys {
		counts[k+0] += vals[math.Float64bits(k)] // k+0 turns -0.0 into 0.0
	}
	best, bestN := 0.0, int64(-1)
	for _, k := range keys {
		if c := counts[k+0]; c > bestN {
			best, bestN = k+0, c
		}
	}
	return best, true
}

// orderLabels orders a column's labels by Spark's stringOrderType: by
// count (ties by ascending string order) or alphabetically, comparing
// strings as Java does (UTF-16 code units).
func orderLabels(c *labelCounts, order string) ([]string, []int64) {
	idx := make([]int, len(c.labels))
	for i := range idx {
		idx[i] = i
	}
	less := func(a, b int) bool {
		la, lb := c.labels[idx[a]], c.labels[idx[b]]
		ca, cb := c.counts[idx[a]], c.counts[idx[b]]
		switch order {
		case "frequencyAsc":
			if ca != cb {
				return ca < cb
			}
		case "alphabetAsc":
			return javaLess(la, lb)
		case "alphabetDesc":
			return javaLess(lb, la)
		default:
			if ca != cb {
				return ca > cb
			}
		}
		return javaLess(la, lb)
	}
	sort.Slice(idx, less)
	labels, counts := make([]string, len(idx)), make([]int64, len(idx))
	for i, k := range idx {
		labels[i], counts[i] = c.labels[k], c.counts[k]
	}
	return labels, counts
}

// javaLess compares strings as Java's String.compareTo: by UTF-16 code
// units, which differs from byte order for characters above U+FFFF
// against U+E000..U+FFFF.
func javaLess(a, b string) bool {
	for i, j := 0, 0; ; {
		if i == len(a) || j == len(b) {
			return i == len(a) && j < len(b)
		}
		ra, na := utf8.DecodeRuneInString(a[i:])
		rb, nb := utf8.DecodeRuneInString(b[j:])
		if ra != rb {
			return utf16Key(ra) < utf16Key(rb)
		}
		i, j = i+na, j+nb
	}
}

// utf16Key orders runes by their first UTF-16 code unit, then the rest.
func utf16Key(r rune) uint32 {
	if r >= 0x10000 {
		h, l := utf16.EncodeRune(r)
		return uint32(h)<<16 | uint32(l)
	}
	return uint32(r) << 16
}
