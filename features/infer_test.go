package features

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// inferJSON drafts a spec of csv and returns it decoded.
func inferJSON(t *testing.T, csv string, opts *InferOptions) (map[string]any, *Inferred) {
	t.Helper()
	got, err := InferSpec(strings.NewReader(csv), opts)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(got.Spec, &m); err != nil {
		t.Fatalf("the draft is not JSON: %v\n%s", err, got.Spec)
	}
	return m, got
}

// wantJSON decodes a hand-written expected spec.
func wantJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestInferSpecOfTheSample(t *testing.T) {
	data, err := os.ReadFile("../cmd/shardprep/sample/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, inf := inferJSON(t, string(data), nil)
	want := wantJSON(t, `{
	  "columns": [{"name": "c0", "type": "string"}, {"name": "c1", "type": "double"}, {"name": "c2", "type": "double"},
	              {"name": "c3", "type": "double"}, {"name": "c4", "type": "double"}, {"name": "c5", "type": "double"},
	              {"name": "c6", "type": "double"}, {"name": "c7", "type": "double"}, {"name": "c8", "type": "double"}],
	  "header": false,
	  "stages": [
	    {"stage": "StringIndexer", "inputCols": ["c0"], "outputCols": ["c0_idx"], "handleInvalid": "error"},
	    {"stage": "OneHotEncoder", "inputCols": ["c0_idx"], "outputCols": ["c0_vec"]},
	    {"stage": "VectorAssembler", "inputCols": ["c0_vec", "c1", "c2", "c3", "c4", "c5", "c6", "c7"], "outputCol": "features"}
	  ],
	  "label": "c8",
	  "features": "features",
	  "splits": [{"name": "train", "weight": 0.8}, {"name": "validation", "weight": 0.2}],
	  "output": {"format": "text"}
	}`)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("draft\n%s", inf.Spec)
	}
	if _, err := ParseSpec(inf.Spec); err != nil {
		t.Errorf("the draft is not a valid spec: %v", err)
	}
	if inf.Rows != 1000 {
		t.Errorf("sampled %d rows, want the default 1000", inf.Rows)
	}
	// One column or stage per line, as a spec is written by hand.
	lines := strings.Split(string(inf.Spec), "\n")
	if len(lines) != 24 || lines[2] != `    {"name":"c0","type":"string"},` || lines[14] != `    {"stage":"StringIndexer","inputCols":["c0"],"outputCols":["c0_idx"],"handleInvalid":"error"},` {
		t.Errorf("layout:\n%s", inf.Spec)
	}
}

func TestInferSpecWithAHeader(t *testing.T) {
	csv := "\xef\xbb\xbfmake,fuel,hp,weight,notes,price,make_vec\r\n" +
		"toyota,gas,110, 2400 ,\"a, b\",15000.5,1\r\n" +
		"\"bmw\",diesel,,2900,,NaN,2\r\n" +
		"vw,,-Infinity,1e400,x,1e3,3\r\n" +
		"ford,gas,95,2100,,7,4\r\n" +
		"audi,gas,abc,2000,,8,5\r\n" // beyond Rows: not sampled
	got, inf := inferJSON(t, csv, &InferOptions{Header: true, Rows: 4})
	want := wantJSON(t, `{
	  "columns": [{"name": "make", "type": "string"}, {"name": "fuel", "type": "string"}, {"name": "hp", "type": "double"},
	              {"name": "weight", "type": "double"}, {"name": "notes", "type": "string"}, {"name": "price", "type": "double"},
	              {"name": "make_vec", "type": "double"}],
	  "header": true,
	  "stages": [
	    {"stage": "StringIndexer", "inputCols": ["make", "fuel", "notes"], "outputCols": ["make_idx", "fuel_idx", "notes_idx"], "handleInvalid": "keep"},
	    {"stage": "OneHotEncoder", "inputCols": ["make_idx", "fuel_idx", "notes_idx"], "outputCols": ["make_vec_", "fuel_vec", "notes_vec"]},
	    {"stage": "Imputer", "inputCols": ["hp"], "outputCols": ["hp_imp"], "strategy": "mean"},
	    {"stage": "VectorAssembler", "inputCols": ["make_vec_", "fuel_vec", "notes_vec", "hp_imp", "weight", "price"], "outputCol": "features"}
	  ],
	  "label": "make_vec",
	  "features": "features",
	  "splits": [{"name": "train", "weight": 0.8}, {"name": "validation", "weight": 0.2}],
	  "output": {"format": "text"}
	}`)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("draft\n%s", inf.Spec)
	}
	wantNotes := []string{
		`column "fuel": 1 of 4 sampled values are empty (null): the StringIndexer's handleInvalid "keep" indexes them as a label of their own`,
		`column "hp": 1 of 4 sampled values are empty (null): the Imputer replaces them with the column's mean`,
		`column "notes": 2 of 4 sampled values are empty (null): the StringIndexer's handleInvalid "keep" indexes them as a label of their own`,
		`label: "make_vec", the last numeric column`}
	if _, err := ParseSpec(inf.Spec); err != nil {
		t.Errorf("the draft is not a valid spec: %v", err)
	}
	if !reflect.DeepEqual(inf.Notes, wantNotes) {
		t.Errorf("notes %q, want %q", inf.Notes, wantNotes)
	}
}

