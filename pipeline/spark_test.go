package pipeline

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

func TestXORShiftRandomVectors(t *testing.T) {
	// Draws of Spark's XORShiftRandom (SEMANTICS.md).
	vectors := map[int64][3]float64{
		0:  {0.7604953758285915, 0.5234194256885571, 0.0953472826424725},
		24: {0.3943255396952755, 0.48619924381941027, 0.2923951640552428},
		42: {0.619189370225301, 0.5096018842446481, 0.8325259388871524},
	}
	for seed, want := range vectors {
		x := newXORShiftRandom(seed)
		for i, w := range want {
			if got := x.NextDouble(); got != w {
				t.Errorf("seed %d draw %d = %v, want %v", seed, i, got, w)
			}
		}
	}
}

func TestMurmur3BytesHash(t *testing.T) {
	// MurmurHash3_x86_32 reference vectors (Scala's bytesHash is the same
	// function).
	tests := []struct {
		in   string
		seed uint32
		want uint32
	}{
		{"", 0, 0},
		{"", 1, 0x514e28b7},
		{"", 0xffffffff, 0x81f16f39},
		{"\x00\x00\x00\x00", 0, 0x2362f9de},
		{"\xff\xff\xff\xff", 0, 0x76293b50},
		{"\x21\x43\x65\x87", 0, 0xf55b516b},
		{"\x21\x43\x65", 0, 0x7e4a8634},
		{"\x21\x43", 0, 0xa0f7b07a},
		{"\x21", 0, 0x72661cf4},
		{"aaaa", 0x9747b28c, 0x5a97808a},
		{"Hello, world!", 0x9747b28c, 0x24884cba},
		{"The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd},
	}
	for _, tt := range tests {
		if got := murmur3BytesHash([]byte(tt.in), tt.seed); got != tt.want {
			t.Errorf("bytesHash(%q, %#x) = %#x, want %#x", tt.in, tt.seed, got, tt.want)
		}
	}
}

func sparkSpec() *features.Spec {
	return &features.Spec{
		Columns: []features.Column{
			{Name: "sex", Type: features.ColumnString},
			{Name: "x", Type: features.ColumnDouble},
			{Name: "rings", Type: features.ColumnDouble},
		},
		Categorical: []string{"sex"},
		Numeric:     []string{"x"},
		Label:       "rings",
	}
}

func TestSparkOrder(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	// Columns in a different order than the spec, plus __offset: found by name.
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "rings", Type: arrow.PrimitiveTypes.Float64},
		{Name: "__offset", Type: arrow.PrimitiveTypes.Int64},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64},
		{Name: "sex", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	rows := []struct {
		sex      string
		x, rings float64
	}{
		/*0*/ {"M", 1, 5},
		/*1*/ {"F", 2, 1},
		/*2*/ {"M", 0, 7},
		/*3*/ {"M", math.Copysign(0, -1), 7}, // -0.0 ties with row 2: input order kept
		/*4*/ {"I", math.NaN(), 1},
		/*5*/ {"I", math.Inf(1), 1},
		/*6*/ {"\u00e9", -1, 0}, // 0xC3 0xA9 sorts after ASCII
		/*7*/ {" M", 9, 9},
		/*8*/ {"M", 0, 3},
		/*9*/ {"M", 1, 5}, // identical to row 0: after it
		/*10*/ {"I", math.Inf(-1), 2},
		/*11*/ {"I", math.NaN(), 0},
	}
	for i, r := range rows {
		b.Field(0).(*array.Float64Builder).Append(r.rings)
		b.Field(1).(*array.Int64Builder).Append(int64(i))
		b.Field(2).(*array.Float64Builder).Append(r.x)
		b.Field(3).(*array.StringBuilder).Append(r.sex)
	}
	rec := b.NewRecord()
	defer rec.Release()

	got := sparkOrder(sparkSpec(), rec)
	want := []int{7, 1, 10, 5, 11, 4, 8, 2, 3, 0, 9, 6}
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	// -0.0 first in the input: it stays first.
	if c := compareDoubles(math.Copysign(0, -1), 0); c != 0 {
		t.Errorf("compare(-0, 0) = %d", c)
	}
	if compareDoubles(math.NaN(), math.Inf(1)) != 1 || compareDoubles(math.Inf(1), math.NaN()) != -1 || compareDoubles(math.NaN(), math.NaN()) != 0 {
		t.Error("NaN ordering")
	}
}

