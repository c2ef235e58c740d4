package features

import (
	"fmt"
	"math"
	"math/big"
	"testing"
)

var nan = math.NaN()

var sprintf = fmt.Sprintf

const sCol = `{"name":"s","type":"string"}`
const xCol = `{"name":"x","type":"double"}`

// indexer is a StringIndexer of s into i, assembled alone into features.
func indexer(params string) string {
	return `[{"stage":"StringIndexer","inputCol":"s","outputCol":"i"` + params + `},
	         {"stage":"VectorAssembler","inputCols":["i"],"outputCol":"f","handleInvalid":"keep"}]`
}

func TestStringIndexer(t *testing.T) {
	// Counts: b 3, a 2, c 2, B 1 ("B" < "a" < "b" < "c" as Java compares).
	fit := [][]any{{"b", 1.0}, {"a", 1.0}, {"c", 1.0}, {"b", 1.0}, {"B", 1.0}, {"a", 1.0}, {"c", 1.0}, {"b", 1.0}, {nil, 1.0}}
	apply := [][]any{{"b", 1.0}, {"a", 1.0}, {"c", 1.0}, {"B", 1.0}, {"zz", 1.0}, {nil, 1.0}}
	one := func(v float64) []float64 { return []float64{v} }
	cases := []stageCase{
		{name: "frequencyDesc ties alphabetical", cols: sCol, stages: indexer(`,"handleInvalid":"keep"`), feats: "f", fit: fit, apply: apply,
			// b=0; a, c tie at 2: a=1, c=2; B=3; unseen and null: numLabels = 4.
			want: [][]float64{one(0), one(1), one(2), one(3), one(4), one(4)}},
		{name: "frequencyAsc", cols: sCol, stages: indexer(`,"handleInvalid":"keep","stringOrderType":"frequencyAsc"`), feats: "f", fit: fit, apply: apply,
			// B=0 (1); a, c tie at 2: a=1, c=2; b=3.
			want: [][]float64{one(3), one(1), one(2), one(0), one(4), one(4)}},
		{name: "alphabetAsc", cols: sCol, stages: indexer(`,"handleInvalid":"keep","stringOrderType":"alphabetAsc"`), feats: "f", fit: fit, apply: apply,
			want: [][]float64{one(2), one(1), one(3), one(0), one(4), one(4)}},
		{name: "alphabetDesc", cols: sCol, stages: indexer(`,"handleInvalid":"keep","stringOrderType":"alphabetDesc"`), feats: "f", fit: fit, apply: apply,
			want: [][]float64{one(1), one(2), one(0), one(3), one(4), one(4)}},
		{name: "error", cols: sCol, stages: indexer(``), feats: "f", fit: fit, apply: apply,
			want:    [][]float64{one(0), one(1), one(2), one(3)},
			refused: map[int]string{4: "unseen label", 5: "null value"}},
		{name: "skip", cols: sCol, stages: indexer(`,"handleInvalid":"skip"`), feats: "f", fit: fit, apply: apply,
			want:    [][]float64{one(0), one(1), one(2), one(3)},
			refused: map[int]string{4: "dropped:unseen label", 5: "dropped:null value"}},
		{name: "double input as Java strings, NaN not counted", cols: xCol, feats: "f",
			stages: `[{"stage":"StringIndexer","inputCol":"x","outputCol":"i","handleInvalid":"keep"},
			          {"stage":"VectorAssembler","inputCols":["i"],"outputCol":"f"}]`,
			// "1.0E7" x2, "1.0" x1, "-0.0" x1, NaN never counted.
			fit:   [][]any{{1e7, 1.0}, {1e7, 1.0}, {1.0, 1.0}, {math.Copysign(0, -1), 1.0}, {nan, 1.0}, {nan, 1.0}, {nan, 1.0}},
			apply: [][]any{{1e7, 1.0}, {-0.0 * -1, 1.0}, {math.Copysign(0, -1), 1.0}, {nan, 1.0}},
			// "-0.0" < "1.0" (tie at 1); 0.0 is "0.0", unseen; NaN unseen.
			want: [][]float64{one(0), one(3), one(1), one(3)}},
	}
	runStageCases(t, cases)
}

