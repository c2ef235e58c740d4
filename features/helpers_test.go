package features

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

const abaloneSpecJSON = `{
  "columns": [
    {"name": "sex", "type": "string"},
    {"name": "length", "type": "double"},
    {"name": "diameter", "type": "double"},
    {"name": "height", "type": "double"},
    {"name": "whole_weight", "type": "double"},
    {"name": "shucked_weight", "type": "double"},
    {"name": "viscera_weight", "type": "double"},
    {"name": "shell_weight", "type": "double"},
    {"name": "rings", "type": "double"}
  ],
  "categorical": ["sex"],
  "numeric": ["length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight"],
  "label": "rings",
  "splits": [{"name": "train", "weight": 0.8}, {"name": "validation", "weight": 0.2}]
}`

func abaloneSpec(t testing.TB) *Spec {
	t.Helper()
	spec, err := ParseSpec([]byte(abaloneSpecJSON))
	if err != nil {
		t.Fatalf("ParseSpec(abalone): %v", err)
	}
	return spec
}

// readCSV parses a headerless CSV file into rows of cells typed by schema:
// string fields stay strings, float64 fields are parsed.
func readCSV(t testing.TB, schema *arrow.Schema, path string) [][]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = schema.NumFields()
	lines, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rows := make([][]any, len(lines))
	for i, line := range lines {
		row := make([]any, len(line))
		for j, cell := range line {
			if schema.Field(j).Type.ID() == arrow.STRING {
				row[j] = cell
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(cell), 64)
			if err != nil {
				t.Fatalf("%s line %d column %d: %v", path, i+1, j+1, err)
			}
			row[j] = v
		}
		rows[i] = row
	}
	return rows
}

// recordOf builds a record of schema from rows; a nil cell is a null. The
// caller releases it.
func recordOf(t testing.TB, mem memory.Allocator, schema *arrow.Schema, rows [][]any) arrow.Record {
	t.Helper()
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i, row := range rows {
		if len(row) != schema.NumFields() {
			t.Fatalf("row %d has %d cells, schema %d fields", i, len(row), schema.NumFields())
		}
		for j, cell := range row {
			switch fb := b.Field(j).(type) {
			case *array.StringBuilder:
				if cell == nil {
					fb.AppendNull()
				} else {
					fb.Append(cell.(string))
				}
			case *array.Float64Builder:
				if cell == nil {
					fb.AppendNull()
				} else {
					fb.Append(cell.(float64))
				}
			case *array.Int64Builder:
				fb.Append(cell.(int64))
			default:
				t.Fatalf("recordOf: unsupported builder %T", fb)
			}
		}
	}
	return b.NewRecord()
}

// abaloneRecord reads testdata/abalone.csv into one record.
func abaloneRecord(t testing.TB, mem memory.Allocator) arrow.Record {
	t.Helper()
	schema := abaloneSpec(t).Schema()
	return recordOf(t, mem, schema, readCSV(t, schema, "testdata/abalone.csv"))
}

// sliceRecord returns rows [i, j) of rec; the caller releases it.
func sliceRecord(rec arrow.Record, i, j int) arrow.Record { return rec.NewSlice(int64(i), int64(j)) }

// smallSpec is a spec with two categorical columns and one numeric.
func smallSpec(t testing.TB) *Spec {
	t.Helper()
	spec, err := ParseSpec([]byte(`{
	  "columns": [{"name":"a","type":"string"},{"name":"x","type":"double"},{"name":"b","type":"string"},{"name":"y","type":"double"}],
	  "categorical": ["b","a"], "numeric": ["x"], "label": "y",
	  "splits": [{"name":"all","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func mustJSON(t testing.TB, v interface{ MarshalJSON() ([]byte, error) }) []byte {
	t.Helper()
	b, err := v.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	return b
}

func describe(m *Model) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "label=%s numeric=%q rows=%d width=%d", m.LabelColumn(), m.NumericColumns(), m.Rows(), m.Width())
	for _, c := range m.CategoricalColumns() {
		l, n := m.Labels(c)
		fmt.Fprintf(&sb, " %s=%q/%v", c, l, n)
	}
	return sb.String()
}
