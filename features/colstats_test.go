package features

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// refStats is an independent reference of a column's stats: exact
// rationals and a histogram binned with math.Frexp.
type refStats struct {
	count    int64
	min, max float64
	sum, sq  *big.Rat
	bins     map[uint64]int64 // bits of the bin's near edge -> count
}

func newRef() *refStats {
	return &refStats{min: math.Inf(1), max: math.Inf(-1), sum: new(big.Rat), sq: new(big.Rat), bins: map[uint64]int64{}}
}

func (r *refStats) add(v float64) {
	r.count++
	r.min, r.max = min(r.min, v), max(r.max, v)
	x := new(big.Rat).SetFloat64(v)
	r.sum.Add(r.sum, x)
	r.sq.Add(r.sq, x.Mul(x, x))
	r.bins[math.Float64bits(refBin(v))]++
}

// refBin is the near edge of v's bin: the octave of |v| cut into 128.
func refBin(v float64) float64 {
	a := math.Abs(v)
	var lo float64
	if a >= 0x1p-1022 {
		_, exp := math.Frexp(a) // a = frac·2^exp, frac in [0.5, 1)
		base := math.Ldexp(1, exp-1)
		j := math.Floor((a/base - 1) * 128)
		lo = base * (1 + j/128)
	} else {
		lo = 0x1p-1022 / 128 * math.Floor(a/(0x1p-1022/128))
	}
	return math.Copysign(lo, v)
}

func (r *refStats) check(t *testing.T, name string, got ColumnSummary) {
	t.Helper()
	if got.Count != r.count || *got.Min != r.min || *got.Max != r.max {
		t.Errorf("%s: count %d min %v max %v, want %d %v %v", name, got.Count, *got.Min, *got.Max, r.count, r.min, r.max)
	}
	sum, _, err := big.ParseFloat(got.Sum, 0, 1<<14, big.ToZero)
	if err != nil {
		t.Fatal(err)
	}
	if want := new(big.Float).SetPrec(1 << 14).SetRat(r.sum); sum.Cmp(want) != 0 {
		t.Errorf("%s: sum %s, want %s", name, got.Sum, want.Text('p', 0))
	}
	sq, _, _ := big.ParseFloat(got.SumSquares, 0, 1<<14, big.ToZero)
	if want := new(big.Float).SetPrec(1 << 14).SetRat(r.sq); sq.Cmp(want) != 0 {
		t.Errorf("%s: sum of squares %s, want %s", name, got.SumSquares, want.Text('p', 0))
	}
	n := big.NewRat(r.count, 1)
	mean, _ := new(big.Rat).Quo(r.sum, n).Float64()
	if got.Mean == nil || *got.Mean != mean {
		t.Errorf("%s: mean %v, want %v", name, *got.Mean, mean)
	}
	v := new(big.Rat).Sub(r.sq, new(big.Rat).Quo(new(big.Rat).Mul(r.sum, r.sum), n))
	vf, _ := v.Quo(v, big.NewRat(r.count-1, 1)).Float64()
	if sd := math.Sqrt(vf); math.IsInf(sd, 0) && got.Std != nil || !math.IsInf(sd, 0) && *got.Std != sd {
		t.Errorf("%s: std %v, want %v", name, *got.Std, math.Sqrt(vf))
	}
	if len(got.Histogram.Lo) != len(r.bins) {
		t.Errorf("%s: %d histogram bins, want %d", name, len(got.Histogram.Lo), len(r.bins))
	}
	for i, lo := range got.Histogram.Lo {
		if r.bins[math.Float64bits(lo)] != got.Histogram.Count[i] {
			t.Errorf("%s: bin %v holds %d, want %d", name, lo, got.Histogram.Count[i], r.bins[math.Float64bits(lo)])
		}
	}
}

// splitRows puts every fifth row of rec (from its first row's global
// index first) in split 1, the rest in split 0.
func splitRows(n, first int) [][]int {
	rows := make([][]int, 2)
	for r := range n {
		k := 0
		if (first+r)%5 == 0 {
			k = 1
		}
		rows[k] = append(rows[k], r)
	}
	return rows
}

