package features

import (
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Columns between stages are Arrow arrays: doubles as float64 arrays,
// vectors as fixed_size_list<float64>[width] arrays, strings as decoded
// (utf8). A null is a null slot of the array.

// numView reads a float64 or fixed_size_list<float64> array row by row.
type numView struct {
	arr   arrow.Array
	vals  []float64 // the values: one per row, or width per row
	width int       // 0 for a double column
	off   int       // the first row's index into vals, in rows
}

func viewOf(a arrow.Array) (numView, error) {
	switch t := a.(type) {
	case *array.Float64:
		return numView{arr: a, vals: t.Float64Values()}, nil
	case *array.FixedSizeList:
		child, ok := t.ListValues().(*array.Float64)
		if !ok {
			return numView{}, fmt.Errorf("features: vector column of %s, want float64 values", t.ListValues().DataType())
		}
		w := int(t.DataType().(*arrow.FixedSizeListType).Len())
		return numView{arr: a, vals: child.Float64Values(), width: w, off: t.Data().Offset()}, nil
	}
	return numView{}, fmt.Errorf("features: column of type %s, want float64 or a vector", a.DataType())
}

func (v numView) null(r int) bool { return v.arr.IsNull(r) }

// scalar is row r of a double column.
func (v numView) scalar(r int) float64 { return v.vals[r] }

// slots returns row r's values: a vector's slots, or a double as one slot.
func (v numView) slots(r int) []float64 {
	if v.width == 0 {
		return v.vals[r : r+1]
	}
	s := (v.off + r) * v.width
	return v.vals[s : s+v.width]
}

// size is the number of slots per row.
func (v numView) size() int { return max(v.width, 1) }

// numBuilder makes a float64 (width 0) or vector array of n rows.
type numBuilder struct {
	mem   memory.Allocator
	n, w  int
	buf   *memory.Buffer
	vals  []float64
	valid []byte // nil until the first null
}

func newNumBuilder(mem memory.Allocator, n, width int) *numBuilder {
	b := &numBuilder{mem: mem, n: n, w: width, buf: memory.NewResizableBuffer(mem)}
	b.buf.Resize(n * max(width, 1) * arrow.Float64SizeBytes)
	b.vals = arrow.Float64Traits.CastFromBytes(b.buf.Bytes())
	clear(b.vals)
	return b
}

// row returns row r's slots to fill.
func (b *numBuilder) row(r int) []float64 {
	k := max(b.w, 1)
	return b.vals[r*k : r*k+k]
}

func (b *numBuilder) setNull(r int) {
	if b.valid == nil {
		b.valid = make([]byte, bitutil.BytesForBits(int64(b.n)))
		bitutil.SetBitsTo(b.valid, 0, int64(b.n), true)
	}
	bitutil.ClearBit(b.valid, r)
}

// finish returns the array; b must not be used afterwards.
func (b *numBuilder) finish() arrow.Array {
	defer b.buf.Release()
	var validity *memory.Buffer
	nulls := 0
	if b.valid != nil {
		validity = memory.NewResizableBuffer(b.mem)
		defer validity.Release()
		validity.Resize(len(b.valid))
		copy(validity.Bytes(), b.valid)
		nulls = b.n - bitutil.CountSetBits(b.valid, 0, b.n)
	}
	if b.w == 0 {
		d := array.NewData(arrow.PrimitiveTypes.Float64, b.n, []*memory.Buffer{validity, b.buf}, nil, nulls, 0)
		defer d.Release()
		return array.NewFloat64Data(d)
	}
	child := array.NewData(arrow.PrimitiveTypes.Float64, b.n*b.w, []*memory.Buffer{nil, b.buf}, nil, 0, 0)
	defer child.Release()
	d := array.NewData(vectorType(b.w), b.n, []*memory.Buffer{validity}, []arrow.ArrayData{child}, nulls, 0)
	defer d.Release()
	return array.NewFixedSizeListData(d)
}

func vectorType(w int) arrow.DataType {
	return arrow.FixedSizeListOfNonNullable(int32(w), arrow.PrimitiveTypes.Float64)
}
