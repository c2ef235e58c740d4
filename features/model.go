package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
)

// ModelVersion is the version written in Model JSON.
const ModelVersion = 1

// Names of the columns of a transformed record.
const (
	LabelField    = "label"
	FeaturesField = "features"
)

// Model is a fitted pipeline: for each categorical column its labels in
// index order (label i has StringIndexer index i) with the counts they were
// fitted from, plus the label and numeric column names. It is immutable and
// safe for concurrent use. Its JSON form (MarshalJSON, ReadModel) is
//
//	{"version":1,"label":"rings","numeric":["length",...],"rows":4177,
//	 "categorical":[{"column":"sex","labels":[{"label":"M","count":1528},...]}]}
//
// with labels in index order; a label that is not valid UTF-8 is written as
// "label_base64" (standard base64 of its bytes) instead of "label".
type Model struct {
	label   string
	numeric []string
	rows    int64
	cats    []catModel
	width   int
	schema  *arrow.Schema
	pipe    *pipe // a spec with stages; nil for the flat form
	spec    *Spec // the flat form's spec, when known
}

type catModel struct {
	column string
	labels []string
	counts []int64
	index  map[string]int
}

func newModel(label string, numeric []string, rows int64, cols []fitColumn) (*Model, error) {
	m := &Model{label: label, numeric: slices.Clone(nonNil(numeric)), rows: rows, cats: make([]catModel, len(cols))}
	for i, fc := range cols {
		if len(fc.labels) == 0 {
			return nil, fmt.Errorf("model: column %q has no labels", fc.name)
		}
		idx := make(map[string]int, len(fc.labels))
		for j, l := range fc.labels {
			idx[l] = j
		}
		m.cats[i] = catModel{column: fc.name, labels: fc.labels, counts: fc.counts, index: idx}
		m.width += len(fc.labels) - 1
	}
	m.width += len(m.numeric)
	if m.width == 0 {
		return nil, errors.New("model: the feature vector would be empty (every categorical column has a single label and there are no numeric columns)")
	}
	if m.width > math.MaxInt32 {
		return nil, fmt.Errorf("model: feature vector of %d slots is too long", m.width)
	}
	m.schema = arrow.NewSchema([]arrow.Field{
		{Name: LabelField, Type: arrow.PrimitiveTypes.Float64},
		{Name: FeaturesField, Type: arrow.FixedSizeListOfNonNullable(int32(m.width), arrow.PrimitiveTypes.Float64)},
	}, nil)
	return m, nil
}

// ReadModel decodes and validates a model written by MarshalJSON: strict
// JSON (unknown fields are errors), the current version, a non-empty label
// column, distinct column names, for each categorical column at least one
// label, no label twice and no negative count, and a feature vector of at
// least one slot.
func ReadModel(data []byte) (*Model, error) {
	m := new(Model)
	if err := m.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return m, nil
}

// MarshalJSON encodes the model (see Model). ReadModel of the result gives
// an equal model, which encodes to the same bytes.
func (m *Model) MarshalJSON() ([]byte, error) {
	if m != nil && m.pipe != nil {
		return m.pipe.marshal()
	}
	if m == nil || m.schema == nil {
		return nil, errors.New("model: not initialised")
	}
	w := wireFit{Version: ModelVersion, Label: m.label, Numeric: m.numeric, Rows: m.rows, Categorical: make([]wireColumn, len(m.cats)), Spec: m.spec}
	for i, c := range m.cats {
		w.Categorical[i] = wireColumnOf(c.column, c.labels, c.counts)
	}
	return json.Marshal(w)
}

// UnmarshalJSON replaces m with the decoded, validated model (see ReadModel).
// A Model must not be unmarshalled into while it is in use.
func (m *Model) UnmarshalJSON(data []byte) error {
	if hasStages(data) {
		p, err := unmarshalPipe(data)
		if err != nil {
			return err
		}
		n, err := modelOfPipe(p)
		if err != nil {
			return err
		}
		*m = *n
		return nil
	}
	w, cols, err := decodeFit(data, "model", ModelVersion, 0)
	if err != nil {
		return err
	}
	n, err := newModel(w.Label, w.Numeric, w.Rows, cols)
	if err != nil {
		return err
	}
	if w.Spec != nil {
		if err := w.Spec.Validate(); err != nil {
			return fmt.Errorf("model: %w", err)
		}
		if err := n.Check(w.Spec); err != nil {
			return fmt.Errorf("model: its spec: %w", err)
		}
		n.spec = w.Spec
	}
	*m = *n
	return nil
}

// Version is the model format version (ModelVersion, or
// stagesModelVersion for a spec with stages).
func (m *Model) Version() int {
	if m.pipe != nil {
		return stagesModelVersion
	}
	return ModelVersion
}

// Spec is the spec the model was fitted for, which its JSON carries; nil
// for a model written without one.
func (m *Model) Spec() *Spec {
	if m.pipe == nil {
		return m.spec
	}
	return m.pipe.spec
}

// Passes returns the fit passes the model's spec needs and those done:
// a model with done < total is partial, and NextStats gives the
// statistics of its next pass. The flat form needs one.
func (m *Model) Passes() (total, done int) {
	if m.pipe == nil {
		return 1, 1
	}
	return m.pipe.g.passes, m.pipe.passes
}

