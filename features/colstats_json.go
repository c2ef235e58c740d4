package features

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
)

// ColumnSummary is the JSON form of one column's NumberStats, and what
// they tell. Count is the values counted (infinities included), Missing
// the nulls and NaNs left out. Min and Max are null when there are no
// values or when they are infinite (JSON has no infinities): the min is
// -Inf when NegInf > 0, else +Inf; the max +Inf when PosInf > 0, else
// -Inf. Mean is the exact mean rounded to float64,
// Std the sample standard deviation (n-1) of the exact variance; both
// are null when they are not finite numbers (no values, an infinity, or
// one value for Std). Sum and SumSquares are the exact sums of the values
// and of their squares, as hexadecimal floats ("0x.8p+1" is 1), which
// Python's float.fromhex and Go's big.ParseFloat read. Histogram counts
// the values on a fixed grid.
type ColumnSummary struct {
	Column     string    `json:"column"`
	Count      int64     `json:"count"`
	Missing    int64     `json:"missing"`
	PosInf     int64     `json:"pos_inf,omitempty"`
	NegInf     int64     `json:"neg_inf,omitempty"`
	Min        *float64  `json:"min"`
	Max        *float64  `json:"max"`
	Mean       *float64  `json:"mean"`
	Std        *float64  `json:"std"`
	Sum        string    `json:"sum"`
	SumSquares string    `json:"sum_squares"`
	Histogram  Histogram `json:"histogram"`
}

// Histogram counts values on a fixed grid: each binary octave is cut into
// 2^Bits bins of equal width. Bin i holds the Count[i] values whose sign
// is Lo[i]'s and whose magnitude m has |Lo[i]| <= m < |Lo[i]|·(1+2^-Bits)
// (the next bin's |Lo|), in ascending order of value. Only bins with
// values are listed; Lo is -0 for the bin of the smallest negative
// magnitudes.
type Histogram struct {
	Bits  int       `json:"bits"`
	Lo    []float64 `json:"lo"`
	Count []int64   `json:"count"`
}

// Hi returns the far edge of bin i (in magnitude) with the sign of Lo[i].
func (h *Histogram) Hi(i int) float64 {
	b := math.Float64bits(h.Lo[i])
	return math.Float64frombits(b + 1<<(52-h.Bits))
}

func (n *NumberStats) summary(name string) ColumnSummary {
	n.fold()
	c := ColumnSummary{Column: name, Count: n.count, Missing: n.missing, PosInf: n.posInf, NegInf: n.negInf,
		Sum: hexFloat(n.sum, -1074), SumSquares: hexFloat(n.sumSq, -2148),
		Histogram: Histogram{Bits: HistogramBits, Lo: []float64{}, Count: []int64{}}}
	if n.count > 0 {
		c.Min, c.Max = finite(n.min), finite(n.max)
	}
	nf := n.count - n.posInf - n.negInf
	if nf > 0 && n.posInf+n.negInf == 0 {
		sum := ratOf(n.sum, 1074)
		mean, _ := new(big.Rat).Quo(sum, big.NewRat(nf, 1)).Float64()
		c.Mean = finite(mean)
		if nf > 1 {
			// (sumSq - sum²/n) / (n-1), exactly, then rounded.
			v := new(big.Rat).Mul(sum, sum)
			v.Quo(v, big.NewRat(nf, 1))
			v.Sub(ratOf(n.sumSq, 2148), v)
			v.Quo(v, big.NewRat(nf-1, 1))
			f, _ := v.Float64()
			c.Std = finite(math.Sqrt(f))
		}
	}
	bin := func(lo float64, k int64) {
		if k != 0 {
			c.Histogram.Lo = append(c.Histogram.Lo, lo)
			c.Histogram.Count = append(c.Histogram.Count, k)
		}
	}
	for i := len(n.neg.n) - 1; i >= 0; i-- {
		bin(-math.Float64frombits(uint64(n.neg.lo+i)<<histShift), n.neg.n[i])
	}
	bin(math.Copysign(0, -1), n.neg.zero)
	bin(0, n.pos.zero)
	for i, k := range n.pos.n {
		bin(math.Float64frombits(uint64(n.pos.lo+i)<<histShift), k)
	}
	return c
}

