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
// sort order, nulls first.
type keyColumn struct {
	ids  []uint32
	nums numDict
	strs strDict
	str  bool
}

// add appends the ids of the values of arr, a column of a batch.
func (k *keyColumn) add(arr arrow.Array) {
	n := len(k.ids)
	k.ids = slices.Grow(k.ids, arr.Len())[:n+arr.Len()]
	ids := k.ids[n:]
	switch a := arr.(type) {
	case *array.String:
		for r := range ids {
			if !a.IsNull(r) {
				ids[r] = 1 + k.strs.id(a.Value(r))
			}
		}
	case *array.Float64:
		last, lastID := uint64(0), uint32(0)
		for r, v := range a.Float64Values() {
			if a.IsNull(r) {
				ids[r] = 0
				continue
			}
			if key := doubleKey(v); lastID == 0 || key != last {
				last, lastID = key, 1+k.nums.id(key)
			}
			ids[r] = lastID
		}
	default:
		panic("pipeline.keyColumn: column of type " + arr.DataType().String())
	}
}

// numDict numbers the distinct keys it is given, in order of arrival:
// an open-addressing hash table of ids.
type numDict struct {
	slots []numSlot
	shift uint
	vals  []uint64 // by id
}

// numSlot is a slot of a numDict: a key and 1 + its id, or 0 when free.
type numSlot struct {
	key uint64
	id  uint32
}

func (d *numDict) id(k uint64) uint32 {
	if d.slots == nil {
		d.slots, d.shift = make([]numSlot, 1<<10), 64-10
	}
	mask := len(d.slots) - 1
	for h := int((k * 0x9e3779b97f4a7c15) >> d.shift); ; h = (h + 1) & mask {
		s := &d.slots[h]
		if s.key == k && s.id != 0 {
			return s.id - 1
		}
		if s.id == 0 {
			id := uint32(len(d.vals))
			d.vals = append(d.vals, k)
			*s = numSlot{key: k, id: id + 1}
			if 2*len(d.vals) > len(d.slots) {
				d.grow()
			}
			return id
		}
	}
}

func (d *numDict) grow() {
	d.slots, d.shift = make([]numSlot, 2*len(d.slots)), d.shift-1
	mask := len(d.slots) - 1
	for id, k := range d.vals {
		h := int((k * 0x9e3779b97f4a7c15) >> d.shift)
		for d.slots[h].id != 0 {
			h = (h + 1) & mask
		}
		d.slots[h] = numSlot{key: k, id: uint32(id) + 1}
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
		for i, id := range k.ids {
			k.ids[i] = rank[id]
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
	room := 128 - o.rowBits
	for i := range keys {
		var hi, lo uint64
		used := 0
		for c, w := range o.widths {
			k := uint64(r.keys[c].ids[i])
			if used+w > room {
				k >>= w - (room - used)
				w = room - used
			}
			if w > 0 {
				hi, lo = hi<<w|lo>>(64-w), lo<<w|k
			}
			if used += w; used == room {
				break
			}
		}
		if s := room - used; s >= 64 {
			hi, lo = lo<<(s-64), 0
		} else if s > 0 {
			hi, lo = hi<<s|lo>>(64-s), lo<<s
		}
		if o.rowBits > 0 {
			hi, lo = hi<<o.rowBits|lo>>(64-o.rowBits), lo<<o.rowBits|uint64(i)
		}
		keys[i] = sparkKey{hi: hi, lo: lo}
	}
	return keys
}

// sort sorts the keys of run.
func (o *keyOrder) sort(keys []sparkKey, run int) {
	if o.exact {
		// The rows' indices end the keys: no two are equal.
		slices.SortFunc(keys, func(a, b sparkKey) int {
			if a.hi != b.hi {
				return cmp.Compare(a.hi, b.hi)
			}
			return cmp.Compare(a.lo, b.lo)
		})
		return
	}
	slices.SortFunc(keys, func(a, b sparkKey) int { return o.compare(a, b, run, run) })
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
			if x := cmp.Compare(ka[c].ids[rowA], kb[c].ids[rowB]); x != 0 {
				return x
			}
		}
	}
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	return cmp.Compare(rowA, rowB)
}

// merge merges the sorted keys of the runs into one order, of each row
// its run<<32 | its index in the run.
func (o *keyOrder) merge(sorted [][]sparkKey) []uint64 {
	n := 0
	for _, s := range sorted {
		n += len(s)
	}
	out := make([]uint64, 0, n)
	mask := uint64(1)<<o.rowBits - 1
	for {
		best := -1
		for i, s := range sorted {
			if len(s) > 0 && (best < 0 || o.compare(s[0], sorted[best][0], i, best) < 0) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		// Take the run's keys up to the next key of another run.
		s := sorted[best]
		j := 1
		for ; j < len(s) && o.before(s[j], sorted, best); j++ {
		}
		for _, k := range s[:j] {
			out = append(out, uint64(best)<<32|k.lo&mask)
		}
		sorted[best] = s[j:]
	}
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