func TestInferSpecColumnTypes(t *testing.T) {
	for v, want := range map[string]bool{
		"1": true, " 2.5\t": true, "-0": true, "1e-05": true, "NaN": true, "Inf": true, "-Inf": true, "Infinity": true,
		"-Infinity": true, "1e400": true, "0x1p-2": true, ".5": true,
		"1_000": false, "abc": false, "inf": false, "nan": false, "infinity": false, "1.5d": true, "1,5": false, "M": false, "12a": false,
	} {
		if got := isDouble(v); got != want {
			t.Errorf("isDouble(%q) = %v, want %v", v, got, want)
		}
	}
	// A column empty in every sampled row is a string column.
	got, _ := inferJSON(t, "a,,1\nb,,2\n", nil)
	if cols := got["columns"].([]any); cols[1].(map[string]any)["type"] != "string" {
		t.Errorf("an empty column: %v", cols[1])
	}
}

// An empty label is an invalid row; a string column without empty values
// keeps Spark's default handleInvalid.
func TestInferSpecEmptyLabel(t *testing.T) {
	got, inf := inferJSON(t, "a,1,2\nb,3,\n", nil)
	stages, _ := json.Marshal(got["stages"])
	want := `[{"handleInvalid":"error","inputCols":["c0"],"outputCols":["c0_idx"],"stage":"StringIndexer"},` +
		`{"inputCols":["c0_idx"],"outputCols":["c0_vec"],"stage":"OneHotEncoder"},` +
		`{"inputCols":["c0_vec","c1"],"outputCol":"features","stage":"VectorAssembler"}]`
	if string(stages) != want || got["label"] != "c2" {
		t.Errorf("draft\n%s", inf.Spec)
	}
	if note := `column "c2": 1 of 2 sampled values are empty (null): a row with an empty label is an invalid row (see --on-invalid)`; inf.Notes[0] != note {
		t.Errorf("notes %q", inf.Notes)
	}
}

func TestInferSpecRefusals(t *testing.T) {
	for _, c := range []struct {
		csv    string
		header bool
		want   string
	}{
		{"", false, "sample: no data rows"},
		{"a,b,c\n", true, "sample: no data rows"},
		{"a,1\nb,2,3\n", false, "wrong number of fields"},
		{"a,b,a\n1,2,3\n", true, `sample: line 1: the header names column "a" twice`},
		{"a,,c\n1,2,3\n", true, "sample: line 1: the header names no column 2"},
		{"__a,b\n1,2\n", true, `names starting with "__" are reserved`},
		{"x,y\nz,w\n", false, "no column is numeric in every sampled row"},
		{"1\n2\n", false, `the only column, "c0", is the label`},
	} {
		_, err := InferSpec(strings.NewReader(c.csv), &InferOptions{Header: c.header})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.csv, err, c.want)
		}
	}
}
