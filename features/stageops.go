package features

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// frame is a batch on its way through the stages: the columns by name
// (the record's, borrowed, and the stages' outputs, owned) and, per row,
// the first reason it is left out, if any.
type frame struct {
	mem  memory.Allocator
	n    int
	cols map[string]arrow.Array
	own  []arrow.Array
	bad  []*RowError
	// tally, if set, counts the labels the StringIndexers look up; a
	// label the fit would not have counted refuses its row.
	tally *Tally
}

func newFrame(rec arrow.Record, mem memory.Allocator) *frame {
	f := &frame{mem: mem, n: int(rec.NumRows()), cols: map[string]arrow.Array{}, bad: make([]*RowError, rec.NumRows())}
	for i, fld := range rec.Schema().Fields() {
		f.cols[fld.Name] = rec.Column(i)
	}
	return f
}

func (f *frame) put(name string, a arrow.Array) {
	f.cols[name] = a
	f.own = append(f.own, a)
}

func (f *frame) release() {
	for _, a := range f.own {
		a.Release()
	}
	f.own = nil
}

func (f *frame) ok(r int) bool { return f.bad[r] == nil }

// refuse marks row r as left out by stage d: dropped (handleInvalid skip)
// or invalid.
func (f *frame) refuse(r int, d *stageDef, col, value, reason string, dropped bool) {
	if f.bad[r] != nil {
		return
	}
	f.bad[r] = &RowError{Row: r, Column: col, Value: value, Reason: reason, Stage: d.name(), Dropped: dropped}
}

// invalid handles an invalid value under d's handleInvalid: skip drops the
// row, anything else (error) refuses it. It returns false when the row is
// left out.
func (f *frame) invalid(r int, d *stageDef, col, value, reason string) {
	if d.handleInvalid == invalidSkip {
		f.refuse(r, d, col, value, reason+"; dropped (handleInvalid skip)", true)
		return
	}
	f.refuse(r, d, col, value, reason, false)
}