// oneHot is a StringIndexer (labels p=0, q=1, r=2 by count) and a
// OneHotEncoder with params, assembled.
func oneHot(indexerParams, params string) string {
	return `[{"stage":"StringIndexer","inputCol":"s","outputCol":"i"` + indexerParams + `},
	         {"stage":"OneHotEncoder","inputCol":"i","outputCol":"v"` + params + `},
	         {"stage":"VectorAssembler","inputCols":["v"],"outputCol":"f","handleInvalid":"keep"}]`
}

func TestOneHotEncoder(t *testing.T) {
	fit := [][]any{{"p", 1.0}, {"p", 1.0}, {"p", 1.0}, {"q", 1.0}, {"q", 1.0}, {"r", 1.0}}
	apply := [][]any{{"p", 1.0}, {"q", 1.0}, {"r", 1.0}, {"new", 1.0}}
	cases := []stageCase{
		{name: "dropLast error", cols: sCol, stages: oneHot(`,"handleInvalid":"keep"`, ``), feats: "f", fit: fit, apply: apply,
			// K = 3 labels + __unknown = 4; dropLast: 3 slots; index 3 (unknown) is all zeros.
			want: [][]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0, 0, 0}}},
		{name: "no dropLast error", cols: sCol, stages: oneHot(`,"handleInvalid":"keep"`, `,"dropLast":false`), feats: "f", fit: fit, apply: apply,
			want: [][]float64{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}},
		{name: "dropLast keep", cols: sCol, stages: oneHot(``, `,"handleInvalid":"keep"`), feats: "f", fit: fit, apply: apply[:3],
			// K = 3; keep with dropLast: size K, the last category has its slot.
			want: [][]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}},
		{name: "no dropLast keep", cols: sCol, stages: oneHot(``, `,"handleInvalid":"keep","dropLast":false`), feats: "f", fit: fit, apply: apply[:3],
			want: [][]float64{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}}},
	}
	runStageCases(t, cases)

	// Indices straight from the CSV: K = max + 1, learnt from the data.
	direct := `[{"stage":"OneHotEncoder","inputCol":"x","outputCol":"v","handleInvalid":"%s","dropLast":%s},
	            {"stage":"VectorAssembler","inputCols":["v"],"outputCol":"f","handleInvalid":"keep"}]`
	fitX := [][]any{{0.0, 1.0}, {2.0, 1.0}, {1.0, 1.0}}
	applyX := [][]any{{0.0, 1.0}, {2.0, 1.0}, {1.5, 1.0}, {3.0, 1.0}, {-1.0, 1.0}, {nan, 1.0}, {nil, 1.0}}
	runStageCases(t, []stageCase{
		{name: "data keep dropLast", cols: xCol, stages: sprintf(direct, "keep", "true"), feats: "f", fit: fitX, apply: applyX,
			// K = 3, size 3; 1.5 truncates to 1; invalid: all zeros; null -> null -> NaN x 3 (assembler keep).
			want: [][]float64{{1, 0, 0}, {0, 0, 1}, {0, 1, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {nan, nan, nan}}},
		{name: "data keep no dropLast", cols: xCol, stages: sprintf(direct, "keep", "false"), feats: "f", fit: fitX, apply: applyX,
			want: [][]float64{{1, 0, 0, 0}, {0, 0, 1, 0}, {0, 1, 0, 0}, {0, 0, 0, 1}, {0, 0, 0, 1}, {0, 0, 0, 1}, {nan, nan, nan, nan}}},
		{name: "data error dropLast", cols: xCol, stages: sprintf(direct, "error", "true"), feats: "f", fit: fitX, apply: applyX,
			want:    [][]float64{{1, 0}, {0, 0}, {0, 1}, nil, nil, nil, {nan, nan}},
			refused: map[int]string{3: "unseen value", 4: "negative value", 5: "unseen value"}},
		{name: "data fit refuses fractions", cols: xCol, stages: sprintf(direct, "error", "true"), feats: "f",
			fit: [][]any{{0.5, 1.0}, {1.0, 1.0}}, apply: [][]any{{1.0, 1.0}},
			// the fractional row is left out of the fit: K = 2, one slot.
			want: [][]float64{{0}}},
	})
}

