package pipeline

import (
	"fmt"
	"testing"
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
