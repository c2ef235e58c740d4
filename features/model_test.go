package features

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const abaloneModelJSON = `{"version":1,"label":"rings","numeric":["length","diameter","height","whole_weight","shucked_weight","viscera_weight","shell_weight"],"rows":4177,"categorical":[{"column":"sex","labels":[{"label":"M","count":1528},{"label":"I","count":1342},{"label":"F","count":1307}]}]}`

func TestModelJSONRoundTrip(t *testing.T) {
	mem := checkedMem(t)
	spec := abaloneSpec(t)
	rec := abaloneRecord(t, mem)
	defer rec.Release()
	m := fitOn(t, spec, rec)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	// The model carries the spec it was fitted for.
	want := strings.TrimSuffix(abaloneModelJSON, "}") + `,"spec":` + string(mustMarshal(t, spec)) + "}"
	if string(b) != want {
		t.Errorf("model JSON\n%s\nwant\n%s", b, want)
	}
	if m.Spec() != spec {
		t.Errorf("model spec %v", m.Spec())
	}
	back, err := ReadModel(b)
	if err != nil {
		t.Fatal(err)
	}
	if describe(back) != describe(m) {
		t.Errorf("read back %s, want %s", describe(back), describe(m))
	}
	if b2 := mustJSON(t, back); !bytes.Equal(b, b2) {
		t.Errorf("round trip changed the bytes:\n%s\n%s", b, b2)
	}
	// As a field of another document, through encoding/json.
	var doc struct{ Model *Model }
	if err := json.Unmarshal([]byte(`{"Model":`+abaloneModelJSON+`}`), &doc); err != nil {
		t.Fatal(err)
	}
	if describe(doc.Model) != describe(m) {
		t.Errorf("embedded model %s", describe(doc.Model))
	}
	if back.Version() != ModelVersion || back.OutputSchema().Field(1).Name != FeaturesField {
		t.Errorf("version %d schema %v", back.Version(), back.OutputSchema())
	}
}

func TestModelJSONNonUTF8(t *testing.T) {
	in := `{"version":1,"label":"y","numeric":[],"rows":3,"categorical":[{"column":"c","labels":[{"label_base64":"/w==","count":2},{"label":"","count":1},{"label":"never","count":0}]}]}`
	m, err := ReadModel([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	labels, counts := m.Labels("c")
	if len(labels) != 3 || labels[0] != "\xff" || labels[1] != "" || counts[2] != 0 {
		t.Errorf("labels %q counts %v", labels, counts)
	}
	if out := mustJSON(t, m); string(out) != in {
		t.Errorf("round trip\n%s\nwant\n%s", out, in)
	}
	if m.Width() != 2 {
		t.Errorf("Width = %d", m.Width())
	}
}

func TestReadModelErrors(t *testing.T) {
	for _, tc := range []struct{ old, new, want string }{
		{`"version":1`, `"version":0`, "version 0: want 1"},
		{`"labels":[{"label":"M","count":1528},`, `"labels":[{"label":"M","count":1528},{"label":"M","count":1},`, `label "M" is listed twice`},
		{`"labels":[{"label":"M","count":1528},{"label":"I","count":1342},{"label":"F","count":1307}]`, `"labels":[]`, `column "sex" has no labels`},
		{`"count":1528`, `"count":-1`, "count -1"},
		{`"count":1528`, `"count":"1528"`, "cannot unmarshal"},
		{`"column":"sex"`, `"column":"rings"`, `"rings" is already label`},
		{`"column":"sex"`, `"column":"height"`, `"height" is already numeric`},
		{`"column":"sex"`, `"column":""`, "column is empty"},
		{`"rows":4177`, `"rows":4177,"specs":{}`, `unknown field "specs"`},
		{`"rows":4177`, `"rows":4177,"spec":{}`, `model: spec: columns: at least one column is required`},
		{`}]}]}`, `}]}]}]`, "after the JSON value"},
	} {
		if !strings.Contains(abaloneModelJSON, tc.old) {
			t.Fatalf("%q not in the model", tc.old)
		}
		data := strings.Replace(abaloneModelJSON, tc.old, tc.new, 1)
		if _, err := ReadModel([]byte(data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadModel(%s): %v, want %q", data, err, tc.want)
		}
	}
	for _, data := range []string{"", "null", "[]", "{"} {
		if _, err := ReadModel([]byte(data)); err == nil {
			t.Errorf("ReadModel(%q) succeeded", data)
		}
	}
}

func TestModelCheck(t *testing.T) {
	m, err := ReadModel([]byte(abaloneModelJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(abaloneSpec(t)); err != nil {
		t.Fatalf("Check(abalone): %v", err)
	}
	for _, tc := range []struct {
		edit func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Categorical = nil }, `model categorical columns ["sex"], spec categorical []`},
		{func(s *Spec) { s.Numeric = s.Numeric[:6] }, `spec numeric ["length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight"]`},
		{func(s *Spec) { s.Numeric[0], s.Numeric[1] = s.Numeric[1], s.Numeric[0] }, `spec numeric ["diameter", "length",`},
		{func(s *Spec) { s.Label = "length"; s.Numeric[0] = "rings" }, `spec numeric ["rings",`},
		{func(s *Spec) { s.Label = "age" }, `model label column "rings", spec label "age"`},
	} {
		spec := abaloneSpec(t)
		tc.edit(spec)
		err := m.Check(spec)
		if err == nil || !strings.Contains(err.Error(), "model does not fit the spec") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%+v) = %v, want %q", spec, err, tc.want)
		}
	}
	var zero Model
	if err := zero.Check(abaloneSpec(t)); err == nil {
		t.Error("zero Model passed Check")
	}
	if _, err := zero.MarshalJSON(); err == nil {
		t.Error("zero Model marshalled")
	}
}

func TestSlotNamesFlat(t *testing.T) {
	m, err := ReadModel([]byte(abaloneModelJSON))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(m.SlotNames(), ",")
	want := "sex_vec_M,sex_vec_I,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight"
	if got != want || len(m.SlotNames()) != m.Width() {
		t.Errorf("slot names %s, want %s", got, want)
	}
}

func TestSpecOutputFormat(t *testing.T) {
	spec := abaloneSpec(t)
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"output"`) {
		t.Errorf("an empty output is written: %s", b)
	}
	spec.Output.Format = "csv"
	b, _ = json.Marshal(spec)
	back, err := ParseSpec(b)
	if err != nil || back.Output.Format != "csv" {
		t.Fatalf("%v %+v (%s)", err, back, b)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
