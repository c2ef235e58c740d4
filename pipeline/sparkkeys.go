package pipeline

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// keyColumn holds what a run knows of one column: the run's dictionary
// of the column's distinct values (a double by its doubleKey, so -0.0 and
// 0.0 are one value), numbered in order of arrival. A row's id is 1 + the
// number of its value, or 0 for a null. The ids are kept in the run's
// idMatrix, 16 bits each, while every one fits, then in wide. Once every
// run is read, rank maps each id to the rank of its value among the
// distinct values of all runs (rankColumn), whose order is the column's
// sort order, nulls first.
//
// A double's id stands for its doubleKey, which -0.0 shares with 0.0:
// negZero lists the rows (in order) whose value is -0.0, so that the
// rows can be written again from their ranks alone (sparkValues).
type keyColumn struct {
	wide    []uint32 // every row's id, once one does not fit in 16 bits
	rank    []uint32 // by id
	nums    numDict
	strs    strDict
	str     bool
	negZero []uint32
}

// maxNarrow is the largest id an idMatrix holds.
const maxNarrow = 1<<16 - 1

// idMatrix holds the ids of a run's rows, row by row: row i's id in
// column c is ids[i*cols+c] (unused for a column whose ids are wide).
type idMatrix struct {
	ids  []uint16
	cols int
}

// grow makes room for n more rows and returns the first's index.
func (m *idMatrix) grow(n int) int {
	rows := len(m.ids) / m.cols
	m.ids = slices.Grow(m.ids, n*m.cols)[:(rows+n)*m.cols]
	return rows
}

// id returns the id of row i of the column, the column c of m.
func (k *keyColumn) id(m *idMatrix, c, i int) uint32 {
	if k.wide != nil {
		return k.wide[i]
	}
	return uint32(m.ids[i*m.cols+c])
}

// add sets the ids of rows from on, of m's column c, to those of the
// values of arr, a column of a batch.
func (k *keyColumn) add(arr arrow.Array, m *idMatrix, c, from int) {
	k.addNegZero(arr, from)
	n, done := arr.Len(), 0
	if k.wide == nil {
		if done = addIDs(k, arr, 0, n, m.ids[from*m.cols+c:], m.cols); done == n {
			return
		}
		// Too many values for 16 bits: the column's ids become wide.
		k.wide = make([]uint32, from+done, from+n)
		for i := range k.wide {
			k.wide[i] = uint32(m.ids[i*m.cols+c])
		}
	}
	at := len(k.wide)
	k.wide = slices.Grow(k.wide, n-done)[:at+n-done]
	addIDs(k, arr, done, n, k.wide[at:], 1)
}

// addNegZero adds the rows of arr, a column of a batch whose first row
// is the run's row from, whose value is -0.0.
func (k *keyColumn) addNegZero(arr arrow.Array, from int) {
	a, ok := arr.(*array.Float64)
	if !ok {
		return
	}
	for i, v := range a.Float64Values() {
		if math.Float64bits(v) == 1<<63 && a.IsValid(i) {
			k.negZero = append(k.negZero, uint32(from+i))
		}
	}
}

// isNegZero reports whether the value of row is -0.0.
func (k *keyColumn) isNegZero(row uint32) bool {
	if len(k.negZero) == 0 {
		return false
	}
	_, found := slices.BinarySearch(k.negZero, row)
	return found
}

// addIDs sets ids[0], ids[stride], ... to the ids of the values of arr's
// rows from to n, up to the first id that does not fit in T, and returns
// the row it stopped at.
func addIDs[T uint16 | uint32](k *keyColumn, arr arrow.Array, from, n int, ids []T, stride int) int {
	limit := uint32(^T(0))
	nulls := arr.NullN() > 0
	switch a := arr.(type) {
	case *array.String:
		for r := from; r < n; r++ {
			id := uint32(0)
			if !nulls || !a.IsNull(r) {
				if id = 1 + k.strs.id(a.Value(r)); id > limit {
					return r
				}
			}
			ids[(r-from)*stride] = T(id)
		}
	case *array.Float64:
		vs := a.Float64Values()[from:n]
		d := &k.nums
		if d.scale == 0 {
			d.chooseScale(vs)
		}
		for r, v := range vs {
			id := uint32(0)
			if !nulls || !a.IsNull(from+r) {
				if id = 1 + d.idOf(v); id > limit {
					return from + r
				}
			}
			ids[r*stride] = T(id)
		}
	default:
		panic("pipeline.keyColumn: column of type " + arr.DataType().String())
	}
	return n
}