func numText(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// input returns the numeric view of column name.
func (f *frame) input(d *stageDef, name string) (numView, error) {
	a, ok := f.cols[name]
	if !ok {
		return numView{}, fmt.Errorf("features: %s: the batch has no column %q", d.name(), name)
	}
	v, err := viewOf(a)
	if err != nil {
		return numView{}, fmt.Errorf("%s: column %q: %w", d.name(), name, err)
	}
	return v, nil
}

// inputs returns the numeric views of d's input columns.
func (f *frame) inputs(d *stageDef) ([]numView, error) {
	views := make([]numView, len(d.in))
	for j, in := range d.in {
		v, err := f.input(d, in)
		if err != nil {
			return nil, err
		}
		views[j] = v
	}
	return views, nil
}

// fill puts column name, of width slots a row (0 for a double), filled
// by fn(r, b) for each row r not left out; a row left out stays zero.
func (f *frame) fill(name string, width int, fn func(r int, b *numBuilder)) {
	b := newNumBuilder(f.mem, f.n, width)
	for r := 0; r < f.n; r++ {
		if f.ok(r) {
			fn(r, b)
		}
	}
	f.put(name, b.finish())
}

// mapInputs puts output column d.out[j] for each input column d.in[j]:
// col(j, v) returns its width and the function that fills row r's slots
// from input v. A null input row gives a null output row.
func (f *frame) mapInputs(d *stageDef, col func(j int, v numView) (int, func(r int, out []float64))) error {
	views, err := f.inputs(d)
	if err != nil {
		return err
	}
	for j, v := range views {
		width, fn := col(j, v)
		f.fill(d.out[j], width, func(r int, b *numBuilder) {
			if v.null(r) {
				b.setNull(r)
				return
			}
			fn(r, b.row(r))
		})
	}
	return nil
}

// indexerKey returns the label StringIndexer looks up for row r of a,
// and whether it is null: a string as it is, a double as Java's
// Double.toString writes it (NaN as "NaN", which no fit counts).
func indexerKey(a arrow.Array, r int) (string, bool) {
	if a.IsNull(r) {
		return "", true
	}
	switch t := a.(type) {
	case array.StringLike:
		return t.Value(r), false
	case *array.Float64:
		return javaDouble(t.Value(r)), false
	}
	return "", true
}

// javaDouble writes v as Java's Double.toString does (with the shortest
// digits that read back to v): "1.0", "1.0E7", "1.0E-4", "NaN",
// "Infinity".
func javaDouble(v float64) string {
	switch {
	case v != v:
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	case v == 0:
		if math.Signbit(v) {
			return "-0.0"
		}
		return "0.0"
	}
	a := math.Abs(v)
	if a >= 1e-3 && a < 1e7 {
		s := strconv.FormatFloat(v, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(v, 'e', -1, 64) // d[.ddd]e±dd
	mant, exp, _ := strings.Cut(s, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

func applyIndexer(f *frame, d *stageDef, fit *fittedStage) error {
	for j, in := range d.in {
		a := f.cols[in]
		labels := len(fit.labels[j])
		var counts []int64
		if f.tally != nil {
			counts = f.tally.scratch(f.tally.base[d.index] + j)
		}
		f.fill(d.out[j], 0, func(r int, b *numBuilder) {
			key, null := indexerKey(a, r)
			k, seen := fit.index[j][key]
			switch {
			case !null && seen:
				b.row(r)[0] = float64(k)
				if counts != nil {
					counts[k]++
				}
			case counts != nil:
				// The fit counts no null (nor NaN), and saw no other label.
				f.refuse(r, d, in, key, ReasonUnseen, false)
			case d.handleInvalid == invalidKeep:
				b.row(r)[0] = float64(labels)
			case null:
				f.invalid(r, d, in, "", ReasonNull)
			default:
				f.invalid(r, d, in, key, "unseen label")
			}
		})
	}
	return nil
}

// oneHotSize is the vector size of a OneHotEncoder column of k
// categories.
func oneHotSize(d *stageDef, k int) int {
	keep := d.handleInvalid == invalidKeep
	switch {
	case d.dropLast && !keep:
		return k - 1
	case !d.dropLast && keep:
		return k + 1
	}
	return k
}

func applyOneHot(f *frame, d *stageDef, fit *fittedStage) error {
	return f.mapInputs(d, func(j int, v numView) (int, func(int, []float64)) {
		in, k := d.in[j], fit.sizes[j]
		size := oneHotSize(d, k)
		return size, func(r int, out []float64) {
			x := v.scalar(r)
			idx := k
			switch {
			case x >= 0 && x < float64(k):
				idx = int(x)
			case d.handleInvalid != invalidKeep && x < 0:
				f.refuse(r, d, in, numText(x), "negative value", false)
				return
			case d.handleInvalid != invalidKeep:
				f.refuse(r, d, in, numText(x), fmt.Sprintf("unseen value (the column has %d categories)", k), false)
				return
			}
			if idx < size {
				out[idx] = 1
			}
		}
	})
}

func applyAssembler(f *frame, d *stageDef, _ *fittedStage) error {
	views, err := f.inputs(d)
	if err != nil {
		return err
	}
	width := 0
	for _, v := range views {
		width += v.size()
	}
	f.fill(d.out[0], width, func(r int, b *numBuilder) {
		out := b.row(r)
		at := 0
		for j, v := range views {
			n := v.size()
			switch {
			case v.null(r) && d.handleInvalid == invalidKeep:
				for i := range n {
					out[at+i] = math.NaN()
				}
			case v.null(r):
				f.invalid(r, d, d.in[j], "", ReasonNull)
			case v.width == 0 && v.scalar(r) != v.scalar(r) && d.handleInvalid != invalidKeep:
				f.invalid(r, d, d.in[j], "NaN", ReasonNaN)
			default:
				copy(out[at:at+n], v.slots(r))
			}
			at += n
		}
	})
	return nil
}

func applyImputer(f *frame, d *stageDef, fit *fittedStage) error {
	views, err := f.inputs(d)
	if err != nil {
		return err
	}
	miss := d.missingValue
	for j, v := range views {
		s := fit.surrogates[j]
		f.fill(d.out[j], 0, func(r int, b *numBuilder) {
			x := v.scalar(r)
			// Spark's = holds for NaN = NaN.
			if v.null(r) || x == miss || x != x && miss != miss {
				x = s
			}
			b.row(r)[0] = x
		})
	}
	return nil
}

// applySlots maps each slot of each non-null row of d's input vector
// with fn(slot, x).
func applySlots(f *frame, d *stageDef, fn func(i int, x float64) float64) error {
	return f.mapInputs(d, func(_ int, v numView) (int, func(int, []float64)) {
		return v.width, func(r int, out []float64) {
			for i, x := range v.slots(r) {
				out[i] = fn(i, x)
			}
		}
	})
}

func applyStandard(f *frame, d *stageDef, fit *fittedStage) error {
	mean := fit.mean
	scale := make([]float64, len(fit.std))
	for i, s := range fit.std {
		if s != 0 {
			scale[i] = 1 / s
		}
	}
	return applySlots(f, d, func(i int, x float64) float64 {
		switch {
		case d.withMean && d.withStd:
			return (x - mean[i]) * scale[i]
		case d.withMean:
			return x - mean[i]
		case d.withStd:
			return x * scale[i]
		}
		return x
	})
}

func applyMinMax(f *frame, d *stageDef, fit *fittedStage) error {
	scale := make([]float64, len(fit.emin))
	for i := range scale {
		if rng := fit.emax[i] - fit.emin[i]; rng != 0 {
			scale[i] = (d.max - d.min) / rng
		}
	}
	constant := (d.min + d.max) / 2
	return applySlots(f, d, func(i int, x float64) float64 {
		switch {
		case x != x:
			return x
		case scale[i] != 0:
			return (x-fit.emin[i])*scale[i] + d.min
		}
		return constant
	})
}

func applyMaxAbs(f *frame, d *stageDef, fit *fittedStage) error {
	scale := make([]float64, len(fit.emin))
	for i := range scale {
		m := max(math.Abs(fit.emin[i]), math.Abs(fit.emax[i]))
		scale[i] = 1
		if m != 0 {
			scale[i] = 1 / m
		}
	}
	return applySlots(f, d, func(i int, x float64) float64 { return x * scale[i] })
}

// javaCompare orders doubles as Java's Double.compare: -0.0 < 0.0.
func javaCompare(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	ab, bb := int64(math.Float64bits(a)), int64(math.Float64bits(b))
	switch {
	case ab < bb:
		return -1
	case ab > bb:
		return 1
	}
	return 0
}

// bucket is Bucketizer's bucket of x over splits (not NaN); ok is false
// out of range.
func bucket(splits []float64, x float64) (int, bool) {
	n := len(splits)
	if x == splits[n-1] {
		return n - 2, true
	}
	lo, hi := 0, n-1
	for lo <= hi { // java.util.Arrays.binarySearch
		mid := (lo + hi) / 2
		switch c := javaCompare(splits[mid], x); {
		case c < 0:
			lo = mid + 1
		case c > 0:
			hi = mid - 1
		default:
			return mid, true
		}
	}
	if lo == 0 || lo == n {
		return 0, false
	}
	return lo - 1, true
}

func applyBucketizer(f *frame, d *stageDef, _ *fittedStage) error {
	return f.mapInputs(d, func(j int, v numView) (int, func(int, []float64)) {
		in, splits := d.in[j], d.splits[j]
		return 0, func(r int, out []float64) {
			x := v.scalar(r)
			if x != x {
				if d.handleInvalid == invalidKeep {
					out[0] = float64(len(splits) - 1)
				} else {
					f.invalid(r, d, in, "NaN", ReasonNaN)
				}
				return
			}
			k, ok := bucket(splits, x)
			if !ok {
				f.refuse(r, d, in, numText(x), fmt.Sprintf("out of Bucketizer bounds [%v, %v]", splits[0], splits[len(splits)-1]), false)
				return
			}
			out[0] = float64(k)
		}
	})
}

func applyBinarizer(f *frame, d *stageDef, _ *fittedStage) error {
	return f.mapInputs(d, func(j int, v numView) (int, func(int, []float64)) {
		t := d.thresholds[j]
		return v.width, func(r int, out []float64) {
			for i, x := range v.slots(r) {
				switch {
				case v.width > 0 && t < 0: // starts from ones: NaN stays 1
					out[i] = 1
					if x <= t {
						out[i] = 0
					}
				case x > t:
					out[i] = 1
				}
			}
		}
	})
}

// stageApply applies each class's fitted transform to a frame.
var stageApply = map[string]func(f *frame, d *stageDef, fit *fittedStage) error{
	"StringIndexer":   applyIndexer,
	"OneHotEncoder":   applyOneHot,
	"VectorAssembler": applyAssembler,
	"Imputer":         applyImputer,
	"StandardScaler":  applyStandard,
	"MinMaxScaler":    applyMinMax,
	"MaxAbsScaler":    applyMaxAbs,
	"Bucketizer":      applyBucketizer,
	"Binarizer":       applyBinarizer,
}
