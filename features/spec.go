package features

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
)

// ColumnType is the type of one input column: ColumnString or ColumnDouble.
type ColumnType string

// The column types a Spec may declare.
const (
	ColumnString ColumnType = "string" // Arrow utf8 (arrow.BinaryTypes.String)
	ColumnDouble ColumnType = "double" // Arrow float64 (arrow.PrimitiveTypes.Float64)
)

// Column is one input CSV column.
type Column struct {
	Name string     `json:"name"`
	Type ColumnType `json:"type"`
}

// Split is one output split: rows are assigned to splits in proportion to
// their weights, and each split is written under a folder named Name.
type Split struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
}

// Spec is the declarative pipeline, usually read from JSON with ParseSpec:
//
//	{"columns": [{"name": "sex", "type": "string"}, {"name": "rings", "type": "double"}, ...],
//	 "categorical": ["sex"], "numeric": [...], "label": "rings",
//	 "splits": [{"name": "train", "weight": 0.8}, {"name": "validation", "weight": 0.2}]}
//
// Categorical columns are string-indexed (by descending frequency) and
// one-hot encoded with the last index dropped; their slots come first in the
// feature vector, in the order listed, followed by the numeric columns in
// the order listed. The label column is printed first on each output line.
type Spec struct {
	Columns     []Column `json:"columns"`     // input CSV columns, in file order
	Categorical []string `json:"categorical"` // string columns: StringIndexer + OneHotEncoder(dropLast)
	Numeric     []string `json:"numeric"`     // double columns appended after the one-hot slots
	Label       string   `json:"label"`       // double column printed first on each output line
	Splits      []Split  `json:"splits"`      // e.g. train 0.8, validation 0.2
	// Header says that the first non-blank line of each object names the
	// columns (checked against Columns).
	Header bool `json:"header,omitempty"`
	// Stages are Spark ML stages, in order (instead of Categorical and
	// Numeric); Features names the column of the feature vector, made by
	// one of them (default "features").
	Stages   []Stage `json:"stages,omitempty"`
	Features string  `json:"features,omitempty"`
	// Output says how the parts are written.
	Output OutputSpec `json:"output,omitzero"`
}

// OutputSpec is the spec's "output" object: {"format": "csv"}. An empty
// Format means the text lines.
type OutputSpec struct {
	Format string `json:"format,omitempty"`
}

// ReservedPrefix starts names that a Spec may not give its columns: the
// pipeline uses such names for columns of its own (a row's byte offset, for
// instance) next to the spec's columns in one record.
const ReservedPrefix = "__"

// ParseSpec decodes a JSON spec strictly (unknown fields, trailing data and
// type mismatches are errors) and validates it.
func ParseSpec(data []byte) (*Spec, error) {
	var s Spec
	if err := decodeStrict(data, &s); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// decodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields and anything after the value.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// Validate checks the spec and returns an error naming the first bad field:
// column names are non-empty, unique and do not start with ReservedPrefix;
// types are "string" or "double"; categorical columns are distinct string
// columns; numeric columns are distinct double columns; the label is a
// double column that is not also a numeric feature; there is at least one
// feature column; at least one split; split names unique, made of
// [a-z0-9_-] only and not starting with '_' (Hadoop and Spark readers hide
// such folders, and _rejected and _shardprep are shardprep's own); weights
// finite and > 0.
func (s *Spec) Validate() error {
	if s == nil {
		return errors.New("spec: nil")
	}
	types, err := s.columnTypes()
	if err != nil {
		return err
	}
	if len(s.Stages) > 0 {
		if len(s.Categorical)+len(s.Numeric) > 0 {
			return errors.New("spec: stages and categorical/numeric are two forms of the pipeline: use one")
		}
		if _, err := buildGraph(s); err != nil {
			return err
		}
		return s.checkSplits()
	}
	if s.Features != "" {
		return errors.New("spec: features names the output of a stage: it needs stages")
	}
	if err := s.checkFeatures(types); err != nil {
		return err
	}
	return s.checkSplits()
}

// columnTypes checks Columns and returns each column's type by name.
func (s *Spec) columnTypes() (map[string]ColumnType, error) {
	if len(s.Columns) == 0 {
		return nil, errors.New("spec: columns: at least one column is required")
	}
	types := make(map[string]ColumnType, len(s.Columns))
	for i, c := range s.Columns {
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("spec: columns[%d].name is empty", i)
		case strings.HasPrefix(c.Name, ReservedPrefix):
			return nil, fmt.Errorf("spec: columns[%d].name %q: names starting with %q are reserved", i, c.Name, ReservedPrefix)
		case c.Type != ColumnString && c.Type != ColumnDouble:
			return nil, fmt.Errorf("spec: columns[%d].type %q for column %q: want %q or %q", i, c.Type, c.Name, ColumnString, ColumnDouble)
		}
		if _, dup := types[c.Name]; dup {
			return nil, fmt.Errorf("spec: columns[%d].name %q is declared twice", i, c.Name)
		}
		types[c.Name] = c.Type
	}
	return types, nil
}

// checkFeatures checks Categorical, Numeric and Label against the declared
// column types.
func (s *Spec) checkFeatures(types map[string]ColumnType) error {
	used := make(map[string]string)
	if err := checkFeatureList("categorical", s.Categorical, ColumnString, types, used); err != nil {
		return err
	}
	if err := checkFeatureList("numeric", s.Numeric, ColumnDouble, types, used); err != nil {
		return err
	}
	if s.Label == "" {
		return errors.New("spec: label is empty")
	}
	if err := checkColumn(types, "label", s.Label, ColumnDouble); err != nil {
		return err
	}
	if _, dup := used[s.Label]; dup {
		return fmt.Errorf("spec: label %q is also a feature column (numeric)", s.Label)
	}
	if len(s.Categorical)+len(s.Numeric) == 0 {
		return errors.New("spec: categorical and numeric are both empty: at least one feature column is required")
	}
	return nil
}