func ptr(f float64) *float64 { return &f }

// extreme reads a min (sign -1) or max (sign 1) written by summary: a
// finite number, or null for an infinity, of that sign when near (there
// are infinities of that sign), of the other when far (every value is an
// infinity of the other sign). It is NaN when the summary does not fit.
func extreme(v *float64, near, far bool, sign int) float64 {
	switch {
	case v != nil && !near && !math.IsInf(*v, 0):
		return *v
	case v == nil && near:
		return math.Inf(sign)
	case v == nil && far:
		return math.Inf(-sign)
	}
	return math.NaN()
}

// finite is f, or nil when f is not a finite number.
func finite(f float64) *float64 {
	if math.IsInf(f, 0) || f != f {
		return nil
	}
	return &f
}

// ratOf is x·2^-shift.
func ratOf(x *big.Int, shift uint) *big.Rat {
	return new(big.Rat).SetFrac(x, new(big.Int).Lsh(big.NewInt(1), shift))
}

// hexFloat writes x·2^exp exactly in hexadecimal.
func hexFloat(x *big.Int, exp int) string {
	if x.Sign() == 0 {
		return "0x0p+0"
	}
	f := new(big.Float).SetPrec(uint(max(x.BitLen(), 1))).SetInt(x)
	f.SetMantExp(f, exp)
	return f.Text('p', 0)
}

// parseHexFloat reads what hexFloat wrote back into x·2^exp; x must be
// an integer.
func parseHexFloat(s string, exp int) (*big.Int, error) {
	f, _, err := big.ParseFloat(s, 0, 1<<14, big.ToZero)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	f.SetMantExp(f, -exp)
	x, acc := f.Int(nil)
	if acc != big.Exact {
		return nil, fmt.Errorf("%q is not a multiple of 2^%d", s, exp)
	}
	return x, nil
}

// wireColumnStats is the JSON form of ColumnStats.
type wireColumnStats struct {
	Version int             `json:"version"`
	Numeric []ColumnSummary `json:"numeric"`
	Label   wireLabelStats  `json:"label"`
}

type wireLabelStats struct {
	Column string          `json:"column"`
	Splits []ColumnSummary `json:"splits"` // Column is the split's name
}

// MarshalJSON encodes the stats as
//
//	{"version":1,"numeric":[{"column":"length","count":4177,"missing":0,"min":0.075,...}],
//	 "label":{"column":"rings","splits":[{"column":"train",...},{"column":"validation",...}]}}
//
// with one ColumnSummary per numeric column and per split of the label.
// Equal stats encode to equal bytes; UnmarshalJSON reads them back.
func (s *ColumnStats) MarshalJSON() ([]byte, error) {
	if s == nil || s.label == "" {
		return nil, fmt.Errorf("features: column stats not initialised")
	}
	w := wireColumnStats{Version: ColumnStatsVersion, Numeric: s.Numeric()}
	w.Label.Column, w.Label.Splits = s.Label()
	return json.Marshal(w)
}

// UnmarshalJSON replaces s with the stats encoded by MarshalJSON. It
// checks the version, the sums (exact, integral at their scale), that
// min <= max and that the histogram's bins are on the grid, in order,
// with positive counts that add up to the count.
func (s *ColumnStats) UnmarshalJSON(data []byte) error {
	var w wireColumnStats
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("column stats: %w", err)
	}
	if w.Version != ColumnStatsVersion {
		return fmt.Errorf("column stats: version %d, want %d", w.Version, ColumnStatsVersion)
	}
	if w.Label.Column == "" {
		return fmt.Errorf("column stats: no label column")
	}
	n := ColumnStats{label: w.Label.Column, numeric: []string{}, splits: []string{}}
	for _, c := range w.Numeric {
		st, err := c.stats()
		if err != nil {
			return fmt.Errorf("column stats: column %q: %w", c.Column, err)
		}
		n.numeric, n.cols = append(n.numeric, c.Column), append(n.cols, st)
	}
	for _, c := range w.Label.Splits {
		st, err := c.stats()
		if err != nil {
			return fmt.Errorf("column stats: label of split %q: %w", c.Column, err)
		}
		n.splits, n.labels = append(n.splits, c.Column), append(n.labels, st)
	}
	*s = n
	return nil
}

