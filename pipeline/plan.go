package pipeline

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/shardprep/shardprep/features"
)

// SplitMode chooses how rows are drawn into train and validation.
type SplitMode string

const (
	// SplitHash draws each row from a hash of (seed, object name, line
	// offset): the output is the same for any worker count and split size.
	SplitHash SplitMode = "hash"
	// SplitSpark reproduces Spark's randomSplit(weights, seed) for inputs
	// Spark reads as one partition per object: rows are sorted by every
	// column and drawn with Spark's XORShiftRandom(seed + partition index).
	SplitSpark SplitMode = "spark"
)

// Policy says what happens to an invalid input row.
type Policy string

const (
	// PolicyError stops the job at the first invalid row.
	PolicyError Policy = "error"
	// PolicySkip leaves invalid rows out of train and validation, counts
	// them, and keeps them verbatim with their reason under _rejected/.
	PolicySkip Policy = "skip"
)

// checkChoice checks that v is one of the two values a and b of a
// setting.
func checkChoice[T ~string](what string, v, a, b T) error {
	if v == a || v == b {
		return nil
	}
	return fmt.Errorf("unknown %s %q (want %s or %s)", what, v, a, b)
}

// defaultSplitSize is the byte size of input splits when none is given.
const defaultSplitSize = 32 << 20

// Bounds of SplitSizeFor.
const (
	minAutoSplitSize = 64 << 10
	maxAutoSplitSize = defaultSplitSize
	splitsPerSlot    = 2
)

// SplitSizeFor returns a split size for objects processed slots splits at
// a time, for a job whose split size is not chosen by its user: about
// two splits per slot, rounded up to a whole KiB, at least 64 KiB and at
// most 32 MiB, and large enough for at most maxSplits splits. Compressed
// objects, which are never split, do not count. A job planned with
// Settings.Slots takes it as its largest split size: its first and last
// splits are smaller (planBalanced).
func SplitSizeFor(objects []Object, slots int) int64 {
	var total int64
	for _, o := range objects {
		if o.Size > 0 && !isCompressed(o) {
			total += o.Size
		}
	}
	size := total / int64(splitsPerSlot*max(slots, 1))
	size = (size + 1<<10 - 1) &^ (1<<10 - 1)
	size = min(max(size, minAutoSplitSize), maxAutoSplitSize)
	if n := countSplits(objects, size); n > maxSplits {
		if e := tooManySplits(objects, size, n); e.MinSplitSize > size {
			size = e.MinSplitSize
		}
	}
	return size
}

// defaultBatchRows is the number of rows per Arrow record batch when none
// is given.
const defaultBatchRows = 8192

// Settings are a job's knobs, as the user chose them.
type Settings struct {
	Name      string    `json:"name"`
	Output    string    `json:"output"`     // output root, as the user gave it
	SplitSize int64     `json:"split_size"` // default 32 MiB
	Seed      int64     `json:"seed"`
	SplitMode SplitMode `json:"split_mode"` // default SplitHash
	OnInvalid Policy    `json:"on_invalid"` // default PolicyError
	Header    bool      `json:"header"`
	BatchRows int       `json:"batch_rows"` // rows per Arrow record batch, default 8192
	// Slots, above 0, plans the splits of the hash mode for that many
	// tasks at a time, with SplitSize as the largest split size
	// (planBalanced): for a split size that its user did not choose. 0:
	// every split is SplitSize bytes.
	Slots int `json:"slots,omitempty"`
}

// Check checks the settings' split mode and policy, which NewJob defaults
// when empty.
func (s *Settings) Check() error {
	if err := checkChoice("split mode", s.SplitMode, SplitHash, SplitSpark); err != nil {
		return err
	}
	return checkChoice("invalid-row policy", s.OnInvalid, PolicyError, PolicySkip)
}

// Job is the plan of a job: everything a worker needs to run its tasks. It
// is fixed by NewJob and never changed afterwards; the model, fitted or
// given, travels beside it. It crosses the coordinator protocol as JSON,
// so it holds no credentials and no handles: each worker opens the
// objects and the output itself.
type Job struct {
	Settings
	// RunID is random per planned job: it tells this run of a job from any
	// other (a restarted coordinator plans a new one) on the protocol, in
	// staging names, the output claim and the manifest.
	RunID   string         `json:"run_id"`
	Version string         `json:"version"` // shardprep version that planned it
	Spec    *features.Spec `json:"spec"`
	Objects []Object       `json:"objects"`
	Splits  []Split        `json:"splits"`
}