func TestVectorAssembler(t *testing.T) {
	cols := xCol + `,{"name":"z","type":"double"},` + sCol
	stages := `[{"stage":"StringIndexer","inputCol":"s","outputCol":"i","handleInvalid":"keep"},
	            {"stage":"OneHotEncoder","inputCol":"i","outputCol":"v","handleInvalid":"keep"},
	            {"stage":"VectorAssembler","inputCols":["x","v","z"],"outputCol":"f","handleInvalid":"%s"}]`
	fit := [][]any{{1.0, 2.0, "a", 1.0}, {3.0, 4.0, "b", 1.0}, {5.0, 6.0, "a", 1.0}}
	// one-hot of a (0 of K=3 with __unknown): size 3 under keep+dropLast.
	apply := [][]any{{1.0, 2.0, "a", 1.0}, {nil, 2.0, "b", 1.0}, {nan, 2.0, "a", 1.0}, {1.0, math.Inf(-1), nil, 1.0}}
	runStageCases(t, []stageCase{
		{name: "error", cols: cols, stages: sprintf(stages, "error"), feats: "f", fit: fit, apply: apply,
			want:    [][]float64{{1, 1, 0, 0, 2}, nil, nil, {1, 0, 0, 1, math.Inf(-1)}},
			refused: map[int]string{1: "null value", 2: "NaN"}},
		{name: "skip", cols: cols, stages: sprintf(stages, "skip"), feats: "f", fit: fit, apply: apply,
			want:    [][]float64{{1, 1, 0, 0, 2}, nil, nil, {1, 0, 0, 1, math.Inf(-1)}},
			refused: map[int]string{1: "dropped:null value", 2: "dropped:NaN"}},
		{name: "keep", cols: cols, stages: sprintf(stages, "keep"), feats: "f", fit: fit, apply: apply,
			want: [][]float64{{1, 1, 0, 0, 2}, {nan, 0, 1, 0, 2}, {nan, 1, 0, 0, 2}, {1, 0, 0, 1, math.Inf(-1)}}},
	})
}

func TestImputer(t *testing.T) {
	imp := `[{"stage":"Imputer","inputCols":["x"],"outputCols":["xi"],"strategy":"%s"%s},
	         {"stage":"VectorAssembler","inputCols":["xi"],"outputCol":"f","handleInvalid":"keep"}]`
	negZero := math.Copysign(0, -1)
	// values 0.1, 0.2, 0.2, 7, -1 (nulls and NaN left out)
	fit := [][]any{{0.1, 1.0}, {nil, 1.0}, {0.2, 1.0}, {nan, 1.0}, {0.2, 1.0}, {7.0, 1.0}, {-1.0, 1.0}}
	apply := [][]any{{nil, 1.0}, {nan, 1.0}, {3.0, 1.0}}
	mean := ratMean(0.1, 0.2, 0.2, 7, -1)
	runStageCases(t, []stageCase{
		{name: "mean", cols: xCol, stages: sprintf(imp, "mean", ""), feats: "f", fit: fit, apply: apply,
			want: [][]float64{{mean}, {mean}, {3}}},
		{name: "median odd", cols: xCol, stages: sprintf(imp, "median", ""), feats: "f", fit: fit, apply: apply,
			// sorted -1, 0.1, 0.2, 0.2, 7: the 3rd
			want: [][]float64{{0.2}, {0.2}, {3}}},
		{name: "median even is the lower middle", cols: xCol, stages: sprintf(imp, "median", ""), feats: "f",
			fit: [][]any{{4.0, 1.0}, {1.0, 1.0}, {3.0, 1.0}, {2.0, 1.0}}, apply: apply,
			want: [][]float64{{2}, {2}, {3}}},
		{name: "mode ties to the smallest, -0.0 is 0.0", cols: xCol, stages: sprintf(imp, "mode", ""), feats: "f",
			fit:   [][]any{{5.0, 1.0}, {negZero, 1.0}, {5.0, 1.0}, {0.0, 1.0}, {9.0, 1.0}},
			apply: apply,
			want:  [][]float64{{0}, {0}, {3}}},
		{name: "missingValue", cols: xCol, stages: sprintf(imp, "mean", `,"missingValue":7`), feats: "f", fit: fit,
			apply: [][]any{{7.0, 1.0}, {nan, 1.0}, {nil, 1.0}},
			// 7 is missing: not in the mean, replaced; NaN left out of the fit, not replaced.
			want: [][]float64{{ratMean(0.1, 0.2, 0.2, -1)}, {nan}, {ratMean(0.1, 0.2, 0.2, -1)}}},
		{name: "all missing", cols: xCol, stages: sprintf(imp, "median", ""), feats: "f",
			fit: [][]any{{nil, 1.0}, {nan, 1.0}}, fitErr: "surrogate cannot be computed"},
	})
}

