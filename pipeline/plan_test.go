package pipeline

import (
	"errors"
	"fmt"
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
		{one(107004887), 2, 13063 << 10}, // 2M generated rows: 8 splits
		{one(535025771), 2, 32 << 20},    // 10M rows: capped at 32 MiB
		{one(1 << 20), 2, 128 << 10},     // small: four splits a slot
		{one(1000), 2, 64 << 10},         // tiny: at least 64 KiB
		{one(107004887), 0, 26125 << 10}, // no slots counts as one
		{one(4 << 40), 2, 42 << 20},      // huge: no more than maxSplits
		{[]Object{{Name: "a.gz", Size: 1 << 30}, {Name: "b", Size: 8 << 20}}, 1, 2 << 20}, // gzip is one split whatever the size
	} {
		got := SplitSizeFor(c.objs, c.slots)
		if got != c.want {
			t.Errorf("SplitSizeFor(%v, %d) = %d, want %d", c.objs, c.slots, got, c.want)
		}
		if n := countSplits(c.objs, got); n > maxSplits {
			t.Errorf("SplitSizeFor(%v, %d) makes %d splits", c.objs, c.slots, n)
		}
	}
	if n := countSplits(one(107004887), SplitSizeFor(one(107004887), 2)); n != 8 {
		t.Errorf("2M rows at 2 slots: %d splits, want 8", n)
	}
}