// NewJob plans the splits of objects under settings s (nil: defaults) and
// returns the job.
func NewJob(spec *features.Spec, objects []Object, s *Settings) (*Job, error) {
	if spec == nil {
		return nil, errors.New("no pipeline spec")
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if _, err := features.ParseOutputFormat(spec.Output.Format); err != nil {
		return nil, fmt.Errorf("spec: output.format: %w", err)
	}
	if len(objects) == 0 {
		return nil, errors.New("no input objects")
	}
	j := &Job{RunID: newRunID(), Version: Version, Spec: spec, Objects: objects}
	if s != nil {
		j.Settings = *s
	}
	if j.SplitSize <= 0 {
		j.SplitSize = defaultSplitSize
	}
	if j.SplitMode == "" {
		j.SplitMode = SplitHash
	}
	if j.OnInvalid == "" {
		j.OnInvalid = PolicyError
	}
	if j.BatchRows <= 0 {
		j.BatchRows = defaultBatchRows
	}
	if err := j.Check(); err != nil {
		return nil, err
	}
	size := j.SplitSize
	if j.SplitMode == SplitSpark {
		// Spark reads a small object as one partition; the mode is defined
		// for that case, so each object is one split here.
		size = math.MaxInt64
	}
	if n := countSplits(objects, size); n > maxSplits {
		return nil, tooManySplits(objects, size, n)
	}
	j.Splits = planSplits(objects, size)
	if j.Slots > 0 && j.SplitMode == SplitHash {
		if b := planBalanced(objects, size, j.Slots); len(b) <= maxSplits {
			j.Splits = b
		}
	}
	if len(j.Splits) == 0 {
		var names []string
		for _, o := range objects {
			names = append(names, o.URL)
		}
		return nil, fmt.Errorf("input is empty: %s", strings.Join(names, ", "))
	}
	return j, nil
}

// Split is a byte range [Offset, Offset+Length) of one input object. A line
// whose first byte is at offset p belongs to the split with
// Offset < p <= Offset+Length (the split at offset 0 also takes p = 0).
type Split struct {
	Index  int   `json:"index"`  // position in input order; names the part files
	Object int   `json:"object"` // index into the job's objects
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// maxSplits bounds the splits of one job (TooManySplitsError.Max). The
// coordinator keeps state per split and per object and sends every worker
// the whole plan when it joins (about 50 bytes a split): at this bound
// `shardprep run` over 100,000 one-row objects peaks near 300 MB and a
// join sends about 5 MB.
const maxSplits = 100_000

// TooManySplitsError is NewJob's error for an input that would make more
// splits than a job may have.
type TooManySplitsError struct {
	Max       int64 // the most splits a job may have
	Splits    int64 // splits the plan would have
	Objects   int   // non-empty input objects
	Bytes     int64 // their size
	SplitSize int64 // the split size asked for
	// MinSplitSize is the smallest split size (rounded up to whole KiB
	// or MiB) that makes at most Max splits; 0 when the objects
	// alone are more than maxSplits, since each is at least one split.
	MinSplitSize int64
}

func (e *TooManySplitsError) Error() string {
	if e.MinSplitSize == 0 {
		return fmt.Sprintf("the input has %d objects, more than the %d splits a job may have (each object is at least one split): run several jobs over parts of it",
			e.Objects, maxSplits)
	}
	return fmt.Sprintf("the input (%d objects, %d bytes) would make %d splits of %d bytes, more than the %d a job may have: use a split size of at least %d bytes",
		e.Objects, e.Bytes, e.Splits, e.SplitSize, maxSplits, e.MinSplitSize)
}

// tooManySplits describes objects, which make n splits of splitSize.
func tooManySplits(objects []Object, splitSize, n int64) *TooManySplitsError {
	e := &TooManySplitsError{Max: maxSplits, Splits: n, SplitSize: splitSize}
	for _, o := range objects {
		if o.Size > 0 {
			e.Objects++
			e.Bytes += o.Size
		}
	}
	if e.Objects > maxSplits {
		return e
	}
	// Grow a size rounded up to a whole unit until the plan fits.
	unit := int64(1 << 10)
	if e.Bytes/maxSplits >= 1<<20 {
		unit = 1 << 20
	}
	size := (e.Bytes/maxSplits + unit) / unit * unit
	for countSplits(objects, size) > maxSplits {
		size += unit
	}
	e.MinSplitSize = size
	return e
}

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
	splits := make([]Split, 0, countSplits(objects, splitSize))
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

// Split sizes of planBalanced.
const (
	// sampleSplitSize bounds the first two splits: the fit of a job that
	// fits on a sample reads them (sampleSize) before the transform of
	// any split starts.
	sampleSplitSize = 4 << 20
	// tailSplitSize is the least size the last splits shrink to.
	tailSplitSize = 4 << 20
)

// planBalanced cuts objects into splits for slots tasks taking the splits
// in order, each the next one as it ends, so that they start the
// transform soon and end it together. It is planSplits with sizes that
// vary, up to size:
//
//   - the first two splits are at most sampleSplitSize;
//   - then, in rounds of slots splits of one size, each split takes half
//     the bytes left over the slots, at most size: the splits halve
//     towards the end;
//   - once what is left is at most two rounds of tailSplitSize (or of
//     size if smaller), the last round shares it out equally (at most
//     size and at least 64 KiB a split). When the last split starts, the
//     other slots are each at most one such split from their end, not a
//     large one.
//
// A split never crosses objects: an object's last split takes its rest
// when that is at most splitSlop times the size due. A compressed object
// is one split, and its bytes do not count.
func planBalanced(objects []Object, size int64, slots int) []Split {
	slots = max(slots, 1)
	var left int64
	for _, o := range objects {
		if o.Size > 0 && !isCompressed(o) {
			left += o.Size
		}
	}
	floor := min(size, tailSplitSize)
	splits := make([]Split, 0, countSplits(objects, size)+int64(2*slots))
	cut, chunk := 0, size // splits cut so far from splittable objects; the size due
	for i, o := range objects {
		if o.Size <= 0 {
			continue
		}
		if isCompressed(o) {
			splits = append(splits, Split{Index: len(splits), Object: i, Length: o.Size})
			continue
		}
		for off := int64(0); off < o.Size; cut++ {
			switch {
			case cut < 2:
				chunk = min(size, sampleSplitSize)
			case (cut-2)%slots == 0 && left <= int64(2*slots)*floor:
				// The last round: what is left, in equal parts.
				chunk = min(max((left+int64(slots)-1)/int64(slots), minAutoSplitSize), size)
			case (cut-2)%slots == 0:
				chunk = min(left/int64(2*slots), size)
			}
			n := chunk
			if rest := o.Size - off; float64(rest)/float64(n) <= splitSlop {
				n = rest
			}
			splits = append(splits, Split{Index: len(splits), Object: i, Offset: off, Length: n})
			off += n
			left -= n
		}
	}
	return splits
}

// countSplits returns how many splits planSplits makes of objects,
// without making them.
func countSplits(objects []Object, splitSize int64) int64 {
	var n int64
	for _, o := range objects {
		switch {
		case o.Size <= 0:
		case splitSize <= 0 || strings.HasSuffix(o.Name, ".gz"):
			n++
		default:
			n += objectSplits(o.Size, splitSize)
		}
	}
	return n
}

// objectSplits returns how many splits of splitSize (> 0) planSplits cuts
// an object of size (> 0) into: the k full splits it takes while the rest
// is over splitSlop splits, and the rest.
func objectSplits(size, splitSize int64) int64 {
	over := func(k int64) bool { return float64(size-k*splitSize)/float64(splitSize) > splitSlop }
	k := max(int64(math.Ceil(float64(size)/float64(splitSize)-splitSlop)), 0)
	for k > 0 && !over(k-1) { // float rounding: step to the first k not over
		k--
	}
	for over(k) {
		k++
	}
	return k + 1
}

// newRunID returns 16 random bytes in hex.
func newRunID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
