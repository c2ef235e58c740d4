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

// ParseSplitMode validates a --split-mode value.
func ParseSplitMode(s string) (SplitMode, error) {
	return parseChoice("split mode", s, SplitHash, SplitSpark)
}

// Policy says what happens to an invalid input row.
type Policy string

const (
	// PolicyError stops the job at the first invalid row.
	PolicyError Policy = "error"
	// PolicySkip leaves invalid rows out of train and validation, counts
	// them, and keeps them verbatim with their reason under _rejected/.
	PolicySkip Policy = "skip"
)

// ParsePolicy validates an --on-invalid value.
func ParsePolicy(s string) (Policy, error) {
	return parseChoice("invalid-row policy", s, PolicyError, PolicySkip)
}

// parseChoice returns s as one of the two values a and b of a setting.
func parseChoice[T ~string](what, s string, a, b T) (T, error) {
	if v := T(s); v == a || v == b {
		return v, nil
	}
	return "", fmt.Errorf("unknown %s %q (want %s or %s)", what, s, a, b)
}

// defaultSplitSize is the byte size of input splits when none is given.
const defaultSplitSize = 32 << 20

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
	size := j.SplitSize
	if j.SplitMode == SplitSpark {
		// Spark reads a small object as one partition; the mode is defined
		// for that case, so each object is one split here.
		size = math.MaxInt64
	}
	j.Splits = planSplits(objects, size)
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

// newRunID returns 16 random bytes in hex.
func newRunID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
