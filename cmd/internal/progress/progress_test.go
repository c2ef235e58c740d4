package progress

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shardprep/shardprep/pipeline"
)

func snap(phase pipeline.Phase, done, total int64) pipeline.Snapshot {
	return pipeline.Snapshot{Phase: phase, SplitsDone: int(done), SplitsTotal: 4, BytesDone: done << 20, BytesTotal: total << 20, Rows: done * 1000, Workers: 2}
}

// TestBarOnTerminal: on a terminal the bar is redrawn in place, a phase
// to a line; the transform's line ends complete when the commit starts.
func TestBarOnTerminal(t *testing.T) {
	var w bytes.Buffer
	d := New(&w, true, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if d.Every() != 200*time.Millisecond {
		t.Errorf("a terminal redraws every %v", d.Every())
	}
	d.Update(snap(pipeline.PhaseFit, 1, 4))
	d.Update(snap(pipeline.PhaseFit, 4, 4))
	d.Update(snap(pipeline.PhaseTransform, 2, 4))
	d.Update(snap(pipeline.PhaseCommit, 0, 0))
	d.Finish()
	got := w.String()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(got, "\n") {
		t.Fatalf("want a line per phase:\n%q", got)
	}
	if !strings.HasPrefix(lines[0], "\rfit       [=======                       ]  25%  1MiB / 4MiB  1000 rows  1/4 splits \r") ||
		!strings.HasSuffix(lines[0], "\rfit       [==============================] 100%  4MiB / 4MiB  4000 rows  4/4 splits ") {
		t.Errorf("fit line %q", lines[0])
	}
	if !strings.HasSuffix(lines[1], "\rtransform [==============================] 100%  4MiB / 4MiB  2000 rows  4/4 splits ") {
		t.Errorf("the transform does not end complete: %q", lines[1])
	}
}

// TestLogRecordsElsewhere: without a terminal each update is one log
// record with the snapshot's numbers, every few seconds.
func TestLogRecordsElsewhere(t *testing.T) {
	var w, logs bytes.Buffer
	d := New(&w, false, slog.New(slog.NewJSONHandler(&logs, nil)), false)
	if d.Every() != 5*time.Second {
		t.Errorf("logs every %v", d.Every())
	}
	d.Update(snap(pipeline.PhaseTransform, 2, 4))
	d.Finish()
	var rec map[string]any
	if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, logs.String())
	}
	if rec["msg"] != "progress" || rec["phase"] != "transform" || rec["splits_done"] != 2.0 || rec["bytes"] != float64(4<<20) || rec["rows"] != 2000.0 || rec["workers"] != 2.0 {
		t.Errorf("record %v", rec)
	}
	if w.Len() != 0 {
		t.Errorf("drew on a non-terminal: %q", w.String())
	}
}

func TestQuietShowsNothing(t *testing.T) {
	var w, logs bytes.Buffer
	for _, tty := range []bool{true, false} {
		d := New(&w, tty, slog.New(slog.NewJSONHandler(&logs, nil)), true)
		d.Update(snap(pipeline.PhaseFit, 1, 4))
		d.Finish()
	}
	if w.Len()+logs.Len() != 0 {
		t.Errorf("quiet showed %q %q", w.String(), logs.String())
	}
}