// ratMean is the exact mean of vals rounded once, by math/big.
func ratMean(vals ...float64) float64 {
	sum := new(big.Rat)
	for _, v := range vals {
		sum.Add(sum, new(big.Rat).SetFloat64(v))
	}
	f, _ := sum.Quo(sum, big.NewRat(int64(len(vals)), 1)).Float64()
	return f
}

// ratStd is sqrt of the exact sample variance of vals rounded once.
func ratStd(vals ...float64) float64 {
	n := int64(len(vals))
	if n < 2 {
		return 0
	}
	sum, sq := new(big.Rat), new(big.Rat)
	for _, v := range vals {
		r := new(big.Rat).SetFloat64(v)
		sum.Add(sum, r)
		sq.Add(sq, new(big.Rat).Mul(r, r))
	}
	// (sq - sum²/n) / (n-1)
	v := new(big.Rat).Mul(sum, sum)
	v.Quo(v, big.NewRat(n, 1))
	v.Sub(sq, v)
	v.Quo(v, big.NewRat(n-1, 1))
	f, _ := v.Float64()
	return math.Sqrt(f)
}

// scaler assembles x and z and scales the vector with stage params.
func scaler(class, params string) string {
	return `[{"stage":"VectorAssembler","inputCols":["x","z"],"outputCol":"raw","handleInvalid":"keep"},
	         {"stage":"` + class + `","inputCol":"raw","outputCol":"f"` + params + `}]`
}

const xzCols = xCol + `,{"name":"z","type":"double"}`

func TestStandardScaler(t *testing.T) {
	xs := []float64{0.1, 0.7, -3.3, 1e10, 2.5}
	var fit [][]any
	for _, x := range xs {
		fit = append(fit, []any{x, -4.0, 1.0}) // z constant: std 0
	}
	m, s := ratMean(xs...), ratStd(xs...)
	if ratStd(-4, -4) != 0 {
		t.Fatal("constant std")
	}
	apply := [][]any{{0.1, -4.0, 1.0}, {-5.0, -8.0, 1.0}, {nan, math.Inf(1), 1.0}}
	both := func(x, z float64) []float64 { return []float64{(x - m) * (1 / s), (z - -4) * 0} }
	negZero := math.Copysign(0, -1)
	runStageCases(t, []stageCase{
		{name: "mean and std", cols: xzCols, stages: scaler("StandardScaler", `,"withMean":true,"withStd":true`), feats: "f", fit: fit, apply: apply,
			want: [][]float64{both(0.1, -4), both(-5, -8), {nan, nan}}},
		{name: "std only: a zero std gives ±0.0", cols: xzCols, stages: scaler("StandardScaler", ``), feats: "f", fit: fit, apply: apply,
			want: [][]float64{{0.1 * (1 / s), negZero}, {-5 * (1 / s), negZero}, {nan, nan}}},
		{name: "mean only", cols: xzCols, stages: scaler("StandardScaler", `,"withMean":true,"withStd":false`), feats: "f", fit: fit, apply: apply,
			want: [][]float64{{0.1 - m, 0}, {-5 - m, -4}, {nan, math.Inf(1)}}},
		{name: "one row", cols: xzCols, stages: scaler("StandardScaler", `,"withMean":true`), feats: "f",
			fit: [][]any{{2.0, 3.0, 1.0}}, apply: [][]any{{5.0, 3.0, 1.0}},
			want: [][]float64{{0, 0}}},
	})
}

func TestMinMaxAndMaxAbsScaler(t *testing.T) {
	fit := [][]any{{-2.0, 5.0, 1.0}, {nan, 5.0, 1.0}, {6.0, 5.0, 1.0}, {1.0, 5.0, 1.0}}
	apply := [][]any{{-2.0, 5.0, 1.0}, {0.5, 7.0, 1.0}, {nan, nan, 1.0}}
	mm := func(x, lo, hi, emin, emax float64) float64 { return (x-emin)*((hi-lo)/(emax-emin)) + lo }
	runStageCases(t, []stageCase{
		{name: "MinMax default", cols: xzCols, stages: scaler("MinMaxScaler", ``), feats: "f", fit: fit, apply: apply,
			// x: Emin -2, Emax 6 (NaN left out); z constant: (0+1)/2; NaN stays.
			want: [][]float64{{mm(-2, 0, 1, -2, 6), 0.5}, {mm(0.5, 0, 1, -2, 6), 0.5}, {nan, nan}}},
		{name: "MinMax range", cols: xzCols, stages: scaler("MinMaxScaler", `,"min":-1,"max":3`), feats: "f", fit: fit, apply: apply,
			want: [][]float64{{mm(-2, -1, 3, -2, 6), 1}, {mm(0.5, -1, 3, -2, 6), 1}, {nan, nan}}},
		{name: "MaxAbs", cols: xzCols, stages: scaler("MaxAbsScaler", ``), feats: "f", fit: fit, apply: apply,
			want: [][]float64{{byInv(-2, 6), byInv(5, 5)}, {byInv(0.5, 6), byInv(7, 5)}, {nan, nan}}},
		{name: "MaxAbs zero column", cols: xzCols, stages: scaler("MaxAbsScaler", ``), feats: "f",
			fit: [][]any{{0.0, 1.0, 1.0}, {0.0, -4.0, 1.0}}, apply: [][]any{{3.0, 2.0, 1.0}},
			want: [][]float64{{3, byInv(2, 4)}}},
	})
}