// rankOf returns the rank of row i's value in column c, once ranked.
func (r *sparkRun) rankOf(c, i int) uint32 {
	k := &r.keys[c]
	return k.rank[k.id(&r.ids, c, i)]
}

// numDict numbers the distinct keys it is given, in order of arrival:
// an open-addressing hash table of ids, small enough to stay in the cache
// for thousands of keys.
//
// In front of it, a value that is m/scale for a whole m below maxDirect
// (scale a power of ten chosen from the column's first values: most
// columns of a CSV export hold decimals of a few digits) finds its id in
// direct[m], one load instead of the table's two. Whether a value goes
// there depends on its bits alone, and the m of a value is its own (m/scale
// rounds to it), so each distinct value still has one id.
type numDict struct {
	slots []uint32 // 1 + the id of a key, or 0 when free
	shift uint
	vals  []uint64 // by id

	direct []uint32 // by m: 1 + the id of m/scale, or 0 when unseen
	scale  float64  // 0 until chosen; -1 for no direct ids

	last   uint64 // the key the table was last asked for
	lastID uint32 // 1 + its id, 0 before the first
}

// maxDirect bounds the m of a value numbered by its numDict's direct.
const maxDirect = 1 << 17

// chooseScale sets the scale of direct ids to the least power of ten,
// up to 10^6, that makes direct ids of nearly all of the first values of
// vs, or turns direct ids off.
func (d *numDict) chooseScale(vs []float64) {
	vs = vs[:min(len(vs), 256)]
	d.scale = -1
	for scale := 1.0; scale <= 1e6; scale *= 10 {
		fit := 0
		for _, v := range vs {
			if _, ok := directIndex(v, scale); ok {
				fit++
			}
		}
		if len(vs) > 0 && fit >= len(vs)-len(vs)/8 {
			d.scale = scale
			return
		}
	}
}

// directIndex returns m if v is the double nearest m/scale (the quotient
// of the two doubles) for a whole m in [0, maxDirect) (-0.0 and 0.0 give
// 0; NaN none).
func directIndex(v, scale float64) (int, bool) {
	f := v * scale
	if !(f >= 0 && f < maxDirect-1) {
		return 0, false
	}
	m := int(f + 0.5)
	return m, float64(m)/scale == v
}

// idOf returns the id of the value v.
func (d *numDict) idOf(v float64) uint32 {
	if d.scale > 0 {
		if m, ok := directIndex(v, d.scale); ok {
			if m < len(d.direct) && d.direct[m] != 0 {
				return d.direct[m] - 1
			}
			return d.addDirect(m, v)
		}
	}
	// Equal values often come in a row (a column the rows are sorted by).
	if key := doubleKey(v); d.lastID == 0 || key != d.last {
		d.last, d.lastID = key, 1+d.id(key)
	}
	return d.lastID - 1
}

// addDirect numbers v, a value not seen before, whose direct index is m.
func (d *numDict) addDirect(m int, v float64) uint32 {
	if m >= len(d.direct) {
		d.direct = slices.Grow(d.direct, m+1-len(d.direct))
		d.direct = d.direct[:cap(d.direct)]
	}
	id := uint32(len(d.vals))
	d.vals = append(d.vals, doubleKey(v))
	d.direct[m] = id + 1
	return id
}

