package features

import (
	"errors"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Transform applies the model to rec: each categorical value is indexed
// (its position in the model's labels), the index one-hot encoded with the
// last index dropped (index k of n labels sets slot k when k < n-1; the last
// label is all zeros), and the vector assembled from the one-hot slots of
// each categorical column in order, then the numeric columns in order.
//
// Columns are found in rec by name (other columns are ignored): the
// categorical columns must be string columns, the numeric and label columns
// float64. A null anywhere in them, a NaN in a numeric or label column, or a
// categorical value the model does not know is a *RowError for the first
// such row (for several bad columns in that row: the label column first,
// then the categorical, then the numeric columns). Infinities pass through.
//
// The result has OutputSchema(): "label" float64 and "features"
// fixed_size_list<float64>[Width()], with rec's rows in rec's order and no
// nulls; when rec carries the source text of its numbers (see LineColumn),
// the result carries it on in further columns, which share (retain) rec's
// arrays. For a spec with stages, the stages run in order and every row
// refused or dropped by one (or with a null label or features) is listed
// in a RowErrors error; the other rows transform alone. Its memory comes from mem (nil: memory.DefaultAllocator); the
// caller owns it and must Release it. rec is only read, never retained.
func (m *Model) Transform(rec arrow.Record, mem memory.Allocator) (arrow.Record, error) {
	return m.transform(rec, mem, nil)
}

// transform is Transform, counting each categorical column's labels in
// t when t is set (and nothing when it fails).
func (m *Model) transform(rec arrow.Record, mem memory.Allocator, t *Tally) (arrow.Record, error) {
	if m == nil || m.schema == nil {
		return nil, errors.New("features: model not initialised")
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if m.pipe != nil {
		out, err := m.pipe.transform(rec, mem, m.schema, t)
		if err == nil && t != nil {
			t.keep(rec.NumRows())
		}
		return out, err
	}
	labelCol, err := float64Column(rec, m.label)
	if err != nil {
		return nil, err
	}
	cats := make([]array.StringLike, len(m.cats))
	for i, c := range m.cats {
		if cats[i], err = stringColumn(rec, c.column); err != nil {
			return nil, err
		}
	}
	nums := make([]*array.Float64, len(m.numeric))
	for i, name := range m.numeric {
		if nums[i], err = float64Column(rec, name); err != nil {
			return nil, err
		}
	}

	n, w := int(rec.NumRows()), m.width
	labelBuf := memory.NewResizableBuffer(mem)
	defer labelBuf.Release()
	labelBuf.Resize(n * arrow.Float64SizeBytes)
	featBuf := memory.NewResizableBuffer(mem)
	defer featBuf.Release()
	featBuf.Resize(n * w * arrow.Float64SizeBytes)
	labels := arrow.Float64Traits.CastFromBytes(labelBuf.Bytes())
	feats := arrow.Float64Traits.CastFromBytes(featBuf.Bytes())

	// Each column is filled up to its first bad row, and no further than
	// the first bad row found so far: the error reported is the first bad
	// row overall.
	var bad *RowError
	limit := n
	fail := func(e *RowError) {
		if bad == nil || e.Row < bad.Row {
			bad, limit = e, e.Row
		}
	}
	if e := copyNumbers(labels, 0, 1, labelCol, m.label, limit); e != nil {
		fail(e)
	}
	off := 0
	for i := range m.cats {
		var counts []int64
		if t != nil {
			counts = t.scratch(i)
		}
		if e := m.cats[i].oneHot(feats, off, w, cats[i], limit, counts); e != nil {
			fail(e)
		}
		off += len(m.cats[i].labels) - 1
	}
	for i, col := range nums {
		if e := copyNumbers(feats, off, w, col, m.numeric[i], limit); e != nil {
			fail(e)
		}
		off++
	}
	if bad != nil {
		return nil, bad
	}
	if t != nil {
		t.keep(int64(n))
	}
	return m.result(rec, labelBuf, featBuf), nil
}

// result returns the record of Transform's result over labelBuf and
// featBuf, which hold the label and the feature vectors of rec's rows.
func (m *Model) result(rec arrow.Record, labelBuf, featBuf *memory.Buffer) arrow.Record {
	n, w := int(rec.NumRows()), m.width
	labelData := array.NewData(arrow.PrimitiveTypes.Float64, n, []*memory.Buffer{nil, labelBuf}, nil, 0, 0)
	defer labelData.Release()
	labelArr := array.NewFloat64Data(labelData)
	defer labelArr.Release()
	valuesData := array.NewData(arrow.PrimitiveTypes.Float64, n*w, []*memory.Buffer{nil, featBuf}, nil, 0, 0)
	defer valuesData.Release()
	listData := array.NewData(m.schema.Field(1).Type, n, []*memory.Buffer{nil}, []arrow.ArrayData{valuesData}, 0, 0)
	defer listData.Release()
	listArr := array.NewFixedSizeListData(listData)
	defer listArr.Release()
	schema, cols := m.schema, []arrow.Array{labelArr, listArr}
	if fields, text := m.passText(rec); len(fields) > 0 {
		schema = arrow.NewSchema(append(schema.Fields(), fields...), nil)
		cols = append(cols, text...)
	}
	return array.NewRecord(schema, cols, int64(n))
}

// copyNumbers writes rows [0, limit) of col to dst[r*stride+off]. It stops
// at the first null or NaN and returns it as a *RowError.
func copyNumbers(dst []float64, off, stride int, col *array.Float64, name string, limit int) *RowError {
	vals := col.Float64Values()
	hasNulls := col.NullN() > 0
	for r := 0; r < limit; r++ {
		if hasNulls && col.IsNull(r) {
			return &RowError{Row: r, Column: name, Reason: ReasonNull}
		}
		v := vals[r]
		if v != v {
			return &RowError{Row: r, Column: name, Value: "NaN", Reason: ReasonNaN}
		}
		dst[r*stride+off] = v
	}
	return nil
}

// oneHot writes the one-hot slots of rows [0, limit) of col to
// dst[r*stride+off:][:len(labels)-1], counting the rows of each label
// index in counts, if set. It stops at the first null or unknown label and
// returns it as a *RowError.
func (c *catModel) oneHot(dst []float64, off, stride int, col array.StringLike, limit int, counts []int64) *RowError {
	slots := len(c.labels) - 1
	hasNulls := col.NullN() > 0
	last, lastK := "", -1
	for r := 0; r < limit; r++ {
		if hasNulls && col.IsNull(r) {
			return &RowError{Row: r, Column: c.column, Reason: ReasonNull}
		}
		v := col.Value(r)
		k := lastK
		if k < 0 || v != last {
			if k = c.lookup(v); k < 0 {
				return &RowError{Row: r, Column: c.column, Value: strings.Clone(v), Reason: ReasonUnseen}
			}
			last, lastK = v, k
		}
		if counts != nil {
			counts[k]++
		}
		row := dst[r*stride+off : r*stride+off+slots]
		for j := range row {
			// Not a loop of zeros, which would call memclr for a few
			// bytes per row.
			v := 0.0
			if j == k {
				v = 1
			}
			row[j] = v
		}
	}
	return nil
}

// lookup returns the index of label, or -1. Few labels are scanned, which
// beats hashing; many go through the map.
func (c *catModel) lookup(label string) int {
	if len(c.labels) <= 8 {
		for k, l := range c.labels {
			if l == label {
				return k
			}
		}
		return -1
	}
	if k, ok := c.index[label]; ok {
		return k
	}
	return -1
}
