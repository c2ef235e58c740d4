package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
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

// ParseSplitMode and ParsePolicy validate flag values.
func ParseSplitMode(s string) (SplitMode, error) {
	switch m := SplitMode(s); m {
	case SplitHash, SplitSpark:
		return m, nil
	}
	return "", fmt.Errorf("unknown split mode %q (want hash or spark)", s)
}

// ParsePolicy validates an --on-invalid value.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyError, PolicySkip:
		return p, nil
	}
	return "", fmt.Errorf("unknown invalid-row policy %q (want error or skip)", s)
}

// DefaultSplitSize is the byte size of input splits when none is given.
const DefaultSplitSize = 32 << 20

// Job is everything a worker needs to run a job's tasks. It crosses the
// coordinator protocol as JSON, so it holds no credentials and no handles:
// each worker opens the objects and the output itself.
type Job struct {
	Name      string          `json:"name"`
	Version   string          `json:"version"` // shardprep version that planned it
	Spec      *features.Spec  `json:"spec"`
	Model     *features.Model `json:"model,omitempty"` // given (--model) or fitted
	Objects   []Object        `json:"objects"`
	Splits    []Split         `json:"splits"`
	SplitSize int64           `json:"split_size"`
	Output    string          `json:"output"` // output root, as the user gave it
	Seed      int64           `json:"seed"`
	SplitMode SplitMode       `json:"split_mode"`
	OnInvalid Policy          `json:"on_invalid"`
	Header    bool            `json:"header"`
	BatchRows int             `json:"batch_rows"`
	// FirstLines[i] is the 1-based number of the first line that can
	// belong to split i, when known (from the fit pass); 0 means unknown.
	FirstLines []int64 `json:"first_lines,omitempty"`
}

// JobOptions are the knobs of NewJob; nil means defaults.
type JobOptions struct {
	Name      string
	Version   string
	Output    string
	Model     *features.Model // reuse instead of fitting
	SplitSize int64           // default DefaultSplitSize
	Seed      int64
	SplitMode SplitMode // default SplitHash
	OnInvalid Policy    // default PolicyError
	Header    bool
	BatchRows int // rows per Arrow record batch, default 8192
}

// NewJob plans the splits of objects and returns the job description.
func NewJob(spec *features.Spec, objects []Object, opts *JobOptions) (*Job, error) {
	if opts == nil {
		opts = &JobOptions{}
	}
	if spec == nil {
		return nil, errors.New("no pipeline spec")
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(objects) == 0 {
		return nil, errors.New("no input objects")
	}
	if opts.Model != nil {
		if err := opts.Model.Check(spec); err != nil {
			return nil, fmt.Errorf("model does not fit the spec: %w", err)
		}
	}
	j := &Job{
		Name:      opts.Name,
		Version:   opts.Version,
		Spec:      spec,
		Model:     opts.Model,
		Objects:   objects,
		SplitSize: opts.SplitSize,
		Output:    opts.Output,
		Seed:      opts.Seed,
		SplitMode: opts.SplitMode,
		OnInvalid: opts.OnInvalid,
		Header:    opts.Header,
		BatchRows: opts.BatchRows,
	}
	if j.SplitSize <= 0 {
		j.SplitSize = DefaultSplitSize
	}
	if j.SplitMode == "" {
		j.SplitMode = SplitHash
	}
	if j.OnInvalid == "" {
		j.OnInvalid = PolicyError
	}
	if j.BatchRows <= 0 {
		j.BatchRows = 8192
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

// PartKey is the key of split i's part under the named output folder.
func PartKey(folder string, split int) string {
	return fmt.Sprintf("%s/part-%05d", folder, split)
}

// RejectedFolder holds the rejected rows of the skip policy.
const RejectedFolder = "_rejected"

// Keys of the job's metadata under the output root.
const (
	ModelKey    = "_shardprep/model.json"
	ManifestKey = "_shardprep/manifest.json"
	SuccessName = "_SUCCESS"
)

// ParseError reports an invalid input row and where it is.
type ParseError struct {
	Object string // URL of the object
	Line   int64  // 1-based line number; 0 if unknown
	Offset int64  // byte offset of the line's first byte
	Column string // column name; empty for whole-line problems
	Value  string // the offending text, shortened for display
	Reason string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.Object)
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
	} else {
		fmt.Fprintf(&b, ": line at byte %d", e.Offset)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ", column %q", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Value != "" || e.Column != "" {
		fmt.Fprintf(&b, ": %q", e.Value)
	}
	return b.String()
}

// IsDataError reports whether err is one that a retry on another worker
// cannot mend: invalid input data, or storage refusing access.
func IsDataError(err error) bool {
	var pe *ParseError
	return errors.As(err, &pe) || errors.Is(err, fs.ErrPermission)
}