// checkFeatureList checks that the columns listed in field are declared
// with type want and not listed before; used maps each listed column to
// the field that lists it.
func checkFeatureList(field string, names []string, want ColumnType, types map[string]ColumnType, used map[string]string) error {
	for i, name := range names {
		ref := fmt.Sprintf("%s[%d]", field, i)
		if err := checkColumn(types, ref, name, want); err != nil {
			return err
		}
		if prev, dup := used[name]; dup {
			return fmt.Errorf("spec: %s %q is already listed in %s", ref, name, prev)
		}
		used[name] = field
	}
	return nil
}

// checkColumn checks that the column name, given in the field ref, is
// declared with type want.
func checkColumn(types map[string]ColumnType, ref, name string, want ColumnType) error {
	t, ok := types[name]
	if !ok {
		return fmt.Errorf("spec: %s %q is not a declared column", ref, name)
	}
	if t != want {
		return fmt.Errorf("spec: %s %q is a %s column, want %s", ref, name, t, want)
	}
	return nil
}

// checkSplits checks the split names and weights.
func (s *Spec) checkSplits() error {
	if len(s.Splits) == 0 {
		return errors.New("spec: splits: at least one split is required")
	}
	names := make(map[string]bool, len(s.Splits))
	var sum float64
	for i, sp := range s.Splits {
		if hiddenName(sp.Name) {
			return fmt.Errorf("spec: splits[%d].name %q: split names may not start with '_' or '.' (Hadoop and Spark readers skip such folders; _rejected and _shardprep are shardprep's own)", i, sp.Name)
		}
		if !validSplitName(sp.Name) {
			return fmt.Errorf("spec: splits[%d].name %q: want a non-empty folder name of a-z, 0-9, '_' and '-'", i, sp.Name)
		}
		if names[sp.Name] {
			return fmt.Errorf("spec: splits[%d].name %q is used twice", i, sp.Name)
		}
		names[sp.Name] = true
		if !(sp.Weight > 0) || math.IsInf(sp.Weight, 0) {
			return fmt.Errorf("spec: splits[%d].weight %v for split %q: want a finite number > 0", i, sp.Weight, sp.Name)
		}
		sum += sp.Weight
	}
	if math.IsInf(sum, 0) {
		return errors.New("spec: splits: the weights' sum overflows")
	}
	return nil
}

// hiddenName reports whether name starts with '_' or '.': Hadoop and Spark
// readers skip such folders, and shardprep's own (_rejected, _shardprep)
// are named so.
func hiddenName(name string) bool {
	return strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".")
}

func validSplitName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (t ColumnType) arrowType() arrow.DataType {
	if t == ColumnString {
		return arrow.BinaryTypes.String
	}
	return arrow.PrimitiveTypes.Float64
}

// Schema is the Arrow schema of a decoded input batch: one nullable field
// per column in file order, string columns as arrow.BinaryTypes.String and
// double columns as arrow.PrimitiveTypes.Float64.
func (s *Spec) Schema() *arrow.Schema {
	fields := make([]arrow.Field, len(s.Columns))
	for i, c := range s.Columns {
		fields[i] = arrow.Field{Name: c.Name, Type: c.Type.arrowType(), Nullable: true}
	}
	return arrow.NewSchema(fields, nil)
}

// HasStages reports whether the spec lists stages (rather than the flat
// categorical and numeric form).
func (s *Spec) HasStages() bool { return len(s.Stages) > 0 }

// FitPasses is the number of fit passes over the input the spec needs:
// one for the flat form; for stages, the depth of the chain of stages
// whose fit needs an earlier stage fitted (a scaler after an imputer, a
// stage after one that drops rows), at least one.
func (s *Spec) FitPasses() int {
	if !s.HasStages() {
		return 1
	}
	g, err := buildGraph(s)
	if err != nil {
		return 1
	}
	return g.passes
}

// StagePlan describes the stages in order with the fit pass of each that
// learns from the data ("" for the flat form), for a job's plan.
func (s *Spec) StagePlan() string {
	if !s.HasStages() {
		return ""
	}
	p, err := newPipe(s)
	if err != nil {
		return ""
	}
	return p.describeStages()
}

// FitSchema is the schema the fit pass needs: the categorical columns only,
// in file order (the order of Columns, not of Categorical), typed as in
// Schema.
func (s *Spec) FitSchema() *arrow.Schema {
	cat := make(map[string]bool, len(s.Categorical))
	for _, name := range s.Categorical {
		cat[name] = true
	}
	var fields []arrow.Field
	for _, c := range s.Columns {
		if cat[c.Name] {
			fields = append(fields, arrow.Field{Name: c.Name, Type: c.Type.arrowType(), Nullable: true})
		}
	}
	return arrow.NewSchema(fields, nil)
}

// Bounds returns the cumulative split bounds the way Spark's randomSplit
// computes them: weights are divided by their sum and bounds[i] is the sum
// of the first i+1 normalised weights, added in order; the last bound is
// forced to 1.0. A draw d in [0,1) goes to the first split i with
// d < bounds[i]. The spec must be valid.
func (s *Spec) Bounds() []float64 {
	var sum float64
	for _, sp := range s.Splits {
		sum += sp.Weight
	}
	bounds := make([]float64, len(s.Splits))
	var acc float64
	for i, sp := range s.Splits {
		acc += sp.Weight / sum
		bounds[i] = acc
	}
	if n := len(bounds); n > 0 {
		bounds[n-1] = 1.0
	}
	return bounds
}