func (d *numDict) id(k uint64) uint32 {
	if d.slots == nil {
		d.slots, d.shift = make([]uint32, 1<<10), 64-10
	}
	mask := len(d.slots) - 1
	for h := int((k * 0x9e3779b97f4a7c15) >> d.shift); ; h = (h + 1) & mask {
		s := d.slots[h]
		if s == 0 {
			id := uint32(len(d.vals))
			d.vals = append(d.vals, k)
			d.slots[h] = id + 1
			if 2*len(d.vals) > len(d.slots) {
				d.grow()
			}
			return id
		}
		if d.vals[s-1] == k {
			return s - 1
		}
	}
}

func (d *numDict) grow() {
	d.slots, d.shift = make([]uint32, 2*len(d.slots)), d.shift-1
	mask := len(d.slots) - 1
	for id, k := range d.vals {
		h := int((k * 0x9e3779b97f4a7c15) >> d.shift)
		for d.slots[h] != 0 {
			h = (h + 1) & mask
		}
		d.slots[h] = uint32(id) + 1
	}
}

// strDict numbers the distinct strings it is given, in order of arrival.
type strDict struct {
	index  map[string]uint32
	vals   []string
	last   string
	lastID uint32
}

func (d *strDict) id(v string) uint32 {
	if len(d.vals) > 0 && v == d.last {
		return d.lastID
	}
	id, ok := d.index[v]
	if !ok {
		if d.index == nil {
			d.index = map[string]uint32{}
		}
		v = strings.Clone(v) // v aliases the batch, which is released
		id = uint32(len(d.vals))
		d.vals = append(d.vals, v)
		d.index[v] = id
	}
	d.last, d.lastID = v, id
	return id
}

// rankColumn turns the ids of column c of every run into ranks among the
// distinct values of all runs, which it returns, in order: rank i > 0 is
// value i-1 (rank 0, a null's, is none).
func rankColumn(runs []*sparkRun, c int) sparkValues {
	if runs[0].keys[c].str {
		return sparkValues{str: true, strs: rankValues(runs, c, func(k *keyColumn) []string { return k.strs.vals }, strings.Compare)}
	}
	return sparkValues{nums: rankValues(runs, c, func(k *keyColumn) []uint64 { return k.nums.vals }, cmp.Compare[uint64])}
}

func rankValues[T any](runs []*sparkRun, c int, vals func(*keyColumn) []T, compare func(a, b T) int) []T {
	var all []T
	for _, r := range runs {
		all = append(all, vals(&r.keys[c])...)
	}
	slices.SortFunc(all, compare)
	all = slices.CompactFunc(all, func(a, b T) bool { return compare(a, b) == 0 })
	for _, r := range runs {
		k := &r.keys[c]
		vs := vals(k)
		k.rank = make([]uint32, 1+len(vs)) // a null's is 0
		for id, v := range vs {
			i, _ := slices.BinarySearchFunc(all, v, compare)
			k.rank[1+id] = 1 + uint32(i)
		}
		k.nums, k.strs = numDict{}, strDict{}
	}
	return all
}

// sparkKey is a row of a run to sort: the ranks of its columns laid end
// to end, most significant first, cut to their first 128-rowBits bits,
// then the row's index in its run in the last rowBits bits.
type sparkKey struct {
	hi, lo uint64
}

// keyOrder compares the keys of rows by Spark's order: the ranks of
// every column, then the place of the row in the object.
type keyOrder struct {
	runs    []*sparkRun
	widths  []int // of each column's ranks
	rowBits int   // of the rows' indices
	exact   bool  // the keys hold every rank
	at      []int // when exact: the lowest bit of each column's rank in a key
}

func newKeyOrder(runs []*sparkRun, widths []int) *keyOrder {
	o := &keyOrder{runs: runs, widths: widths}
	rows, total := 0, 0
	for _, r := range runs {
		rows = max(rows, r.rows)
	}
	for _, w := range widths {
		total += w
	}
	o.rowBits = bits.Len(uint(rows))
	o.exact = total+o.rowBits <= 128
	if o.exact {
		o.at = make([]int, len(widths))
		at := 128
		for c, w := range widths {
			at -= w
			o.at[c] = at
		}
	}
	return o
}