func TestColumnStatsMatchReference(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	spec := abaloneSpec(t)
	rec := abaloneRecord(t, mem)
	defer rec.Release()

	refs := make([]*refStats, len(spec.Numeric))
	labels := []*refStats{newRef(), newRef()}
	for i, name := range spec.Numeric {
		refs[i] = newRef()
		col := rec.Column(rec.Schema().FieldIndices(name)[0]).(*array.Float64)
		for r := range col.Len() {
			refs[i].add(col.Value(r))
		}
	}
	label := rec.Column(rec.Schema().FieldIndices(spec.Label)[0]).(*array.Float64)
	for k, rows := range splitRows(int(rec.NumRows()), 0) {
		for _, r := range rows {
			labels[k].add(label.Value(r))
		}
	}

	whole := NewColumnStats(spec)
	if err := whole.Add(rec, splitRows(int(rec.NumRows()), 0)); err != nil {
		t.Fatal(err)
	}
	for i, c := range whole.Numeric() {
		refs[i].check(t, c.Column, c)
	}
	_, ls := whole.Label()
	for k, c := range ls {
		labels[k].check(t, "label "+c.Column, c)
	}
	numeric, labelCounts := whole.Counts()
	for i, c := range whole.Numeric() {
		if numeric[i] != c.Count+c.Missing || numeric[i] != rec.NumRows() {
			t.Errorf("Counts: %s counts %d, its summary %d+%d of %d rows", c.Column, numeric[i], c.Count, c.Missing, rec.NumRows())
		}
	}
	for k, c := range ls {
		if labelCounts[k] != c.Count+c.Missing || labelCounts[k] != labels[k].count {
			t.Errorf("Counts: label of %s counts %d, its summary %d+%d, the reference %d", c.Column, labelCounts[k], c.Count, c.Missing, labels[k].count)
		}
	}
	want := mustJSON(t, whole)

	// Any cut into parts, merged in any grouping and order, after a trip
	// through JSON, gives the same bytes: as 1, 2 or 8 workers would.
	for _, size := range []int{1, 7, 100, 1000, 4176} {
		parts := statsParts(t, spec, rec, size)
		for name, merged := range map[string]*ColumnStats{
			"in order": mergeAll(t, parts), "reversed": mergeAll(t, reversed(parts)), "tree": mergeTree(t, parts),
		} {
			if got := mustJSON(t, merged); !bytes.Equal(got, want) {
				t.Errorf("parts of %d rows, merged %s: stats differ from one pass", size, name)
			}
		}
	}
}

func statsParts(t *testing.T, spec *Spec, rec arrow.Record, size int) []*ColumnStats {
	var parts []*ColumnStats
	for i := 0; i < int(rec.NumRows()); i += size {
		j := min(i+size, int(rec.NumRows()))
		part := sliceRecord(rec, i, j)
		s := NewColumnStats(spec)
		if err := s.Add(part, splitRows(j-i, i)); err != nil {
			t.Fatal(err)
		}
		part.Release()
		var back ColumnStats
		if err := json.Unmarshal(mustJSON(t, s), &back); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, &back)
	}
	return parts
}

func mergeAll(t *testing.T, parts []*ColumnStats) *ColumnStats {
	acc := parts[0].clone()
	for _, p := range parts[1:] {
		if err := acc.Merge(p); err != nil {
			t.Fatal(err)
		}
	}
	return acc
}

func mergeTree(t *testing.T, parts []*ColumnStats) *ColumnStats {
	if len(parts) == 1 {
		return parts[0].clone()
	}
	l, r := mergeTree(t, parts[:len(parts)/2]), mergeTree(t, parts[len(parts)/2:])
	if err := r.Merge(l); err != nil {
		t.Fatal(err)
	}
	return r
}

func reversed(parts []*ColumnStats) []*ColumnStats {
	out := make([]*ColumnStats, len(parts))
	for i, p := range parts {
		out[len(parts)-1-i] = p
	}
	return out
}