// stats rebuilds the NumberStats a summary describes.
func (c *ColumnSummary) stats() (NumberStats, error) {
	var n NumberStats
	n.init()
	n.count, n.missing, n.posInf, n.negInf = c.Count, c.Missing, c.PosInf, c.NegInf
	if n.count > 0 && n.posInf+n.negInf <= n.count {
		n.min, n.max = extreme(c.Min, n.negInf > 0, n.posInf == n.count, -1), extreme(c.Max, n.posInf > 0, n.negInf == n.count, 1)
	}
	if n.count == 0 && (c.Min != nil || c.Max != nil) {
		return n, errors.New("min and max do not fit the counts")
	}
	var err error
	if n.sum, err = parseHexFloat(c.Sum, -1074); err != nil {
		return n, fmt.Errorf("sum: %w", err)
	}
	if n.sumSq, err = parseHexFloat(c.SumSquares, -2148); err != nil {
		return n, fmt.Errorf("sum_squares: %w", err)
	}
	total, err := c.Histogram.fill(&n)
	if err != nil {
		return n, err
	}
	return n, n.check(total)
}

// check checks that the parts of stats read back agree: counts in range,
// a min and max that fit them, a sum of squares that is not negative, and
// histogram counts, total of them (zeros included), that add up to the
// count with the infinities.
func (n *NumberStats) check(total int64) error {
	switch {
	case n.count < 0 || n.missing < 0 || n.posInf < 0 || n.negInf < 0 || n.posInf+n.negInf > n.count:
		return errors.New("counts out of range")
	case n.count > 0 && !(n.min <= n.max), n.count == 0 && (n.min != math.Inf(1) || n.max != math.Inf(-1)):
		return errors.New("min and max do not fit the counts")
	case n.sumSq.Sign() < 0:
		return errors.New("negative sum of squares")
	case total < 0 || total+n.posInf+n.negInf != n.count:
		return fmt.Errorf("histogram counts add up to %d, count is %d with %d infinities", total, n.count, n.posInf+n.negInf)
	}
	return nil
}

// fill adds the histogram's bins to n, checking that they are on the
// grid and in order, and returns the values they count.
func (h *Histogram) fill(n *NumberStats) (int64, error) {
	if h.Bits != HistogramBits || len(h.Lo) != len(h.Count) {
		return 0, fmt.Errorf("histogram of %d bits with %d edges and %d counts, want %d bits", h.Bits, len(h.Lo), len(h.Count), HistogramBits)
	}
	var total int64
	prev := math.Inf(-1)
	for i, lo := range h.Lo {
		b := math.Float64bits(lo)
		key := int((b &^ (1 << 63)) >> histShift)
		neg := b>>63 != 0
		// Bins ascend in value: negative ones by descending magnitude.
		at := lo
		if neg {
			at = math.Float64frombits(b + 1<<histShift)
		}
		switch {
		case lo != lo || uint64(key)<<histShift != b&^(1<<63) || h.Count[i] <= 0:
			return 0, fmt.Errorf("histogram bin %d (%v, %d) is not on the grid", i, lo, h.Count[i])
		case !(at > prev) && i > 0:
			return 0, fmt.Errorf("histogram bins out of order at %d", i)
		}
		prev = at
		total += h.Count[i]
		if neg {
			n.neg.grow(key, h.Count[i])
		} else {
			n.pos.grow(key, h.Count[i])
		}
	}
	return total, nil
}
