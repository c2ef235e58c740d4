package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/shardprep/shardprep/features"
)

func TestPlanSplits(t *testing.T) {
	objs := []Object{
		{Name: "a.csv", Size: 250},
		{Name: "empty.csv", Size: 0},
		{Name: "b.csv.gz", Size: 1000},
		{Name: "c.csv", Size: 105}, // within the 10% slop: one split
		{Name: "d.csv", Size: 111}, // beyond it: two
		{Name: "e.csv", Size: 100},
	}
	got := planSplits(objs, 100)
	want := []Split{
		{0, 0, 0, 100}, {1, 0, 100, 100}, {2, 0, 200, 50},
		{3, 2, 0, 1000},
		{4, 3, 0, 105},
		{5, 4, 0, 100}, {6, 4, 100, 11},
		{7, 5, 0, 100},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if got := planSplits(objs, 0); len(got) != 5 || got[0] != (Split{0, 0, 0, 250}) {
		t.Errorf("splitSize 0: %v", got)
	}
	if got := planSplits(nil, 10); len(got) != 0 {
		t.Errorf("no objects: %v", got)
	}
}

// Splits cover each object exactly, in order, whatever the size.
func TestPlanSplitsCover(t *testing.T) {
	for size := int64(1); size < 300; size += 7 {
		for split := int64(1); split < 120; split += 5 {
			sp := planSplits([]Object{{Name: "x", Size: size}}, split)
			var off int64
			for i, s := range sp {
				if s.Index != i || s.Offset != off || s.Length <= 0 || float64(s.Length) > splitSlop*float64(split)+1 {
					t.Fatalf("size %d split %d: bad split %v in %v", size, split, s, sp)
				}
				off += s.Length
			}
			if off != size {
				t.Fatalf("size %d split %d: covers %d", size, split, off)
			}
		}
	}
}

// countSplits agrees with planSplits, and NewJob refuses a plan over
// maxSplits with the split size that would fit.
func TestCountSplits(t *testing.T) {
	for size := int64(1); size < 2000; size += 13 {
		for split := int64(1); split < 300; split += 3 {
			objs := []Object{{Name: "x", Size: size}, {Name: "y.gz", Size: size}, {Name: "z", Size: 0}}
			if n, want := countSplits(objs, split), int64(len(planSplits(objs, split))); n != want {
				t.Fatalf("size %d split %d: count %d, plan %d", size, split, n, want)
			}
		}
	}
	for _, c := range []struct{ size, split int64 }{{1 << 40, 1}, {1 << 40, 7 << 20}, {3 << 30, 64 << 10}, {(1 << 50) + 12345, 1 << 30}} {
		n := objectSplits(c.size, c.split)
		last := c.size - (n-1)*c.split
		if n < 1 || float64(last) > splitSlop*float64(c.split) || (n > 1 && float64(last+c.split) <= splitSlop*float64(c.split)) {
			t.Errorf("objectSplits(%d, %d) = %d: last split %d", c.size, c.split, n, last)
		}
	}
}

func TestNewJobBoundsSplits(t *testing.T) {
	spec, err := features.ParseSpec([]byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	objs := []Object{{URL: "a", Name: "a", Size: 20 << 30}, {URL: "b", Name: "b", Size: 3 << 20}}
	_, err = NewJob(spec, objs, &Settings{SplitSize: 64 << 10})
	var e *TooManySplitsError
	if !errors.As(err, &e) || e.Objects != 2 || e.Splits != countSplits(objs, 64<<10) || e.MinSplitSize != 210<<10 {
		t.Fatalf("20 GiB at 64 KiB: %v (%+v)", err, e)
	}
	if _, err := NewJob(spec, objs, &Settings{SplitSize: e.MinSplitSize}); err != nil {
		t.Errorf("at the suggested split size: %v", err)
	}
	if _, err := NewJob(spec, objs, &Settings{SplitSize: e.MinSplitSize - 1<<10}); err == nil {
		t.Errorf("below the suggested split size: no error")
	}
	many := make([]Object, maxSplits+1)
	for i := range many {
		many[i] = Object{URL: fmt.Sprint(i), Name: fmt.Sprint(i), Size: 10}
	}
	_, err = NewJob(spec, many, &Settings{SplitMode: SplitSpark})
	if !errors.As(err, &e) || e.MinSplitSize != 0 || !strings.Contains(err.Error(), "100001 objects") {
		t.Errorf("too many objects: %v", err)
	}
}

func TestSplitSizeFor(t *testing.T) {
	one := func(size int64) []Object { return []Object{{URL: "a", Name: "a", Size: size}} }
	for _, c := range []struct {
		objs  []Object
		slots int
		want  int64
	}{
		{one(107004887), 2, 26125 << 10}, // 2M generated rows: 4 splits
		{one(535025771), 2, 32 << 20},    // 10M rows: capped at 32 MiB
		{one(1 << 20), 2, 256 << 10},     // small: two splits a slot
		{one(1000), 2, 64 << 10},         // tiny: at least 64 KiB
		{one(107004887), 0, 32 << 20},    // no slots counts as one
		{one(4 << 40), 2, 42 << 20},      // huge: no more than maxSplits
		{[]Object{{Name: "a.gz", Size: 1 << 30}, {Name: "b", Size: 8 << 20}}, 1, 4 << 20}, // gzip is one split whatever the size
	} {
		got := SplitSizeFor(c.objs, c.slots)
		if got != c.want {
			t.Errorf("SplitSizeFor(%v, %d) = %d, want %d", c.objs, c.slots, got, c.want)
		}
		if n := countSplits(c.objs, got); n > maxSplits {
			t.Errorf("SplitSizeFor(%v, %d) makes %d splits", c.objs, c.slots, n)
		}
	}
	if n := countSplits(one(107004887), SplitSizeFor(one(107004887), 2)); n != 4 {
		t.Errorf("2M rows at 2 slots: %d splits, want 4", n)
	}
}

func TestPlanBalanced(t *testing.T) {
	const mib = 1 << 20
	objs := []Object{{Name: "a.csv", Size: 100 * mib}}
	var got []float64
	for _, s := range planBalanced(objs, SplitSizeFor(objs, 2), 2) {
		got = append(got, float64(s.Length)/mib)
	}
	// Two sample splits; rounds of two splits of half the bytes left over
	// the slots, capped at the split size (25 MiB); the last 11.5 MiB, at
	// most two rounds of 4 MiB, in two equal parts.
	want := []float64{4, 4, 23, 23, 11.5, 11.5, 5.75, 5.75, 5.75, 5.75}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("100 MiB at 2 slots: splits of %v MiB, want %v", got, want)
	}
	objs = []Object{
		{Name: "a.csv", Size: 10 * mib},
		{Name: "b.csv.gz", Size: 50 * mib},
		{Name: "empty.csv"},
		{Name: "c.csv", Size: 3 * mib},
	}
	// The gzip object is one split and does not count. After the sample
	// splits, 5 MiB are left, the last round's: the rest of a (2 MiB) and
	// c, within the slop.
	wantSplits := []Split{{0, 0, 0, 4 * mib}, {1, 0, 4 * mib, 4 * mib}, {2, 0, 8 * mib, 2 * mib},
		{3, 1, 0, 50 * mib}, {4, 3, 0, 3 * mib}}
	if got := planBalanced(objs, 8*mib, 1); fmt.Sprint(got) != fmt.Sprint(wantSplits) {
		t.Errorf("got  %v\nwant %v", got, wantSplits)
	}
}

// A balanced plan covers each object exactly, in order, with its first
// two splits at most sampleSplitSize and its last round small: slots that
// take its splits in order end close together even when one of them
// starts late (the first tasks of a process run slower), where with
// splits of equal size one of them may run alone through a whole split.
func TestPlanBalancedCoversAndBalances(t *testing.T) {
	const mib = 1 << 20
	for _, size := range []int64{1000, 300 << 10, 7 * mib, 107004887, 535025771, 5 << 30} {
		for slots := 1; slots <= 4; slots++ {
			objs := []Object{{Name: "x", Size: size}}
			split := SplitSizeFor(objs, slots)
			sp := planBalanced(objs, split, slots)
			var off int64
			for i, s := range sp {
				if s.Index != i || s.Offset != off || s.Length <= 0 || float64(s.Length) > splitSlop*float64(split)+1 ||
					i < 2 && s.Length > sampleSplitSize {
					t.Fatalf("size %d, %d slots: bad split %v in %v", size, slots, s, sp)
				}
				off += s.Length
			}
			if off != size {
				t.Fatalf("size %d, %d slots: covers %d", size, slots, off)
			}
			if slots == 1 || size < 16*tailSplitSize {
				continue
			}
			limit := int64(tailSplitSize) * 22 / 10 // a last round of two splits, with the slop
			for _, late := range []int64{0, split / 4, split / 2} {
				if spread := endSpread(sp, slots, late); spread > limit {
					t.Errorf("size %d, %d slots, one %d bytes late: the slots end %d bytes apart, more than %d", size, slots, late, spread, limit)
				}
			}
			if late := split / 2; slots == 2 && endSpread(planSplits(objs, split), slots, late) <= limit {
				t.Errorf("size %d, %d slots: equal splits end close together too: no test", size, slots)
			}
		}
	}
}

// endSpread is how far apart, in bytes, slots end that take the splits
// in order, each the next one as it ends, at the same time per byte, the
// first slot starting late bytes late.
func endSpread(splits []Split, slots int, late int64) int64 {
	ends := make([]int64, slots)
	ends[0] = late
	for _, s := range splits {
		first := 0
		for i := range ends {
			if ends[i] < ends[first] {
				first = i
			}
		}
		ends[first] += s.Length
	}
	return slices.Max(ends) - slices.Min(ends)
}

// NewJob plans balanced splits for slots in the hash mode only.
func TestNewJobBalancesForSlots(t *testing.T) {
	spec, err := features.ParseSpec([]byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	objs := []Object{{URL: "a", Name: "a.csv", Size: 100 << 20}}
	for _, c := range []struct {
		s    Settings
		want int
	}{
		{Settings{SplitSize: 25 << 20, Slots: 2}, 10},
		{Settings{SplitSize: 25 << 20}, 4},
		{Settings{SplitSize: 25 << 20, Slots: 2, SplitMode: SplitSpark}, 1},
	} {
		j, err := NewJob(spec, objs, &c.s)
		if err != nil {
			t.Fatal(err)
		}
		if len(j.Splits) != c.want {
			t.Errorf("%+v: %d splits, want %d", c.s, len(j.Splits), c.want)
		}
	}
}