// NextStats returns empty statistics for the next fit pass of a partial
// model (see Passes), nil when the model is complete.
func (m *Model) NextStats() *Stats {
	if m.pipe == nil || m.pipe.passes >= m.pipe.g.passes {
		return nil
	}
	return &Stats{label: m.label, gen: newStageStats(m.pipe, m.pipe.passes+1)}
}

// LabelColumn is the name of the label column.
func (m *Model) LabelColumn() string { return m.label }

// NumericColumns are the numeric feature columns, in vector order.
func (m *Model) NumericColumns() []string { return slices.Clone(m.numeric) }

// CategoricalColumns are the categorical columns, in vector order (for
// a spec with stages: the input columns of its StringIndexers).
func (m *Model) CategoricalColumns() []string {
	if p := m.pipe; p != nil {
		var names []string
		for i, d := range p.g.stages {
			if d.class == "StringIndexer" && p.fits[i] != nil {
				names = append(names, d.in...)
			}
		}
		return names
	}
	names := make([]string, len(m.cats))
	for i, c := range m.cats {
		names[i] = c.column
	}
	return names
}

// Labels returns the labels of a categorical column in index order and the
// counts they were fitted from, or nil, nil if the model has no such
// column. The slices are copies.
func (m *Model) Labels(column string) (labels []string, counts []int64) {
	if p := m.pipe; p != nil {
		for i, d := range p.g.stages {
			if j := slices.Index(d.in, column); d.class == "StringIndexer" && j >= 0 && p.fits[i] != nil {
				return slices.Clone(p.fits[i].labels[j]), slices.Clone(p.fits[i].counts[j])
			}
		}
		return nil, nil
	}
	for _, c := range m.cats {
		if c.column == column {
			return slices.Clone(c.labels), slices.Clone(c.counts)
		}
	}
	return nil, nil
}

// SlotNames names the slots of the feature vector, in vector order, by
// Spark's attribute rule: a one-hot slot is "<vectorCol>_<label>" and a
// scalar slot is its column's name. The flat form means
// StringIndexer(c -> c_idx), OneHotEncoder(c_idx -> c_vec) and a
// VectorAssembler, so its one-hot slots are "<c>_vec_<label>" (labels in
// index order, the last dropped), followed by the numeric columns.
func (m *Model) SlotNames() []string {
	if m.pipe != nil {
		return m.pipe.featureNames()
	}
	names := make([]string, 0, m.width)
	for _, c := range m.cats {
		for _, l := range c.labels[:len(c.labels)-1] {
			names = append(names, c.column+"_vec_"+l)
		}
	}
	return append(names, m.numeric...)
}

// Rows is the number of rows the model was fitted on.
func (m *Model) Rows() int64 { return m.rows }

// Width is the length of the feature vector: the sum over categorical
// columns of their label count minus one, plus the number of numeric
// columns.
func (m *Model) Width() int { return m.width }

// OutputSchema is the schema of the records Transform returns:
// "label" float64 and "features" fixed_size_list<float64>[Width()].
func (m *Model) OutputSchema() *arrow.Schema { return m.schema }

// Check reports whether the model fits spec: the same categorical columns,
// numeric columns (both in the same order) and label column. The error
// says what differs.
func (m *Model) Check(spec *Spec) error {
	if m == nil || m.schema == nil {
		return errors.New("model: not initialised")
	}
	if m.pipe != nil || spec.HasStages() {
		return m.checkStages(spec)
	}
	if cats := m.CategoricalColumns(); !slices.Equal(cats, spec.Categorical) {
		return fmt.Errorf("model does not fit the spec: model categorical columns [%s], spec categorical [%s]", quoted(cats), quoted(spec.Categorical))
	}
	if !slices.Equal(m.numeric, spec.Numeric) {
		return fmt.Errorf("model does not fit the spec: model numeric columns [%s], spec numeric [%s]", quoted(m.numeric), quoted(spec.Numeric))
	}
	if m.label != spec.Label {
		return fmt.Errorf("model does not fit the spec: model label column %q, spec label %q", m.label, spec.Label)
	}
	return nil
}

func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// checkStages checks that a model and a spec, one of them with stages,
// are of the same pipeline: the same columns, stages, label and features.
func (m *Model) checkStages(spec *Spec) error {
	if m.pipe == nil || !spec.HasStages() {
		return errors.New("model does not fit the spec: one is of a spec with stages, the other of the categorical/numeric form")
	}
	ms := m.pipe.spec
	if !slices.Equal(ms.Columns, spec.Columns) {
		return fmt.Errorf("model does not fit the spec: model columns %s, spec columns %s", columnList(ms.Columns), columnList(spec.Columns))
	}
	a, _ := json.Marshal(ms.Stages)
	b, _ := json.Marshal(spec.Stages)
	if string(a) != string(b) {
		return fmt.Errorf("model does not fit the spec: its stages differ: model %s, spec %s", a, b)
	}
	if ms.Label != spec.Label || m.pipe.g.feats != cmpOr(spec.Features, FeaturesField) {
		return fmt.Errorf("model does not fit the spec: model label %q and features %q, spec %q and %q", ms.Label, m.pipe.g.feats, spec.Label, spec.Features)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func columnList(cols []Column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.Name + " " + string(c.Type)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