// rank returns the rank of column c in key, which holds every rank.
func (o *keyOrder) rank(k sparkKey, c int) uint32 {
	at, w := o.at[c], o.widths[c]
	var v uint64
	switch {
	case at >= 64:
		v = k.hi >> (at - 64)
	case at+w <= 64:
		v = k.lo >> at
	default:
		v = k.lo>>at | k.hi<<(64-at)
	}
	return uint32(v & (1<<w - 1))
}

// keys returns the keys of the rows of run, whose key columns are
// ranked. When the keys hold every rank and a row's ids take at least as
// many bytes as its key, the keys are written over the ids, which are then
// gone.
func (o *keyOrder) keys(run int) []sparkKey {
	r := o.runs[run]
	m := &r.ids
	rows := r.rows
	// Where each column's rank goes: cut by its last drop bits, it is
	// shifted left by at bits in the 128-bit key; shifts of 64 bits or
	// more give 0, so that no row needs a branch.
	type place struct {
		wide, rank                    []uint32
		drop, hiLeft, hiRight, loLeft uint
	}
	places := make([]place, len(o.widths))
	at := 128
	for c, w := range o.widths {
		keep := min(w, at-o.rowBits)
		at -= keep
		p := place{wide: r.keys[c].wide, rank: r.keys[c].rank, drop: uint(w - keep),
			hiLeft: 128, hiRight: 128, loLeft: uint(at)}
		if at >= 64 {
			p.hiLeft = uint(at - 64)
		} else {
			p.hiRight = uint(64 - at)
		}
		places[c] = p
	}
	keys := o.inPlace(m, rows)
	if keys == nil {
		keys = make([]sparkKey, rows)
		adviseHuge(keys)
	}
	for i := range rows {
		ids := m.ids[i*m.cols : (i+1)*m.cols]
		var hi, lo uint64
		for c := range places {
			p := &places[c]
			var id uint32
			if p.wide != nil {
				id = p.wide[i]
			} else {
				id = uint32(ids[c])
			}
			v := uint64(p.rank[id]) >> p.drop
			hi |= v<<p.hiLeft | v>>p.hiRight
			lo |= v << p.loLeft
		}
		// Every id of row i is read: its key may overwrite them.
		keys[i] = sparkKey{hi: hi, lo: lo | uint64(i)}
	}
	return keys
}

// inPlace returns the memory of m's ids as the rows' keys when the keys
// may be written over the ids: they hold every rank (the ids are not read
// again), and a row's key, written once its ids are read, takes no more
// bytes than them, so it reaches no later row's.
func (o *keyOrder) inPlace(m *idMatrix, rows int) []sparkKey {
	if !o.exact || m.cols*2 < int(unsafe.Sizeof(sparkKey{})) || rows == 0 {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(m.ids))
	if uintptr(p)%unsafe.Alignof(sparkKey{}) != 0 {
		return nil
	}
	return unsafe.Slice((*sparkKey)(p), rows)
}

// sort sorts the keys of run.
func (o *keyOrder) sort(keys []sparkKey, run int) {
	cmpKeys := func(a, b sparkKey) int { return o.compare(a, b, run, run) }
	if o.exact {
		// The rows' indices end the keys: no two are equal.
		cmpKeys = func(a, b sparkKey) int {
			if a.hi != b.hi {
				return cmp.Compare(a.hi, b.hi)
			}
			return cmp.Compare(a.lo, b.lo)
		}
	}
	radixSort(keys, cmpKeys)
}

