package features

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
)

func TestParseSpecAbalone(t *testing.T) {
	spec := abaloneSpec(t)
	if len(spec.Columns) != 9 || spec.Label != "rings" || len(spec.Numeric) != 7 || spec.Categorical[0] != "sex" {
		t.Fatalf("parsed spec = %+v", spec)
	}
	schema := spec.Schema()
	if schema.NumFields() != 9 {
		t.Fatalf("Schema has %d fields", schema.NumFields())
	}
	if f := schema.Field(0); f.Name != "sex" || !arrow.TypeEqual(f.Type, arrow.BinaryTypes.String) {
		t.Errorf("field 0 = %v", f)
	}
	if f := schema.Field(8); f.Name != "rings" || !arrow.TypeEqual(f.Type, arrow.PrimitiveTypes.Float64) {
		t.Errorf("field 8 = %v", f)
	}
	fit := spec.FitSchema()
	if fit.NumFields() != 1 || fit.Field(0).Name != "sex" || !arrow.TypeEqual(fit.Field(0).Type, arrow.BinaryTypes.String) {
		t.Errorf("FitSchema = %v", fit)
	}
}

func TestFitSchemaFileOrder(t *testing.T) {
	fit := smallSpec(t).FitSchema() // categorical ["b","a"], file order a, b
	if fit.NumFields() != 2 || fit.Field(0).Name != "a" || fit.Field(1).Name != "b" {
		t.Errorf("FitSchema = %v, want fields a, b", fit)
	}
}

func TestBounds(t *testing.T) {
	for _, tc := range []struct {
		weights []float64
		want    []float64
	}{
		{[]float64{0.8, 0.2}, []float64{0.8, 1.0}},
		{[]float64{4, 1}, []float64{0.8, 1.0}},
		{[]float64{1}, []float64{1.0}},
		{[]float64{1, 1, 2}, []float64{0.25, 0.5, 1.0}},
		// Spark: weights divided by their float64 sum, then added in order.
		{[]float64{0.1, 0.2, 0.3}, []float64{0.16666666666666666, 0.5, 1.0}},
		// 0.7/1.1 + 0.3/1.1 + 0.1/1.1 rounds to 0.9999999999999999 in
		// float64; the last bound is forced to 1 so every draw lands.
		{[]float64{0.7, 0.3, 0.1}, []float64{0.6363636363636362, 0.909090909090909, 1.0}},
	} {
		s := &Spec{}
		for i, w := range tc.weights {
			s.Splits = append(s.Splits, Split{Name: string(rune('a' + i)), Weight: w})
		}
		got := s.Bounds()
		if len(got) != len(tc.want) {
			t.Fatalf("Bounds(%v) = %v", tc.weights, got)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("Bounds(%v)[%d] = %v, want %v", tc.weights, i, got[i], tc.want[i])
			}
		}
	}
}

