package pipeline

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// keyColumn holds the sort keys of one column of a run's rows: each row's
// value as 1 + its id in the run's dictionary of the column's distinct
// values (a double by its doubleKey, so -0.0 and 0.0 are one value), or 0
// for a null. Once every run is read, the ids become ranks among the
// distinct values of all runs (rankColumn), whose order is the column's
// sort order, nulls first. The ids are 16 bits wide (narrow) while every
// one fits, then 32 (wide).
type keyColumn struct {
	narrow []uint16
	wide   []uint32 // once an id does not fit in 16 bits; narrow is then nil
	nums   numDict
	strs   strDict
	str    bool
}

// maxNarrow is the largest id a narrow column holds.
const maxNarrow = 1<<16 - 1

// len returns how many rows the column holds.
func (k *keyColumn) len() int {
	if k.wide != nil {
		return len(k.wide)
	}
	return len(k.narrow)
}

// id returns the id (or rank) of row i.
func (k *keyColumn) id(i int) uint32 {
	if k.wide != nil {
		return k.wide[i]
	}
	return uint32(k.narrow[i])
}

// widen makes the column's ids 32 bits wide, keeping room for n more.
func (k *keyColumn) widen(n int) {
	if k.wide != nil {
		return
	}
	k.wide = make([]uint32, len(k.narrow), len(k.narrow)+n)
	for i, v := range k.narrow {
		k.wide[i] = uint32(v)
	}
	k.narrow = nil
}

// add appends the ids of the values of arr, a column of a batch.
func (k *keyColumn) add(arr arrow.Array) {
	n, done := arr.Len(), 0
	if k.wide == nil {
		from := len(k.narrow)
		k.narrow = slices.Grow(k.narrow, n)[:from+n]
		if done = addIDs(k, arr, 0, k.narrow[from:]); done == n {
			return
		}
		k.narrow = k.narrow[:from+done]
		k.widen(n - done)
	}
	from := len(k.wide)
	k.wide = slices.Grow(k.wide, n-done)[:from+n-done]
	addIDs(k, arr, done, k.wide[from:])
}

// addIDs sets ids to the ids of the values of arr from row from on, up
// to the first id that does not fit in T, and returns how many it set.
func addIDs[T uint16 | uint32](k *keyColumn, arr arrow.Array, from int, ids []T) int {
	limit := uint32(^T(0))
	nulls := arr.NullN() > 0
	switch a := arr.(type) {
	case *array.String:
		for r := range ids {
			if nulls && a.IsNull(from+r) {
				ids[r] = 0
				continue
			}
			id := 1 + k.strs.id(a.Value(from+r))
			if id > limit {
				return r
			}
			ids[r] = T(id)
		}
	case *array.Float64:
		last, lastID := uint64(0), uint32(0)
		for r, v := range a.Float64Values()[from : from+len(ids)] {
			if nulls && a.IsNull(from+r) {
				ids[r] = 0
				continue
			}
			if key := doubleKey(v); lastID == 0 || key != last {
				if last, lastID = key, 1+k.nums.id(key); lastID > limit {
					return r
				}
			}
			ids[r] = T(lastID)
		}
	default:
		panic("pipeline.keyColumn: column of type " + arr.DataType().String())
	}
	return len(ids)
}