// TestSparkOrderMatchesStableSort compares sparkOrder with a stable sort
// by the columns' values, on rows with few and many distinct strings,
// nulls, equal rows and doubles that differ only in their last bits.
func TestSparkOrderMatchesStableSort(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(9, 10))
	for _, labels := range []int{1, 3, 40} {
		b := array.NewRecordBuilder(mem, sparkSpec().Schema())
		for range 3000 {
			sb := b.Field(0).(*array.StringBuilder)
			if rng.IntN(20) == 0 {
				sb.AppendNull()
			} else {
				sb.Append(strconv.Itoa(rng.IntN(labels)))
			}
			for f := 1; f <= 2; f++ {
				fb := b.Field(f).(*array.Float64Builder)
				switch rng.IntN(10) {
				case 0:
					fb.AppendNull()
				case 1:
					fb.Append(math.NaN())
				case 2:
					fb.Append(math.Nextafter(1, 2)) // 1 and its neighbour share the prefix's top bits
				default:
					fb.Append(float64(rng.IntN(3)))
				}
			}
		}
		rec := b.NewRecord()
		b.Release()
		want := make([]int, rec.NumRows())
		for i := range want {
			want[i] = i
		}
		sex, x, rings := rec.Column(0).(*array.String), rec.Column(1).(*array.Float64), rec.Column(2).(*array.Float64)
		// byColumn compares rows i and j by col, nulls first, values by cmpValue.
		byColumn := func(col arrow.Array, i, j int, cmpValue func() int) int {
			if col.IsNull(i) || col.IsNull(j) {
				return cmp.Compare(b2i(col.IsValid(i)), b2i(col.IsValid(j)))
			}
			return cmpValue()
		}
		slices.SortStableFunc(want, func(i, j int) int {
			if c := byColumn(sex, i, j, func() int { return strings.Compare(sex.Value(i), sex.Value(j)) }); c != 0 {
				return c
			}
			for _, col := range []*array.Float64{x, rings} {
				if c := byColumn(col, i, j, func() int { return compareDoubles(col.Value(i), col.Value(j)) }); c != 0 {
					return c
				}
			}
			return 0
		})
		if got := sparkOrder(sparkSpec(), rec); !slices.Equal(got, want) {
			t.Errorf("%d labels: the order differs from a stable sort", labels)
		}
		rec.Release()
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestSparkOrderEmpty(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewRecordBuilder(mem, sparkSpec().Schema())
	defer b.Release()
	rec := b.NewRecord()
	defer rec.Release()
	if got := sparkOrder(sparkSpec(), rec); len(got) != 0 {
		t.Errorf("got %v", got)
	}
}

// TestDoubleKeyOrdersAsCompareDoubles: the sort keys of doubles order
// them as Spark's compareDoubles does.
func TestDoubleKeyOrdersAsCompareDoubles(t *testing.T) {
	vals := []float64{math.Inf(-1), -math.MaxFloat64, -1.5, -1, -math.SmallestNonzeroFloat64, math.Copysign(0, -1), 0,
		math.SmallestNonzeroFloat64, 1, 1.5, math.MaxFloat64, math.Inf(1), math.NaN(), -math.NaN()}
	for _, x := range vals {
		if doubleKey(x) == 0 {
			t.Errorf("doubleKey(%v) is the key of a null", x)
		}
		for _, y := range vals {
			if got, want := cmp.Compare(doubleKey(x), doubleKey(y)), compareDoubles(x, y); got != want {
				t.Errorf("keys of %v, %v compare %d, compareDoubles %d", x, y, got, want)
			}
		}
	}
}

// compareDoubles is Spark's SQLOrderingUtil.compareDoubles: -0.0 == 0.0,
// NaN == NaN, NaN greater than any other value.
func compareDoubles(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	case x == y:
		return 0
	}
	xn, yn := math.IsNaN(x), math.IsNaN(y)
	switch {
	case xn && yn:
		return 0
	case xn:
		return 1
	default:
		return -1
	}
}