func TestSpecValidation(t *testing.T) {
	// Each case edits the abalone spec JSON by replacing one fragment.
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown field", `"label": "rings"`, `"label": "rings", "lable": "x"`, `unknown field "lable"`},
		{"trailing data", `]
}`, `]
} {}`, "after the JSON value"},
		{"wrong JSON type", `"weight": 0.8`, `"weight": "0.8"`, "weight"},
		{"no columns", `"columns": [`, `"columns": [], "x": [`, "unknown field"},
		{"empty column name", `{"name": "height", "type": "double"}`, `{"name": "", "type": "double"}`, "columns[3].name is empty"},
		{"reserved column name", `{"name": "height", "type": "double"}`, `{"name": "__offset", "type": "double"}`, `columns[3].name "__offset": names starting with "__" are reserved`},
		{"bad type", `{"name": "height", "type": "double"}`, `{"name": "height", "type": "float"}`, `columns[3].type "float" for column "height"`},
		{"duplicate column", `{"name": "height", "type": "double"}`, `{"name": "length", "type": "double"}`, `columns[3].name "length" is declared twice`},
		{"categorical undeclared", `"categorical": ["sex"]`, `"categorical": ["gender"]`, `categorical[0] "gender" is not a declared column`},
		{"categorical not string", `"categorical": ["sex"]`, `"categorical": ["sex", "length"]`, `categorical[1] "length" is a double column, want string`},
		{"categorical twice", `"categorical": ["sex"]`, `"categorical": ["sex", "sex"]`, `categorical[1] "sex" is already listed in categorical`},
		{"numeric not double", `"numeric": ["length",`, `"numeric": ["sex", "length",`, `numeric[0] "sex" is a string column, want double`},
		{"numeric undeclared", `"numeric": ["length",`, `"numeric": ["lenght",`, `numeric[0] "lenght" is not a declared column`},
		{"numeric twice", `"numeric": ["length",`, `"numeric": ["length", "length",`, `numeric[1] "length" is already listed in numeric`},
		{"label empty", `"label": "rings"`, `"label": ""`, "label is empty"},
		{"label undeclared", `"label": "rings"`, `"label": "age"`, `label "age" is not a declared column`},
		{"label not double", `"label": "rings"`, `"label": "sex"`, `label "sex" is a string column, want double`},
		{"label is a feature", `"label": "rings"`, `"label": "length"`, `label "length" is also a feature column`},
		{"no features", `"categorical": ["sex"],
  "numeric": ["length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight"]`, `"categorical": [], "numeric": []`, "at least one feature column"},
		{"no splits", `"splits": [{"name": "train", "weight": 0.8}, {"name": "validation", "weight": 0.2}]`, `"splits": []`, "at least one split"},
		{"split name upper case", `"name": "train"`, `"name": "Train"`, `splits[0].name "Train"`},
		{"split name path", `"name": "train"`, `"name": "../train"`, `splits[0].name "../train"`},
		{"split name empty", `"name": "train"`, `"name": ""`, `splits[0].name ""`},
		{"split name _rejected", `"name": "validation"`, `"name": "_rejected"`, `splits[1].name "_rejected": split names may not start with '_' or '.'`},
		{"split name _shardprep", `"name": "train"`, `"name": "_shardprep"`, `splits[0].name "_shardprep": split names may not start with '_' or '.'`},
		{"split name hidden", `"name": "train"`, `"name": ".train"`, `splits[0].name ".train": split names may not start with '_' or '.'`},
		{"split name twice", `"name": "validation"`, `"name": "train"`, `splits[1].name "train" is used twice`},
		{"weight zero", `"weight": 0.2`, `"weight": 0`, `splits[1].weight 0 for split "validation"`},
		{"weight negative", `"weight": 0.8`, `"weight": -0.8`, `splits[0].weight -0.8`},
		{"weights overflow", `"weight": 0.8}, {"name": "validation", "weight": 0.2`, `"weight": 1e308}, {"name": "validation", "weight": 1e308`, "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(abaloneSpecJSON, tc.old) {
				t.Fatalf("fragment %q not in the abalone spec", tc.old)
			}
			data := strings.Replace(abaloneSpecJSON, tc.old, tc.new, 1)
			spec, err := ParseSpec([]byte(data))
			if err == nil {
				t.Fatalf("ParseSpec accepted %s: %+v", data, spec)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestSpecValidateDirect(t *testing.T) {
	var nilSpec *Spec
	if err := nilSpec.Validate(); err == nil {
		t.Error("nil spec validated")
	}
	if err := (&Spec{}).Validate(); err == nil || !strings.Contains(err.Error(), "at least one column") {
		t.Errorf("empty spec: %v", err)
	}
	s := abaloneSpec(t)
	s.Splits[1].Weight = math.Inf(1)
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "splits[1].weight +Inf") {
		t.Errorf("infinite weight: %v", err)
	}
	s.Splits[1].Weight = math.NaN()
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "splits[1].weight NaN") {
		t.Errorf("NaN weight: %v", err)
	}
	s.Splits[1].Weight = 0.2
	if err := s.Validate(); err != nil {
		t.Errorf("restored spec: %v", err)
	}
}

func TestSpecHiddenSplitNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"_rejected", false},
		{"_shardprep", false},
		{"_train", false},
		{"_", false},
		{"__", false},
		{".hidden", false},
		{".", false},
		{"..", false},
		{"train_", true},
		{"train_rejected", true},
		{"shardprep", true},
		{"t_", true},
		{"0-test", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := abaloneSpec(t)
			s.Splits[1].Name = tc.name
			err := s.Validate()
			if tc.ok {
				if err != nil {
					t.Fatalf("split %q refused: %v", tc.name, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("split %q accepted", tc.name)
			}
			want := fmt.Sprintf(`splits[1].name %q: split names may not start with '_' or '.'`, tc.name)
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Hadoop and Spark") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q and the reason", err, want)
			}
		})
	}
}
