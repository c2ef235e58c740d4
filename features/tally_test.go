package features

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// TestTallyRefits: the tallies of a transform by a model fitted on the
// first rows only, merged, fit the model a fit of every row fits; the
// transform's result is Transform's.
func TestTallyRefits(t *testing.T) {
	mem := checkedMem(t)
	spec := abaloneSpec(t)
	rec := abaloneRecord(t, mem)
	defer rec.Release()
	full := statsOf(t, spec, rec, 0, int(rec.NumRows()))
	want := modelOf(t, full)
	guess := modelOf(t, statsOf(t, spec, rec, 0, 500))
	merged := NewStats(spec)
	for _, cut := range [][2]int{{0, 1000}, {1000, 1001}, {1001, 4177}} {
		tally, err := guess.NewTally()
		if err != nil {
			t.Fatal(err)
		}
		part := sliceRecord(rec, cut[0], cut[1])
		out, err := guess.TransformTally(part, mem, tally)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := guess.Transform(part, mem)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := out.Column(1).String(), plain.Column(1).String(); a != b {
			t.Errorf("rows %v: TransformTally's features differ from Transform's", cut)
		}
		out.Release()
		plain.Release()
		part.Release()
		if tally.Rows() != int64(cut[1]-cut[0]) {
			t.Errorf("rows %v: tally counted %d rows", cut, tally.Rows())
		}
		if err := merged.Merge(tally.Stats()); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := mustJSON(t, merged), mustJSON(t, full); !bytes.Equal(a, b) {
		t.Errorf("merged tallies:\n%s\nwant the fit's stats:\n%s", a, b)
	}
	got, err := merged.Model()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, got), mustJSON(t, want); !bytes.Equal(a, b) {
		t.Errorf("model of the tallies:\n%s\nwant:\n%s", a, b)
	}
}

// TestTallyUnseen: a row whose label the model does not hold fails the
// transform, and the tally counts nothing of the batch.
func TestTallyUnseen(t *testing.T) {
	mem := checkedMem(t)
	spec := smallSpec(t)
	schema := spec.Schema()
	fitRec := recordOf(t, mem, schema, [][]any{{"p", 1.0, "u", 2.0}, {"q", 1.0, "v", 2.0}})
	defer fitRec.Release()
	st := statsOf(t, spec, fitRec, 0, int(fitRec.NumRows()))
	m := modelOf(t, st)
	tally, err := m.NewTally()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := m.TransformTally(fitRec, mem, tally); err != nil {
		t.Fatal(err)
	} else {
		out.Release()
	}
	bad := recordOf(t, mem, schema, [][]any{{"p", 1.0, "u", 2.0}, {"r", 1.0, "u", 2.0}})
	defer bad.Release()
	_, err = m.TransformTally(bad, mem, tally)
	var re *RowError
	if !errors.As(err, &re) || re.Reason != ReasonUnseen || re.Row != 1 || re.Value != "r" {
		t.Fatalf("err = %v, want the unseen label r of row 1", err)
	}
	if tally.Rows() != 2 {
		t.Errorf("tally counted %d rows, want the 2 of the first batch", tally.Rows())
	}
	if a, b := mustJSON(t, tally.Stats()), mustJSON(t, st); !bytes.Equal(a, b) {
		t.Errorf("tally stats %s, want %s", a, b)
	}
	other, _ := m.NewTally()
	other.m = nil
	if _, err := m.TransformTally(fitRec, memory.DefaultAllocator, other); err == nil {
		t.Error("a tally of another model was taken")
	}
}

// TestTallyStages: a spec whose stages fit only StringIndexers keeps a
// tally like the flat form, whose statistics fit the model of every row;
// with handleInvalid keep, a label the model does not hold refuses its row
// in a tally rather than taking the extra index. A spec with another
// fitted stage keeps none.
func TestTallyStages(t *testing.T) {
	mem := checkedMem(t)
	spec, err := ParseSpec([]byte(`{"columns":[{"name":"a","type":"string"},{"name":"x","type":"double"},{"name":"y","type":"double"}],
	 "stages":[{"stage":"StringIndexer","inputCols":["a","x"],"outputCols":["ai","xi"],"handleInvalid":"keep"},
	  {"stage":"OneHotEncoder","inputCols":["ai","xi"],"outputCols":["av","xv"]},
	  {"stage":"VectorAssembler","inputCols":["av","xv"],"outputCol":"features"}],
	 "label":"y","splits":[{"name":"all","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !spec.FitsLabelCounts() {
		t.Fatal("a spec fitting only a StringIndexer does not fit label counts")
	}
	schema := spec.Schema()
	rows := [][]any{{"p", 1.0, 0.0}, {"q", 2.0, 1.0}, {"q", 2.0, 0.0}, {"r", 1.0, 1.0}, {"q", 3.0, 1.0}}
	rec := recordOf(t, mem, schema, rows)
	defer rec.Release()
	full := statsOf(t, spec, rec, 0, int(rec.NumRows()))
	want := modelOf(t, full)
	guess := modelOf(t, statsOf(t, spec, rec, 0, 2))
	tally, err := guess.NewTally()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := guess.TransformTally(rec, mem, tally); err == nil || !strings.Contains(err.Error(), ReasonUnseen) {
		t.Errorf("row r under keep in a tally: %v, want an unseen label", err)
	}
	if tally.Rows() != 0 {
		t.Errorf("the failed transform counted %d rows", tally.Rows())
	}
	tally, _ = want.NewTally()
	for _, cut := range [][2]int{{0, 3}, {3, 5}} {
		part := sliceRecord(rec, cut[0], cut[1])
		out, err := want.TransformTally(part, mem, tally)
		part.Release()
		if err != nil {
			t.Fatal(err)
		}
		out.Release()
	}
	merged := NewStats(spec)
	if err := merged.Merge(tally.Stats()); err != nil {
		t.Fatal(err)
	}
	got, err := merged.Model()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, got), mustJSON(t, want); !bytes.Equal(a, b) {
		t.Errorf("model of the tally:\n%s\nwant\n%s", a, b)
	}
	scaled, err := ParseSpec([]byte(`{"columns":[{"name":"a","type":"string"},{"name":"y","type":"double"}],
	 "stages":[{"stage":"StringIndexer","inputCol":"a","outputCol":"ai"},
	  {"stage":"VectorAssembler","inputCols":["ai"],"outputCol":"v"},
	  {"stage":"MaxAbsScaler","inputCol":"v","outputCol":"features"}],
	 "label":"y","splits":[{"name":"all","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if scaled.FitsLabelCounts() {
		t.Error("a spec with a MaxAbsScaler fits label counts")
	}
}

// modelOf returns the model st fits.
func modelOf(t *testing.T, st *Stats) *Model {
	t.Helper()
	m, err := st.Model()
	if err != nil {
		t.Fatal(err)
	}
	return m
}
