package pipeline

import "strings"

// splitSlop lets the last split of an object be up to 10% longer than the
// split size rather than leaving a small tail split (Hadoop's SPLIT_SLOP).
const splitSlop = 1.1

// planSplits cuts objects into byte-range splits of about splitSize bytes,
// in input order (object order, then offset); Split.Index is the split's
// position in the returned slice and Split.Object the object's index.
//
// Splits of one object are contiguous and cover it exactly: each is
// splitSize bytes except the last, which takes the rest (up to 1.1 *
// splitSize, as Hadoop does). An object of size 0 gets no split. An object
// whose Name ends in ".gz" is not splittable and gets exactly one split
// covering its stored size. splitSize <= 0 means one split per object.
func planSplits(objects []Object, splitSize int64) []Split {
	var splits []Split
	add := func(obj int, off, n int64) {
		splits = append(splits, Split{Index: len(splits), Object: obj, Offset: off, Length: n})
	}
	for i, o := range objects {
		if o.Size <= 0 {
			continue
		}
		if splitSize <= 0 || strings.HasSuffix(o.Name, ".gz") {
			add(i, 0, o.Size)
			continue
		}
		off, rem := int64(0), o.Size
		for float64(rem)/float64(splitSize) > splitSlop {
			add(i, off, splitSize)
			off += splitSize
			rem -= splitSize
		}
		add(i, off, rem)
	}
	return splits
}
