package pipeline

import (
	"context"
	"fmt"
	"math"
	"runtime"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/bitutil"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/shardprep/shardprep/features"
)

// The Spark mode's rows, written in Spark's order.
//
// A row is its columns' values, and the runs keep of it only each
// column's rank among the column's distinct values (in the sort keys, or
// beside them when the keys cannot hold every rank). So the rows are built
// again from their ranks, a batch at a time, in the order the merge of the
// runs yields: the same values (-0.0, which shares 0.0's rank, from the
// runs' lists of the rows that hold it), and, for the numbers, their repr
// as the source text that the text writer copies. The model transforms
// them as it did when the runs read them (it refused none of them then),
// and their lines go to the parts.

// sparkValues is a column's distinct values over the whole object, in
// the column's sort order: rank i > 0 is value i-1, rank 0 a null.
type sparkValues struct {
	str  bool
	strs []string
	nums []uint64 // doubleKeys, until prepare
	// Set by prepare, for a column of doubles: the values, and, when
	// the column's rows repeat its values, their reprs, each in 16 bytes
	// (copied at once) with its length; long is the longest.
	floats []float64
	reprs  [][16]byte
	lens   []uint8
	long   int
}

func (v *sparkValues) len() int {
	if v.str {
		return len(v.strs)
	}
	return len(v.nums)
}

// prepare makes the values of a column of doubles ready to build rows
// with: the doubles, and their reprs with text, when each value is held by
// four rows or more on average (otherwise the text writer formats them, no
// more often than they would be formatted here).
func (v *sparkValues) prepare(rows int, text bool) {
	if v.str {
		return
	}
	v.floats = make([]float64, len(v.nums))
	for i, k := range v.nums {
		v.floats[i] = fromDoubleKey(k)
	}
	v.nums = nil
	if !text || 4*len(v.floats) > rows {
		return
	}
	reprs, lens := make([][16]byte, len(v.floats)), make([]uint8, len(v.floats))
	var buf [32]byte
	for i, f := range v.floats {
		r := features.AppendPyFloat(buf[:0], f)
		if len(r) > len(reprs[i]) {
			return // the text writer formats the column's values
		}
		copy(reprs[i][:], r)
		lens[i] = uint8(len(r))
		v.long = max(v.long, len(r))
	}
	v.reprs, v.lens = reprs, lens
}

// fromDoubleKey is the double of doubleKey k: 0.0 for -0.0's key, the
// canonical NaN for NaN's.
func fromDoubleKey(k uint64) float64 {
	switch {
	case k == math.MaxUint64:
		return math.NaN()
	case k>>63 != 0:
		return math.Float64frombits(k &^ (1 << 63))
	}
	return math.Float64frombits(^k)
}

// sparkBuilder builds the rows of the order again, a batch at a time.
type sparkBuilder struct {
	spec   *features.Spec
	model  *features.Model
	runs   []*sparkRun
	order  *keyOrder
	values []sparkValues
	schema *arrow.Schema
	// With source text: the double columns whose reprs a row's line
	// holds, in the line's order (the model's numeric columns, as its
	// slots are, then the label), and each double column's field in the
	// record.
	text     bool
	lineCols []int
	spanCol  []int  // per spec column: the index of its span column, -1 none
	label    int    // the label's spec column
	negZero  []bool // per spec column: whether a run lists rows holding -0.0
}

// newSparkBuilder returns the builder of the rows of runs, whose columns'
// distinct values are values, for model; with text, the rows carry the
// reprs of their numbers as source text (not for a spec with stages,
// whose decoder keeps none either).
func newSparkBuilder(spec *features.Spec, model *features.Model, runs []*sparkRun, o *keyOrder, values []sparkValues) *sparkBuilder {
	b := &sparkBuilder{spec: spec, model: model, runs: runs, order: o, values: values, text: !spec.HasStages(),
		spanCol: make([]int, len(spec.Columns)), label: -1, negZero: make([]bool, len(spec.Columns))}
	rows := 0
	for _, r := range runs {
		rows += r.rows
	}
	parallel(len(values), func(c int) { values[c].prepare(rows, b.text) })
	fields := spec.Schema().Fields()
	byName := map[string]int{}
	for c, col := range spec.Columns {
		byName[col.Name] = c
		b.spanCol[c] = -1
		for _, r := range runs {
			b.negZero[c] = b.negZero[c] || len(r.keys[c].negZero) > 0
		}
		if col.Name == spec.Label {
			b.label = c
		}
	}
	if b.text {
		fields = append(fields, arrow.Field{Name: features.LineColumn, Type: arrow.BinaryTypes.Binary})
		for c, col := range spec.Columns {
			if col.Type == features.ColumnDouble {
				b.spanCol[c] = len(fields)
				fields = append(fields, arrow.Field{Name: features.TextColumn(col.Name), Type: arrow.PrimitiveTypes.Uint32})
			}
		}
		for _, name := range append(model.NumericColumns(), model.LabelColumn()) {
			if c, ok := byName[name]; ok && b.spanCol[c] >= 0 && values[c].reprs != nil {
				b.lineCols = append(b.lineCols, c)
			}
		}
	}
	b.schema = arrow.NewSchema(fields, nil)
	return b
}