// byInv is x * (1/m) in float64 arithmetic, as MaxAbsScaler computes it
// (not folded as Go folds constant expressions exactly).
func byInv(x, m float64) float64 { return x * (1 / m) }

func TestBucketizer(t *testing.T) {
	b := `[{"stage":"Bucketizer","inputCol":"x","outputCol":"b","splits":["-Infinity",0,10,20]%s},
	       {"stage":"VectorAssembler","inputCols":["b"],"outputCol":"f","handleInvalid":"keep"}]`
	apply := [][]any{{-5.0, 1.0}, {0.0, 1.0}, {math.Copysign(0, -1), 1.0}, {9.99, 1.0}, {10.0, 1.0}, {20.0, 1.0}, {nan, 1.0}, {21.0, 1.0}, {nil, 1.0}}
	runStageCases(t, []stageCase{
		{name: "error", cols: xCol, stages: sprintf(b, ""), feats: "f", fit: apply[:1], apply: apply,
			// [s_i, s_i+1), the last closed; -0.0 on split 0.0 falls below; null stays null (NaN via keep).
			want:    [][]float64{{0}, {1}, {0}, {1}, {2}, {2}, nil, nil, {nan}},
			refused: map[int]string{6: "NaN", 7: "out of Bucketizer bounds"}},
		{name: "keep", cols: xCol, stages: sprintf(b, `,"handleInvalid":"keep"`), feats: "f", fit: apply[:1], apply: apply,
			want:    [][]float64{{0}, {1}, {0}, {1}, {2}, {2}, {3}, nil, {nan}},
			refused: map[int]string{7: "out of Bucketizer bounds"}},
		{name: "skip", cols: xCol, stages: sprintf(b, `,"handleInvalid":"skip"`), feats: "f", fit: apply[:1], apply: apply,
			want:    [][]float64{{0}, {1}, {0}, {1}, {2}, {2}, nil, nil, {nan}},
			refused: map[int]string{6: "dropped:NaN", 7: "out of Bucketizer bounds"}},
	})
}

func TestBinarizer(t *testing.T) {
	scalar := `[{"stage":"Binarizer","inputCol":"x","outputCol":"b","threshold":%s},
	            {"stage":"VectorAssembler","inputCols":["b"],"outputCol":"f","handleInvalid":"keep"}]`
	vector := `[{"stage":"VectorAssembler","inputCols":["x","z"],"outputCol":"v","handleInvalid":"keep"},
	            {"stage":"Binarizer","inputCol":"v","outputCol":"f","threshold":%s}]`
	apply := [][]any{{0.5, -1.0, 1.0}, {0.0, 1.0, 1.0}, {nan, nan, 1.0}, {-0.5, 0.0, 1.0}}
	runStageCases(t, []stageCase{
		{name: "scalar", cols: xzCols, stages: sprintf(scalar, "0.0"), feats: "f", fit: apply, apply: apply,
			want: [][]float64{{1}, {0}, {0}, {0}}},
		{name: "vector threshold >= 0", cols: xzCols, stages: sprintf(vector, "0.0"), feats: "f", fit: apply, apply: apply,
			want: [][]float64{{1, 0}, {0, 1}, {0, 0}, {0, 0}}},
		{name: "vector threshold < 0: NaN stays 1", cols: xzCols, stages: sprintf(vector, "-0.5"), feats: "f", fit: apply, apply: apply,
			want: [][]float64{{1, 0}, {1, 1}, {1, 1}, {0, 1}}},
	})
}
