package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/pipeline"
)

// runCLI runs the program in-process and returns its output.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == "AWS_ENDPOINT_URL_S3" {
			return ""
		}
		return os.Getenv(k)
	}
	err = run(context.Background(), args, env, &out, &errb)
	return out.String(), errb.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("shardprep %s: %v\nstderr:\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// readSplit returns the concatenated parts of one split folder, in part order.
func readSplit(t *testing.T, dir, split string) []byte {
	t.Helper()
	parts, err := filepath.Glob(filepath.Join(dir, split, "part-*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(parts)
	var all []byte
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func lines(b []byte) []string {
	s := strings.Split(string(b), "\n")
	if len(s) > 0 && s[len(s)-1] == "" {
		s = s[:len(s)-1]
	}
	return s
}

func readManifest(t *testing.T, dir string) *pipeline.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "_shardprep", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m pipeline.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

const expectedPath = "../../features/testdata/abalone.expected.csv"

func TestBundledSampleMatchesSpark(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	stdout := mustRun(t, "run", "--output", out, "--seed", "7")
	if !strings.Contains(stdout, out) {
		t.Errorf("summary does not say where the output is:\n%s", stdout)
	}
	train, val := lines(readSplit(t, out, "train")), lines(readSplit(t, out, "validation"))
	got := append(append([]string{}, train...), val...)
	want, err := os.ReadFile(expectedPath)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := lines(want)
	sort.Strings(got)
	sort.Strings(wantLines)
	if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Fatalf("train ∪ validation differs from the expected multiset (%d vs %d lines)", len(got), len(wantLines))
	}
	share := float64(len(train)) / float64(len(got))
	if share < 0.78 || share > 0.82 {
		t.Errorf("train share %.3f, want 0.8 ± 0.02", share)
	}
	for _, s := range []string{"train", "validation"} {
		if _, err := os.Stat(filepath.Join(out, s, "_SUCCESS")); err != nil {
			t.Errorf("%s/_SUCCESS: %v", s, err)
		}
	}
	m := readManifest(t, out)
	if m.Seed != 7 || m.Totals.RowsIn != 4177 || m.Totals.RowsOut["train"] != int64(len(train)) || m.SplitMode != "hash" {
		t.Errorf("manifest: seed %d rows %d train %d mode %s", m.Seed, m.Totals.RowsIn, m.Totals.RowsOut["train"], m.SplitMode)
	}
	if _, err := os.Stat(filepath.Join(out, "_shardprep", "model.json")); err != nil {
		t.Error(err)
	}
}

// TestOutputIndependentOfWorkersAndSplits: the same seed gives the same
// bytes for any worker count and split size, and again on a re-run.
func TestOutputIndependentOfWorkersAndSplits(t *testing.T) {
	in := filepath.Join(t.TempDir(), "abalone.csv")
	mustRun(t, "gen", "--rows", "60000", "--seed", "3", "--out", in)
	var ref [2][]byte
	for i, c := range []struct{ workers, split string }{
		{"1", "32MiB"}, {"1", "32MiB"}, {"2", "64KiB"}, {"8", "70001"}, {"2", "1MiB"},
	} {
		out := filepath.Join(t.TempDir(), "out")
		mustRun(t, "run", "--input", in, "--output", out, "--seed", "42", "--workers", c.workers, "--split-size", c.split, "--quiet")
		got := [2][]byte{readSplit(t, out, "train"), readSplit(t, out, "validation")}
		if i == 0 {
			ref = got
			continue
		}
		if !bytes.Equal(got[0], ref[0]) || !bytes.Equal(got[1], ref[1]) {
			t.Errorf("workers %s split size %s: output differs from the first run", c.workers, c.split)
		}
		if c.split == "64KiB" {
			m := readManifest(t, out)
			if len(m.Parts) < 40 {
				t.Errorf("split size 64KiB made %d parts, want ~49", len(m.Parts))
			}
		}
	}
}

func TestOutputExistsIsRefused(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	mustRun(t, "run", "--output", out, "--seed", "1", "--quiet")
	_, _, err := runCLI(t, "run", "--output", out, "--seed", "1", "--quiet")
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("second run: %v, want a refusal naming --overwrite", err)
	}
	mustRun(t, "run", "--output", out, "--seed", "2", "--quiet", "--overwrite")
	if m := readManifest(t, out); m.Seed != 2 {
		t.Errorf("overwritten output has seed %d", m.Seed)
	}
}

func TestSparkSplitMode(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	mustRun(t, "run", "--output", out, "--seed", "42", "--split-mode", "spark", "--quiet")
	train, val := lines(readSplit(t, out, "train")), lines(readSplit(t, out, "validation"))
	if len(train)+len(val) != 4177 {
		t.Fatalf("%d rows", len(train)+len(val))
	}
	// Spark writes each split in the partition's sorted order: by sex
	// (F < I < M, i.e. one-hot 0,0 then 0,1 then 1,0), then the measures.
	if !sort.SliceIsSorted(train, func(i, j int) bool { return sexOrder(train[i]) < sexOrder(train[j]) }) {
		t.Error("spark mode train rows are not in the sorted order")
	}
}

func sexOrder(line string) int {
	f := strings.Split(line, ",")
	switch f[1] + "," + f[2] {
	case "0.0,0.0":
		return 0 // F
	case "0.0,1.0":
		return 1 // I
	}
	return 2 // M
}

func TestGenIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")
	mustRun(t, "gen", "--rows", "1000", "--out", a, "--seed", "3")
	mustRun(t, "gen", "--rows", "1000", "--out", b, "--seed", "3")
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) || len(lines(da)) != 1000 {
		t.Fatalf("gen not deterministic or wrong length (%d lines)", len(lines(da)))
	}
	out := filepath.Join(dir, "out")
	mustRun(t, "run", "--input", a, "--output", out, "--seed", "1", "--quiet")
	if m := readManifest(t, out); m.Totals.RowsIn != 1000 {
		t.Errorf("generated data: %d rows processed", m.Totals.RowsIn)
	}
}

func TestHead(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	mustRun(t, "run", "--output", out, "--seed", "1", "--quiet")
	got := mustRun(t, "head", filepath.Join(out, "train"))
	if n := len(lines([]byte(got))); n != 5 {
		t.Fatalf("head printed %d lines:\n%s", n, got)
	}
	// Flags may follow the location.
	if got3 := mustRun(t, "head", filepath.Join(out, "train"), "-n", "3"); len(lines([]byte(got3))) != 3 {
		t.Errorf("head LOCATION -n 3 printed:\n%s", got3)
	}
	train := lines(readSplit(t, out, "train"))
	if !strings.HasPrefix(strings.Join(train, "\n"), strings.TrimSuffix(got, "\n")) {
		t.Errorf("head output is not the first rows of train")
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"run", "gen", "head"} {
		_, stderr, err := runCLI(t, cmd, "-h")
		if err == nil || !strings.Contains(err.Error(), "help requested") {
			t.Errorf("%s -h: %v", cmd, err)
		}
		if !strings.Contains(stderr, "Usage: shardprep "+cmd) || !strings.Contains(stderr, "Example") {
			t.Errorf("%s -h output lacks usage or examples:\n%s", cmd, stderr)
		}
	}
	out, _, err := runCLI(t, "help")
	if err != nil || !strings.Contains(out, "Commands:") {
		t.Errorf("help: %v\n%s", err, out)
	}
	_, _, err = runCLI(t, "frobnicate")
	if code := cli.ExitCode(err, new(bytes.Buffer)); code != 2 {
		t.Errorf("unknown command exits %d, want 2", code)
	}
}

var _ = fmt.Sprintf