// sparkBatch is the scratch of one goroutine's batches.
type sparkBatch struct {
	ranks [][]uint32 // per column: each row's rank
	neg   [][]bool   // per column: whether each row's value is -0.0
	line  []byte     // the rows' lines
}

// rank returns the ranks of the rows of order (of each row its
// run<<32 | its index in the run; keys, their keys when those hold every
// rank) in column c.
func (b *sparkBuilder) ranks(dst []uint32, c int, order []uint64, keys []sparkKey) []uint32 {
	dst = dst[:0]
	if b.order.exact {
		for _, k := range keys {
			dst = append(dst, b.order.rank(k, c))
		}
		return dst
	}
	for _, o := range order {
		dst = append(dst, b.runs[o>>32].rankOf(c, int(uint32(o))))
	}
	return dst
}

// record builds the rows of order (and keys) as a record like the
// decoder's, in memory from mem.
func (b *sparkBuilder) record(s *sparkBatch, order []uint64, keys []sparkKey, mem memory.Allocator) arrow.Record {
	n := len(order)
	cols := make([]arrow.Array, len(b.schema.Fields()))
	if s.ranks == nil {
		s.ranks, s.neg = make([][]uint32, len(b.spec.Columns)), make([][]bool, len(b.spec.Columns))
	}
	for c, col := range b.spec.Columns {
		s.ranks[c] = b.ranks(s.ranks[c], c, order, keys)
		s.neg[c] = s.neg[c][:0]
		if col.Type == features.ColumnString {
			cols[c] = b.strings(c, s.ranks[c], mem)
			continue
		}
		if b.negZero[c] {
			for _, o := range order {
				s.neg[c] = append(s.neg[c], b.runs[o>>32].keys[c].isNegZero(uint32(o)))
			}
		}
		cols[c] = b.doubles(c, s.ranks[c], s.neg[c], mem)
	}
	if b.text {
		b.lines(cols, s, n, mem)
	}
	rec := array.NewRecord(b.schema, cols, int64(n))
	for _, a := range cols {
		a.Release()
	}
	return rec
}

// validity returns the validity bitmap of ranks (rank 0 is a null) and
// the nulls' count, or nil when there are none.
func validity(ranks []uint32, mem memory.Allocator) (*memory.Buffer, int) {
	nulls := 0
	for _, r := range ranks {
		if r == 0 {
			nulls++
		}
	}
	if nulls == 0 {
		return nil, 0
	}
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(int(bitutil.BytesForBits(int64(len(ranks)))))
	bits := buf.Bytes()
	clear(bits)
	for i, r := range ranks {
		if r != 0 {
			bitutil.SetBit(bits, i)
		}
	}
	return buf, nulls
}

func (b *sparkBuilder) strings(c int, ranks []uint32, mem memory.Allocator) arrow.Array {
	vals := b.values[c].strs
	size := 0
	for _, r := range ranks {
		if r > 0 {
			size += len(vals[r-1])
		}
	}
	offs, data := memory.NewResizableBuffer(mem), memory.NewResizableBuffer(mem)
	offs.Resize((len(ranks) + 1) * arrow.Int32SizeBytes)
	data.Resize(size)
	ov, dv := arrow.Int32Traits.CastFromBytes(offs.Bytes()), data.Bytes()[:0]
	ov[0] = 0
	for i, r := range ranks {
		if r > 0 {
			if v := vals[r-1]; len(v) == 1 {
				dv = append(dv, v[0]) // a category's code, mostly: no call
			} else {
				dv = append(dv, v...)
			}
		}
		ov[i+1] = int32(len(dv))
	}
	valid, nulls := validity(ranks, mem)
	d := array.NewData(arrow.BinaryTypes.String, len(ranks), []*memory.Buffer{valid, offs, data}, nil, nulls, 0)
	a := array.NewStringData(d)
	d.Release()
	for _, buf := range []*memory.Buffer{valid, offs, data} {
		if buf != nil {
			buf.Release()
		}
	}
	return a
}

