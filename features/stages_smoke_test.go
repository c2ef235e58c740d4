package features

import (
	"encoding/json"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
)

const issueSpecJSON = `{
  "columns": [{"name": "make", "type": "string"}, {"name": "fuel", "type": "string"},
              {"name": "hp", "type": "double"}, {"name": "weight", "type": "double"},
              {"name": "price", "type": "double"}],
  "header": true,
  "stages": [
    {"stage": "StringIndexer", "inputCols": ["make", "fuel"], "outputCols": ["make_idx", "fuel_idx"],
     "handleInvalid": "keep"},
    {"stage": "OneHotEncoder", "inputCols": ["make_idx", "fuel_idx"], "outputCols": ["make_vec", "fuel_vec"]},
    {"stage": "Imputer", "inputCols": ["hp"], "outputCols": ["hp_imp"], "strategy": "mean"},
    {"stage": "VectorAssembler", "inputCols": ["make_vec", "fuel_vec", "hp_imp", "weight"], "outputCol": "raw"},
    {"stage": "StandardScaler", "inputCol": "raw", "outputCol": "features", "withMean": true, "withStd": true}
  ],
  "label": "price",
  "features": "features",
  "splits": [{"name": "train", "weight": 0.8}, {"name": "validation", "weight": 0.2}],
  "output": {"format": "csv"}
}`

func TestStagesSmoke(t *testing.T) {
	mem := checkedMem(t)
	spec, err := ParseSpec([]byte(issueSpecJSON))
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]any{
		{"toyota", "gas", 100.0, 1000.0, 9.0},
		{"honda", "gas", nil, 1100.0, 8.0},
		{"toyota", nil, 120.0, 900.0, 7.5},
		{"bmw", "diesel", 200.0, 1500.0, 30.0},
	}
	rec := recordOf(t, mem, spec.Schema(), rows)
	defer rec.Release()
	a, b0 := rec.NewSlice(0, 2), rec.NewSlice(2, 4)
	defer a.Release()
	defer b0.Release()
	m, err := fitRecords(spec, a, b0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("passes %v slots %v", m.pipe.g.passes, m.SlotNames())
	b, _ := json.Marshal(m)
	t.Logf("%s", b)
	out, err := m.Transform(rec, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	t.Logf("%v", out.Column(1).(*array.FixedSizeList))
	back, err := ReadModel(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Errorf("round trip\n%s\n%s", b, b2)
	}
}
