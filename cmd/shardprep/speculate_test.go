package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shardprep/shardprep/pipeline"
)

// fitTasks is the number of fit tasks a committed job ran: one per split,
// or the sample's when its model was verified (or redone).
func fitTasks(m *pipeline.Manifest) int {
	if s := m.FitSample; s != nil && s.Outcome != "abandoned" {
		return s.Splits
	}
	return len(m.Parts)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSampleFitBinary: `shardprep run` fits on a sample of the splits,
// verifies it, and writes the parts that a run given its model writes.
func TestSampleFitBinary(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "7", "1MiB")
	m := readManifest(t, ref)
	if s := m.FitSample; s == nil || s.Outcome != "verified" || s.Splits != 2 || s.Of != len(m.Parts) || m.FitPasses != 1 {
		t.Fatalf("fit_sample %+v, fit passes %d, for %d splits", m.FitSample, m.FitPasses, len(m.Parts))
	}
	fit := 0
	for _, a := range m.Attempts {
		if a.Phase == "fit" {
			fit++
		}
	}
	if fit != 2 {
		t.Errorf("%d fit attempts, want the sample's 2", fit)
	}
	out := filepath.Join(t.TempDir(), "given")
	if _, stderr, code := runBin(t, baseEnv(), "run", "--input", in, "--output", out, "--seed", "7", "--split-size", "1MiB",
		"--model", filepath.Join(ref, "_shardprep", "model.json"), "--quiet"); code != 0 {
		t.Fatalf("run --model: exit %d\n%s", code, stderr)
	}
	sameParts(t, partsOf(t, out), partsOf(t, ref))
}

// TestClusterSampleFallback: on input sorted by its categorical column the
// sample's fit sees one label; in a cluster of a coordinator and two
// worker processes, the transform meets the others, the job fits the rest
// of the input and writes what `shardprep run` and a run given the model
// write.
func TestClusterSampleFallback(t *testing.T) {
	data, err := os.ReadFile(testData(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	lines[len(lines)-1] += "\n"
	sort.SliceStable(lines, func(i, j int) bool { return lines[i][0] > lines[j][0] }) // M, I, F
	dir := t.TempDir()
	in := filepath.Join(dir, "sorted.csv")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := reference(t, in, "7", "1MiB")
	out := filepath.Join(dir, "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "7", "--split-size", "1MiB", "--workers", "0", "--lease", "5s")
	var workers []*proc
	for _, name := range []string{"w1", "w2"} {
		workers = append(workers, startWorker(t, clusterEnv(), nil, "http://"+addr, name, "--workers", "2"))
	}
	if code := coord.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, coord.errText())
	}
	for _, w := range workers {
		if code := w.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit %d\n%s", w.name, code, w.errText())
		}
	}
	sameParts(t, partsOf(t, ref), partsOf(t, out))
	committed(t, out)
	for _, d := range []string{ref, out} {
		m := readManifest(t, d)
		if s := m.FitSample; s == nil || s.Outcome != "abandoned" || !strings.Contains(s.Reason, "which the sample's model does not") {
			t.Errorf("%s: fit_sample %+v, want abandoned at an unseen label", d, s)
		}
	}
	if n := countMsg(coord.logs(), "the sample's model does not hold; abandoning the transform"); n != 1 {
		t.Errorf("the coordinator logged the abandoned transform %d times", n)
	}
	refModel, _ := os.ReadFile(filepath.Join(ref, "_shardprep", "model.json"))
	model, _ := os.ReadFile(filepath.Join(out, "_shardprep", "model.json"))
	if len(model) == 0 || !bytes.Equal(model, refModel) {
		t.Errorf("model.json differs from the run's:\n%s\n%s", model, refModel)
	}
	given := filepath.Join(dir, "given")
	if _, stderr, code := runBin(t, baseEnv(), "run", "--input", in, "--output", given, "--seed", "7", "--split-size", "1MiB",
		"--model", filepath.Join(ref, "_shardprep", "model.json"), "--quiet"); code != 0 {
		t.Fatalf("run --model: exit %d\n%s", code, stderr)
	}
	sameParts(t, partsOf(t, given), partsOf(t, out))
}