func (b *sparkBuilder) doubles(c int, ranks []uint32, neg []bool, mem memory.Allocator) arrow.Array {
	vals := b.values[c].floats
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(len(ranks) * arrow.Float64SizeBytes)
	v := arrow.Float64Traits.CastFromBytes(buf.Bytes())
	for i, r := range ranks {
		v[i] = 0
		if r > 0 {
			v[i] = vals[r-1]
		}
	}
	for i, isNeg := range neg {
		if isNeg {
			v[i] = math.Copysign(0, -1)
		}
	}
	valid, nulls := validity(ranks, mem)
	d := array.NewData(arrow.PrimitiveTypes.Float64, len(ranks), []*memory.Buffer{valid, buf}, nil, nulls, 0)
	a := array.NewFloat64Data(d)
	d.Release()
	buf.Release()
	if valid != nil {
		valid.Release()
	}
	return a
}

// negZeroRepr is -0.0's repr, as sparkValues keep one.
var negZeroRepr = [16]byte{'-', '0', '.', '0'}

// lines sets the source text columns of cols: each row's line holds the
// reprs of its values in lineCols, one comma apart, and each double
// column's span points at its value's repr (0: none, for a null or a
// column whose reprs are not kept).
func (b *sparkBuilder) lines(cols []arrow.Array, s *sparkBatch, n int, mem memory.Allocator) {
	spans := make([][]uint32, len(b.spec.Columns))
	spanBufs := make([]*memory.Buffer, len(b.spec.Columns))
	for c, at := range b.spanCol {
		if at < 0 {
			continue
		}
		spanBufs[c] = memory.NewResizableBuffer(mem)
		spanBufs[c].Resize(n * arrow.Uint32SizeBytes)
		spans[c] = arrow.Uint32Traits.CastFromBytes(spanBufs[c].Bytes())
		clear(spans[c])
	}
	// Room for the longest line of every row, and 16 bytes more for the
	// last copy.
	most := 0
	for _, c := range b.lineCols {
		most += max(b.values[c].long, len("-0.0")) + 1
	}
	if need := n*most + 16; cap(s.line) < need {
		s.line = make([]byte, need)
	}
	line := s.line[:cap(s.line)]
	offs := memory.NewResizableBuffer(mem)
	offs.Resize((n + 1) * arrow.Int32SizeBytes)
	ov := arrow.Int32Traits.CastFromBytes(offs.Bytes())
	ov[0] = 0
	at := 0
	for i := range n {
		start := at
		for _, c := range b.lineCols {
			r := s.ranks[c][i]
			if r == 0 {
				continue
			}
			v := &b.values[c]
			repr, size := &v.reprs[r-1], int(v.lens[r-1])
			if len(s.neg[c]) > 0 && s.neg[c][i] {
				repr, size = &negZeroRepr, 4
			}
			if at > start {
				line[at] = ','
				at++
			}
			*(*[16]byte)(line[at : at+16]) = *repr
			spans[c][i] = features.Span(at-start, size, false)
			at += size
		}
		ov[i+1] = int32(at)
	}
	// The lines are the batch's scratch, not the allocator's: the record
	// is released before the next batch writes them again.
	data := memory.NewBufferBytes(line[:at])
	d := array.NewData(arrow.BinaryTypes.Binary, n, []*memory.Buffer{nil, offs, data}, nil, 0, 0)
	cols[len(b.spec.Columns)] = array.NewBinaryData(d)
	d.Release()
	offs.Release()
	data.Release()
	for c, at := range b.spanCol {
		if at < 0 {
			continue
		}
		sd := array.NewData(arrow.PrimitiveTypes.Uint32, n, []*memory.Buffer{nil, spanBufs[c]}, nil, 0, 0)
		cols[at] = array.NewUint32Data(sd)
		sd.Release()
		spanBufs[c].Release()
	}
}