// TestColumnStatsExactOverExtremes sums values over the whole exponent
// range, of both signs, subnormals included: the sums are exact.
func TestColumnStatsExactOverExtremes(t *testing.T) {
	spec, err := ParseSpec([]byte(`{"columns":[{"name":"x","type":"double"},{"name":"y","type":"double"}],
	  "categorical":[],"numeric":["x"],"label":"y","splits":[{"name":"all","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	vals := []float64{0, math.Copysign(0, -1), 5e-324, -5e-324, math.MaxFloat64, -math.MaxFloat64, 1, -1, 0.1}
	for range 3000 {
		v := math.Float64frombits(rng.Uint64())
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			vals = append(vals, v)
		}
	}
	ref := newRef()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	for _, v := range vals {
		ref.add(v)
		b.Append(v)
	}
	col := b.NewFloat64Array()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64}, {Name: "y", Type: arrow.PrimitiveTypes.Float64}}, nil)
	rec := array.NewRecord(schema, []arrow.Array{col, col}, int64(len(vals)))
	defer rec.Release()
	s := NewColumnStats(spec)
	all := make([]int, len(vals))
	for i := range all {
		all[i] = i
	}
	if err := s.Add(rec, [][]int{all}); err != nil {
		t.Fatal(err)
	}
	got := s.Numeric()[0]
	ref.check(t, "x", got)
	var back ColumnStats
	if err := json.Unmarshal(mustJSON(t, s), &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustJSON(t, &back), mustJSON(t, s)) {
		t.Error("JSON round trip changed the stats")
	}
}

// TestColumnStatsExactInAWindow sums many values near the top of the
// window of exponents that is summed in registers, the largest mantissas
// and squares it takes, in batches: the sums of squares of one exponent
// overflow 128 bits and carry. Values just outside the window, of the
// other sign and at the top of the exponent range are mixed in.
func TestColumnStatsExactInAWindow(t *testing.T) {
	spec, err := ParseSpec([]byte(`{"columns":[{"name":"x","type":"double"},{"name":"y","type":"double"}],
	  "categorical":[],"numeric":["x"],"label":"y","splits":[{"name":"all","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ref := newRef()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := NewColumnStats(spec)
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64}, {Name: "y", Type: arrow.PrimitiveTypes.Float64}}, nil)
	for batch := range 12 {
		b := array.NewFloat64Builder(mem)
		first := 1.0 // the batch's base is 5 exponents below 1
		if batch%4 == 3 {
			first = 0x1p+1000 // and here 5 below 2^1000, where the carries go nowhere
		}
		vals := []float64{first}
		for range 3000 {
			v := first * (32 + 32*rng.Float64()) // the window's top exponent, 5 above the first
			switch rng.IntN(50) {
			case 0:
				v *= 2 // just above the window
			case 1:
				v = -v
			case 2:
				v = first / 64 // just below
			}
			vals = append(vals, v)
		}
		for _, v := range vals {
			ref.add(v)
			b.Append(v)
		}
		col := b.NewFloat64Array()
		b.Release()
		rec := array.NewRecord(schema, []arrow.Array{col, col}, int64(len(vals)))
		if err := s.Add(rec, [][]int{nil}); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		col.Release()
	}
	ref.check(t, "x", s.Numeric()[0])
}

func TestColumnStatsRejectsBadJSON(t *testing.T) {
	s := NewColumnStats(abaloneSpec(t))
	good := string(mustJSON(t, s))
	for _, bad := range []string{
		`{"version":2,"numeric":[],"label":{"column":"y","splits":[]}}`,
		`{"version":1,"numeric":[],"label":{"column":"","splits":[]}}`,
		`{"version":1,"numeric":[{"column":"x","count":1,"missing":0,"min":1,"max":1,"mean":1,"std":null,"sum":"0x.8p+1","sum_squares":"0x.8p+1","histogram":{"bits":7,"lo":[1],"count":[2]}}],"label":{"column":"y","splits":[]}}`,
		`{"version":1,"numeric":[{"column":"x","count":1,"missing":0,"min":1,"max":1,"mean":1,"std":null,"sum":"0x1p-1075","sum_squares":"0x.8p+1","histogram":{"bits":7,"lo":[1],"count":[1]}}],"label":{"column":"y","splits":[]}}`,
		`{"version":1,"numeric":[{"column":"x","count":1,"missing":0,"min":1,"max":1,"mean":1,"std":null,"sum":"0x.8p+1","sum_squares":"0x.8p+1","histogram":{"bits":7,"lo":[1.001],"count":[1]}}],"label":{"column":"y","splits":[]}}`,
		`{"version":1,"numeric":[{"column":"x","count":1,"missing":0,"min":1,"max":1,"mean":1,"std":null,"sum":"0x.8p+1","sum_squares":"-0x.8p+1","histogram":{"bits":7,"lo":[1],"count":[1]}}],"label":{"column":"y","splits":[]}}`,
		`{"version":1,"numeric":[],"label":{"column":"y","splits":[]},"extra":1}`,
	} {
		var got ColumnStats
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	var got ColumnStats
	if err := json.Unmarshal([]byte(good), &got); err != nil {
		t.Errorf("refused empty stats %s: %v", good, err)
	}
}

// BenchmarkColumnStatsAdd adds the sample's rows, with the vector path of
// the sums and histograms (where the machine has it) and without.
func BenchmarkColumnStatsAdd(b *testing.B) {
	mem := memory.NewGoAllocator()
	spec := abaloneSpec(b)
	rec := abaloneRecord(b, mem)
	defer rec.Release()
	rows := splitRows(int(rec.NumRows()), 0)
	paths := []bool{false}
	if haveLanes {
		paths = append(paths, true)
	}
	for _, on := range paths {
		name := map[bool]string{false: "scalar", true: "vector"}[on]
		b.Run(name, func(b *testing.B) {
			saved := haveLanes
			haveLanes = on
			defer func() { haveLanes = saved }()
			b.SetBytes(int64(rec.NumRows()) * 8 * int64(len(spec.Numeric)+1))
			b.ReportAllocs()
			s := NewColumnStats(spec)
			for b.Loop() {
				if err := s.Add(rec, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rec.NumRows()), "ns/row")
		})
	}
}

// BenchmarkColumnStatsUnmarshalBinary reads back the binary form of the
// sample's stats, as a coordinator reads each task's report.
func BenchmarkColumnStatsUnmarshalBinary(b *testing.B) {
	mem := memory.NewGoAllocator()
	spec := abaloneSpec(b)
	rec := abaloneRecord(b, mem)
	defer rec.Release()
	s := NewColumnStats(spec)
	if err := s.Add(rec, splitRows(int(rec.NumRows()), 0)); err != nil {
		b.Fatal(err)
	}
	data, err := s.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var got ColumnStats
		if err := got.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestColumnStatsSettledReadAtOnce: stats with sums still pending, once
// settled, encode the same as without settling, and goroutines may read
// them at once (run with -race).
func TestColumnStatsSettledReadAtOnce(t *testing.T) {
	spec, err := ParseSpec([]byte(`{"columns":[{"name":"x","type":"double"},{"name":"y","type":"double"}],
	  "categorical":[],"numeric":["x"],"label":"y","splits":[{"name":"a","weight":1},{"name":"b","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64}, {Name: "y", Type: arrow.PrimitiveTypes.Float64}}, nil)
	fill := func() *ColumnStats {
		s := NewColumnStats(spec)
		b := array.NewFloat64Builder(memory.DefaultAllocator)
		defer b.Release()
		rng := rand.New(rand.NewPCG(5, 6))
		for range 1000 {
			b.Append(rng.NormFloat64() * 100)
		}
		col := b.NewFloat64Array()
		defer col.Release()
		rec := array.NewRecord(schema, []arrow.Array{col, col}, int64(col.Len()))
		defer rec.Release()
		if err := s.Add(rec, splitRows(col.Len(), 0)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	want, err := json.Marshal(fill())
	if err != nil {
		t.Fatal(err)
	}
	s := fill()
	s.Settle()
	got := make([][]byte, 4)
	done := make(chan struct{})
	for i := range got {
		go func() {
			defer func() { done <- struct{}{} }()
			got[i], _ = json.Marshal(s)
			s.Numeric()
			s.Label()
		}()
	}
	for range got {
		<-done
	}
	for i, g := range got {
		if !bytes.Equal(g, want) {
			t.Errorf("reader %d encoded\n%s\nwant\n%s", i, g, want)
		}
	}
}
