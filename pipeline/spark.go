package pipeline

import (
	"cmp"
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
//
// Each column has an unsigned key per row whose order is the column's
// order (a string's rank among the column's values, a double's doubleKey,
// 0 for a null). The rows are sorted by the first 128 bits of their keys
// laid end to end (a string's key takes as many bits as its ranks need,
// a double's 64), which decide most comparisons, then by the keys of every
// column, then by row index, which makes the unstable sort (O(n log n))
// give the stable order.
func sparkOrder(spec *features.Spec, rec arrow.Record) []int {
	n := int(rec.NumRows())
	cols := make([]sortColumn, len(spec.Columns))
	for i, c := range spec.Columns {
		idx := rec.Schema().FieldIndices(c.Name)
		if len(idx) == 0 {
			panic("pipeline.sparkOrder: record has no column " + c.Name)
		}
		switch arr := rec.Column(idx[0]).(type) {
		case *array.String:
			cols[i].ranks, cols[i].width = stringRanks(arr)
		case *array.Float64:
			cols[i].doubles, cols[i].width = arr, 64
		default:
			panic("pipeline.sparkOrder: column " + c.Name + " has type " + arr.DataType().String())
		}
	}
	rows := make([]sortRow, n)
	for r := range rows {
		rows[r].hi, rows[r].lo = sortPrefix(cols, r)
		rows[r].row = r
	}
	slices.SortFunc(rows, func(a, b sortRow) int {
		if a.hi != b.hi {
			return cmp.Compare(a.hi, b.hi)
		}
		if a.lo != b.lo {
			return cmp.Compare(a.lo, b.lo)
		}
		for i := range cols {
			if c := cmp.Compare(cols[i].key(a.row), cols[i].key(b.row)); c != 0 {
				return c
			}
		}
		return a.row - b.row
	})
	order := make([]int, n)
	for i, r := range rows {
		order[i] = r.row
	}
	return order
}

// sortRow is a row to sort: the first 128 bits of its keys, and its
// index.
type sortRow struct {
	hi, lo uint64
	row    int
}

// sortColumn gives the sort keys of one column: ranks of a string
// column, or the doubles of a double column; width is how many bits its
// keys need.
type sortColumn struct {
	ranks   []uint32
	doubles *array.Float64
	width   int
}

func (c *sortColumn) key(r int) uint64 {
	if c.doubles == nil {
		return uint64(c.ranks[r])
	}
	if c.doubles.IsNull(r) {
		return 0
	}
	return doubleKey(c.doubles.Value(r))
}

// sortPrefix returns the first 128 bits of row r's keys laid end to end,
// each in its column's width, most significant first.
func sortPrefix(cols []sortColumn, r int) (hi, lo uint64) {
	used := 0
	for i := range cols {
		k, w := cols[i].key(r), cols[i].width
		if used+w > 128 {
			k >>= w - (128 - used)
			w = 128 - used
		}
		switch {
		case w == 64:
			hi, lo = lo, k
		case w > 0:
			hi, lo = hi<<w|lo>>(64-w), lo<<w|k
		}
		if used += w; used == 128 {
			return hi, lo
		}
	}
	switch s := 128 - used; {
	case s >= 64:
		return lo << (s - 64), 0
	default:
		return hi<<s | lo>>(64-s), lo << s
	}
}

// stringRanks returns the sort key of each row of arr: 0 for a null
// (nulls first), else 1 + the rank of the value among the column's
// distinct values in unsigned byte order; and how many bits the keys
// need. Each row's value is looked up only when it differs from the row
// before, and among few distinct values by comparing them in turn.
func stringRanks(arr *array.String) ([]uint32, int) {
	ids := make([]uint32, arr.Len()) // 1 + the value's place in distinct
	var distinct []string
	index := map[string]uint32{}
	last, lastID := "", uint32(0)
	for r := range ids {
		if arr.IsNull(r) {
			continue
		}
		v := arr.Value(r)
		if lastID == 0 || v != last {
			last, lastID = v, findString(&distinct, index, v)
		}
		ids[r] = lastID
	}
	order := make([]int, len(distinct))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(distinct[a], distinct[b]) }) // unsigned bytes
	rank := make([]uint32, len(distinct)+1)
	for i, d := range order {
		rank[d+1] = uint32(i) + 1
	}
	for r, id := range ids {
		ids[r] = rank[id]
	}
	return ids, bits.Len(uint(len(distinct)))
}

// findString returns 1 + the place of v in distinct, adding it when new
// (v aliases the record, which outlives the sort); index holds the places
// once there are more than a few.
func findString(distinct *[]string, index map[string]uint32, v string) uint32 {
	if len(*distinct) <= 8 {
		for i, d := range *distinct {
			if d == v {
				return uint32(i) + 1
			}
		}
	} else if id, ok := index[v]; ok {
		return id
	}
	*distinct = append(*distinct, v)
	id := uint32(len(*distinct))
	index[v] = id
	return id
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
