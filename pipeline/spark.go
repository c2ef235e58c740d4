package pipeline

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/shardprep/shardprep/features"
)

// xorShiftRandom reproduces org.apache.spark.util.random.XORShiftRandom,
// the generator behind Spark's randomSplit: the same seed gives the same
// sequence of NextDouble values as Spark. The zero value is not useful; use
// newXORShiftRandom. It is not safe for concurrent use.
type xorShiftRandom struct {
	seed uint64
}

// newXORShiftRandom returns the generator Spark builds for seed (Spark's
// randomSplit uses seed + partition index). The state is Spark's hashSeed:
// over the 8 big-endian bytes of seed, lo = MurmurHash3 bytesHash with seed
// 0x3c074a61 and hi = bytesHash with seed lo; state = hi<<32 | lo.
func newXORShiftRandom(seed int64) *xorShiftRandom {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seed))
	lo := murmur3BytesHash(b[:], 0x3c074a61)
	hi := murmur3BytesHash(b[:], lo)
	return &xorShiftRandom{seed: uint64(hi)<<32 | uint64(lo)}
}

// next is XORShiftRandom.next(bits): it advances the state and returns its
// low nbits bits.
func (x *xorShiftRandom) next(nbits uint) uint64 {
	s := x.seed
	s ^= s << 21
	s ^= s >> 35
	s ^= s << 4
	x.seed = s
	return s & (1<<nbits - 1)
}

// NextDouble returns the next draw in [0,1), as java.util.Random.nextDouble
// computes it from next(26) and next(27).
func (x *xorShiftRandom) NextDouble() float64 {
	hi := x.next(26)
	lo := x.next(27)
	return float64(hi<<27+lo) * 0x1p-53
}

// murmur3BytesHash is Scala's MurmurHash3.bytesHash (MurmurHash3_x86_32
// over 4-byte little-endian blocks).
func murmur3BytesHash(data []byte, seed uint32) uint32 {
	const (
		c1 = 0xcc9e2d51
		c2 = 0x1b873593
	)
	h := seed
	n := len(data)
	i := 0
	for ; n-i >= 4; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	var k uint32
	switch n - i {
	case 3:
		k ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		k ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		k ^= uint32(data[i])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// sparkOrder returns the row indices of rec in the order Spark sorts a
// partition before randomSplit draws: ascending by every column of
// spec.Columns in turn, strings by their unsigned bytes, doubles with -0.0
// equal to 0.0 and NaN after every other value (NaNs equal), nulls first.
// Rows equal in every column keep their input order (Spark's sort is
// stable). rec must hold every column of spec.Columns, found by name with
// the types of spec.Schema(); other columns (such as "__offset") are
// ignored. It panics if a column is missing or mistyped, which is a
// programming error: the decoder's records always have them.
func sparkOrder(spec *features.Spec, rec arrow.Record) []int {
	cmps := make([]func(a, b int) int, len(spec.Columns))
	for i, c := range spec.Columns {
		idx := rec.Schema().FieldIndices(c.Name)
		if len(idx) == 0 {
			panic("pipeline.sparkOrder: record has no column " + c.Name)
		}
		col := rec.Column(idx[0])
		switch arr := col.(type) {
		case *array.String:
			cmps[i] = func(a, b int) int {
				if n := nullsFirst(arr, a, b); n != 2 {
					return n
				}
				return strings.Compare(arr.Value(a), arr.Value(b)) // unsigned bytes
			}
		case *array.Float64:
			cmps[i] = func(a, b int) int {
				if n := nullsFirst(arr, a, b); n != 2 {
					return n
				}
				return compareDoubles(arr.Value(a), arr.Value(b))
			}
		default:
			panic("pipeline.sparkOrder: column " + c.Name + " has type " + col.DataType().String())
		}
	}
	order := make([]int, rec.NumRows())
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		for _, cmp := range cmps {
			if c := cmp(a, b); c != 0 {
				return c
			}
		}
		return 0
	})
	return order
}

// nullsFirst orders nulls before values; it returns 2 when both are
// non-null.
func nullsFirst(arr arrow.Array, a, b int) int {
	na, nb := arr.IsNull(a), arr.IsNull(b)
	switch {
	case na && nb:
		return 0
	case na:
		return -1
	case nb:
		return 1
	}
	return 2
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
