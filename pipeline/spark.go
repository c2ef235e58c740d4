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
	n, k := int(rec.NumRows()), len(spec.Columns)
	// Each row's sort key, one uint64 per column, row after row: the
	// order of the keys is the order of the values.
	keys := make([]uint64, n*k)
	for i, c := range spec.Columns {
		idx := rec.Schema().FieldIndices(c.Name)
		if len(idx) == 0 {
			panic("pipeline.sparkOrder: record has no column " + c.Name)
		}
		col := rec.Column(idx[0])
		switch arr := col.(type) {
		case *array.String:
			stringKeys(keys[i:], k, arr)
		case *array.Float64:
			for r := range n {
				if !arr.IsNull(r) {
					keys[r*k+i] = doubleKey(arr.Value(r))
				}
			}
		default:
			panic("pipeline.sparkOrder: column " + c.Name + " has type " + col.DataType().String())
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	// Equal rows keep their order: the row index breaks ties, which
	// makes an unstable sort (O(n log n)) give the stable order.
	slices.SortFunc(order, func(a, b int) int {
		if c := slices.Compare(keys[a*k:a*k+k], keys[b*k:b*k+k]); c != 0 {
			return c
		}
		return a - b
	})
	return order
}

// stringKeys writes the sort key of each row of arr to dst[r*stride]: 0
// for a null (nulls first), else 1 + the rank of the value among the
// column's distinct values in unsigned byte order.
func stringKeys(dst []uint64, stride int, arr *array.String) {
	rank := map[string]uint64{}
	for r := range arr.Len() {
		if !arr.IsNull(r) {
			rank[arr.Value(r)] = 0
		}
	}
	distinct := make([]string, 0, len(rank))
	for v := range rank {
		distinct = append(distinct, v)
	}
	slices.SortFunc(distinct, strings.Compare) // unsigned bytes
	for i, v := range distinct {
		rank[v] = uint64(i) + 1
	}
	for r := range arr.Len() {
		if !arr.IsNull(r) {
			dst[r*stride] = rank[arr.Value(r)]
		}
	}
}

// doubleKey maps a double to a key whose unsigned order is
// compareDoubles' order: -0.0 is 0.0, NaN is above +Inf, and every
// non-null key is above 0, the key of a null.
func doubleKey(v float64) uint64 {
	switch {
	case math.IsNaN(v):
		return math.MaxUint64
	case v == 0:
		v = 0 // -0.0 too
	}
	b := math.Float64bits(v)
	if b>>63 != 0 {
		return ^b // negative: a larger magnitude sorts lower
	}
	return b | 1<<63
}