// radixSort sorts keys by compare, which orders them first by their 128
// bits: it puts them in place into buckets by 8 of their bits, the first
// that not all share, and sorts each bucket so, in turn; few keys, or keys
// that differ in no bit, it sorts by compare.
func radixSort(keys []sparkKey, compare func(a, b sparkKey) int) {
	if len(keys) <= 24 {
		insertionSort(keys, compare)
		return
	}
	orHi, andHi, orLo, andLo := uint64(0), ^uint64(0), uint64(0), ^uint64(0)
	for _, k := range keys {
		orHi, andHi, orLo, andLo = orHi|k.hi, andHi&k.hi, orLo|k.lo, andLo&k.lo
	}
	shared := bits.LeadingZeros64(orHi ^ andHi)
	if shared == 64 {
		shared += bits.LeadingZeros64(orLo ^ andLo)
	}
	if shared == 128 {
		slices.SortFunc(keys, compare)
		return
	}
	shared = min(shared, 128-8)
	digit := func(k sparkKey) uint8 {
		if shared >= 64 {
			return uint8(k.lo << (shared - 64) >> 56)
		}
		return uint8((k.hi<<shared | k.lo>>(64-shared)) >> 56)
	}
	var ends, next [256]int
	for _, k := range keys {
		ends[digit(k)]++
	}
	sum := 0
	for d, n := range ends {
		next[d] = sum
		sum += n
		ends[d] = sum
	}
	start := 0
	for d := range 256 {
		// Swap each key in the bucket's place that is not of the bucket
		// into its own bucket's place.
		for next[d] < ends[d] {
			k := keys[next[d]]
			for e := int(digit(k)); e != d; e = int(digit(k)) {
				keys[next[e]], k = k, keys[next[e]]
				next[e]++
			}
			keys[next[d]] = k
			next[d]++
		}
		radixSort(keys[start:ends[d]], compare)
		start = ends[d]
	}
}

func insertionSort(keys []sparkKey, compare func(a, b sparkKey) int) {
	for i := 1; i < len(keys); i++ {
		k := keys[i]
		j := i
		for ; j > 0 && compare(k, keys[j-1]) < 0; j-- {
			keys[j] = keys[j-1]
		}
		keys[j] = k
	}
}

// compare compares key a of run ra with key b of run rb.
func (o *keyOrder) compare(a, b sparkKey, ra, rb int) int {
	if a.hi != b.hi {
		return cmp.Compare(a.hi, b.hi)
	}
	if pa, pb := a.lo>>o.rowBits, b.lo>>o.rowBits; pa != pb {
		return cmp.Compare(pa, pb)
	}
	mask := uint64(1)<<o.rowBits - 1
	rowA, rowB := a.lo&mask, b.lo&mask
	if !o.exact {
		a, b := o.runs[ra], o.runs[rb]
		for c := range a.keys {
			if x := cmp.Compare(a.rankOf(c, int(rowA)), b.rankOf(c, int(rowB))); x != 0 {
				return x
			}
		}
	}
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	return cmp.Compare(rowA, rowB)
}

// keyMerge merges the sorted keys of runs into one order.
type keyMerge struct {
	o      *keyOrder
	sorted [][]sparkKey // of each run, those not yet merged
}

// next appends to out the next rows of the order, of each row its
// run<<32 | its index in the run, until out is full or the order ends,
// and returns out; when the keys hold every rank, it appends the rows'
// keys to keys alike.
func (m *keyMerge) next(out []uint64, keys []sparkKey) ([]uint64, []sparkKey) {
	o, sorted := m.o, m.sorted
	mask := uint64(1)<<o.rowBits - 1
	for len(out) < cap(out) {
		best := -1
		for i, s := range sorted {
			if len(s) > 0 && (best < 0 || o.compare(s[0], sorted[best][0], i, best) < 0) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		// Take the run's keys up to the next key of another run.
		s := sorted[best]
		j, room := 1, cap(out)-len(out)
		for ; j < len(s) && j < room && o.before(s[j], sorted, best); j++ {
		}
		for _, k := range s[:j] {
			out = append(out, uint64(best)<<32|k.lo&mask)
		}
		if o.exact {
			keys = append(keys, s[:j]...)
		}
		sorted[best] = s[j:]
	}
	return out, keys
}

// before reports whether key k of run comes before the first key of every
// other run.
func (o *keyOrder) before(k sparkKey, sorted [][]sparkKey, run int) bool {
	for i, s := range sorted {
		if i != run && len(s) > 0 && o.compare(s[0], k, i, run) < 0 {
			return false
		}
	}
	return true
}