// numDict numbers the distinct keys it is given, in order of arrival:
// an open-addressing hash table of ids, small enough to stay in the cache
// for thousands of keys.
type numDict struct {
	slots []uint32 // 1 + the id of a key, or 0 when free
	shift uint
	vals  []uint64 // by id
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
// distinct values of all runs and returns how many bits a rank needs.
func rankColumn(runs []*sparkRun, c int) int {
	if runs[0].keys[c].str {
		return rankValues(runs, c, func(k *keyColumn) []string { return k.strs.vals }, strings.Compare)
	}
	return rankValues(runs, c, func(k *keyColumn) []uint64 { return k.nums.vals }, cmp.Compare[uint64])
}

func rankValues[T any](runs []*sparkRun, c int, vals func(*keyColumn) []T, compare func(a, b T) int) int {
	var all []T
	for _, r := range runs {
		all = append(all, vals(&r.keys[c])...)
	}
	slices.SortFunc(all, compare)
	all = slices.CompactFunc(all, func(a, b T) bool { return compare(a, b) == 0 })
	for _, r := range runs {
		k := &r.keys[c]
		vs := vals(k)
		rank := make([]uint32, 1+len(vs)) // a null's is 0
		for id, v := range vs {
			i, _ := slices.BinarySearchFunc(all, v, compare)
			rank[1+id] = 1 + uint32(i)
		}
		if len(all) > maxNarrow {
			k.widen(0)
		}
		if k.wide != nil {
			for i, id := range k.wide {
				k.wide[i] = rank[id]
			}
		} else {
			for i, id := range k.narrow {
				k.narrow[i] = uint16(rank[id])
			}
		}
		k.nums, k.strs = numDict{}, strDict{}
	}
	return bits.Len(uint(len(all)))
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
}

func newKeyOrder(runs []*sparkRun, widths []int) *keyOrder {
	o := &keyOrder{runs: runs, widths: widths}
	rows, total := 0, 0
	for _, r := range runs {
		rows = max(rows, len(r.ends))
	}
	for _, w := range widths {
		total += w
	}
	o.rowBits = bits.Len(uint(rows))
	o.exact = total+o.rowBits <= 128
	return o
}

// keys returns the keys of the rows of run, whose key columns hold ranks.
func (o *keyOrder) keys(run int) []sparkKey {
	r := o.runs[run]
	keys := make([]sparkKey, len(r.ends))
	adviseHuge(keys)
	// Where each column's rank goes: cut to its first keep bits, it is
	// shifted left by at bits in the 128-bit key.
	type place struct{ drop, at int }
	places := make([]place, len(o.widths))
	at := 128
	for c, w := range o.widths {
		keep := min(w, at-o.rowBits)
		at -= keep
		places[c] = place{w - keep, at}
	}
	// In blocks of rows, one column after another: the block's keys stay
	// in the cache.
	const block = 1 << 10
	for lo := 0; lo < len(keys); lo += block {
		ks := keys[lo:min(lo+block, len(keys))]
		for i := range ks {
			ks[i] = sparkKey{lo: uint64(lo + i)}
		}
		for c, p := range places {
			if p.drop == o.widths[c] {
				continue // no room left
			}
			if k := &r.keys[c]; k.wide != nil {
				placeRanks(ks, k.wide[lo:], p.drop, p.at)
			} else {
				placeRanks(ks, k.narrow[lo:], p.drop, p.at)
			}
		}
	}
	return keys
}

// placeRanks ors the ranks, cut by their last drop bits, into keys,
// shifted left by at bits.
func placeRanks[T uint16 | uint32](keys []sparkKey, ranks []T, drop, at int) {
	ranks = ranks[:len(keys)]
	// Shifts of 64 bits or more give 0: no branch per row.
	hiLeft, hiRight, loLeft := uint(128), uint(128), uint(at)
	if at >= 64 {
		hiLeft = uint(at - 64)
	} else {
		hiRight = uint(64 - at)
	}
	for i, r := range ranks {
		v := uint64(r) >> drop
		keys[i].hi |= v<<hiLeft | v>>hiRight
		keys[i].lo |= v << loLeft
	}
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
		ka, kb := o.runs[ra].keys, o.runs[rb].keys
		for c := range ka {
			if x := cmp.Compare(ka[c].id(int(rowA)), kb[c].id(int(rowB))); x != 0 {
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
// and returns out.
func (m *keyMerge) next(out []uint64) []uint64 {
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
		sorted[best] = s[j:]
	}
	return out
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