// writeSpark draws the rows, in order, into the splits, and writes the
// splits' parts and the label's stats: the rows of each stretch of
// sparkChunk rows of the order are built again, transformed and written
// as lines at the same time, and the lines written to the parts in order,
// by a goroutine of their own, while the next stretches are merged, drawn
// and built.
func (t *transformTask) writeSpark(ctx context.Context, runs []*sparkRun, merge *keyMerge, values []sparkValues) error {
	rows := newSparkBuilder(t.job.Spec, t.model, runs, merge.o, values)
	rng := newXORShiftRandom(t.job.Seed + int64(t.split.Index))
	base := shared(t.mem)
	// Two sets of pieces: one built while the other is written.
	var sets [2]sparkSet
	free, ready := make(chan int, len(sets)), make(chan int, len(sets))
	for i := range sets {
		sets[i] = newSparkSet(runtime.GOMAXPROCS(0), len(t.bounds), base)
		free <- i
	}
	defer func() {
		for i := range sets {
			for j := range sets[i].pieces {
				sets[i].pieces[j].mem.Release()
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for s := range ready {
			for i := range sets[s].pieces {
				if err := t.writePiece(&sets[s].pieces[i]); err != nil {
					return err
				}
			}
			free <- s // never blocks: it has room for every set
		}
		return nil
	})
	var err error
	for err == nil {
		var s int
		select {
		case s = <-free:
		case <-gctx.Done():
		}
		if gctx.Err() != nil {
			break
		}
		set := &sets[s]
		if set.order, set.keys = merge.next(set.order[:0], set.keys[:0]); len(set.order) == 0 {
			break
		}
		for i := range set.order {
			set.dest[i] = uint8(pick(t.bounds, rng.NextDouble()))
		}
		parallel(len(set.pieces), func(i int) {
			lo := min(i*sparkChunk, len(set.order))
			hi := min(lo+sparkChunk, len(set.order))
			var keys []sparkKey
			if merge.o.exact {
				keys = set.keys[lo:hi]
			}
			set.pieces[i].build(rows, t.job.BatchRows, set.order[lo:hi], keys, set.dest[lo:hi])
		})
		for i := range set.pieces {
			if err = set.pieces[i].err; err != nil {
				break
			}
		}
		if err == nil {
			ready <- s // never blocks, as free
		}
	}
	close(ready)
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return err
}

// sparkSet is a stretch of the order: its rows, their keys (when they hold
// every rank), their splits, and their lines and labels built in pieces.
type sparkSet struct {
	order  []uint64
	keys   []sparkKey
	dest   []uint8
	pieces []sparkPiece
}

// newSparkSet returns a set of n pieces, each of sparkChunk rows, into
// splits splits, each piece's memory a recycler over mem.
func newSparkSet(n, splits int, mem memory.Allocator) sparkSet {
	s := sparkSet{order: make([]uint64, 0, n*sparkChunk), dest: make([]uint8, n*sparkChunk), pieces: make([]sparkPiece, n)}
	for i := range s.pieces {
		p := &s.pieces[i]
		p.lines, p.labels, p.rows = make([][]byte, splits), make([][]float64, splits), make([][]int, splits)
		p.mem = newRecycler(mem)
	}
	return s
}

// sparkChunk is how many rows of the order a goroutine builds at once.
const sparkChunk = 1 << 15

// sparkPiece is the lines and labels of a stretch of the order, per split.
type sparkPiece struct {
	lines  [][]byte
	labels [][]float64
	rows   [][]int // per split: the rows of the batch drawn into it
	batch  sparkBatch
	mem    *recycler
	err    error
}

// build builds the rows of order (drawn into dest) again, batchRows at a
// time, transforms them and collects their lines and labels.
func (p *sparkPiece) build(b *sparkBuilder, batchRows int, order []uint64, keys []sparkKey, dest []uint8) {
	for k := range p.lines {
		p.lines[k], p.labels[k] = p.lines[k][:0], p.labels[k][:0]
	}
	p.err = nil
	if batchRows <= 0 {
		batchRows = len(order)
	}
	for lo := 0; lo < len(order) && p.err == nil; lo += batchRows {
		hi := min(lo+batchRows, len(order))
		var ks []sparkKey
		if keys != nil {
			ks = keys[lo:hi]
		}
		p.err = p.batchOf(b, order[lo:hi], ks, dest[lo:hi])
	}
}

func (p *sparkPiece) batchOf(b *sparkBuilder, order []uint64, keys []sparkKey, dest []uint8) error {
	rec := b.record(&p.batch, order, keys, p.mem)
	defer rec.Release()
	out, err := b.model.Transform(rec, p.mem)
	if err != nil {
		return fmt.Errorf("pipeline: the Spark mode's rows, built again in order, fail the model they passed when read: %w", err)
	}
	defer out.Release()
	for k := range p.rows {
		p.rows[k] = p.rows[k][:0]
	}
	for i, k := range dest {
		p.rows[k] = append(p.rows[k], i)
	}
	text := features.TextOf(out)
	labels := rec.Column(b.label).(*array.Float64).Float64Values()
	for k, rows := range p.rows {
		p.lines[k] = text.AppendRows(p.lines[k], rows)
		for _, i := range rows {
			p.labels[k] = append(p.labels[k], labels[i])
		}
	}
	return nil
}

// writePiece writes the lines of p to the parts and adds its labels to
// the stats.
func (t *transformTask) writePiece(p *sparkPiece) error {
	for k, w := range t.outs {
		if _, err := w.Write(p.lines[k]); err != nil {
			return err
		}
		if t.cols != nil {
			if err := t.cols.AddLabels(k, p.labels[k]); err != nil {
				return err
			}
		}
		t.rowsOut[k] += int64(len(p.labels[k]))
	}
	return nil
}
