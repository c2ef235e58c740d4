package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/pipeline"
)

const goodRow = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n"

// committedFiles lists the regular files under dir (none after a failure).
func committedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	report := filepath.Join(dir, filepath.FromSlash(pipeline.ReportKey))
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		// A failed job's report is left on purpose (TestReportFailedJob).
		if err == nil && !d.IsDir() && p != report {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func TestBadInput(t *testing.T) {
	long := "M," + strings.Repeat("1", 10<<20) + ",0.365,0.095,0.514,0.2245,0.101,0.15,15\n"
	cases := []struct {
		name   string
		data   string
		want   []string // substrings of the error
		header bool
	}{
		{"field count", goodRow + "M,0.455,0.365\n", []string{"line 2", "expected 9 fields, found 3"}, false},
		{"empty number", goodRow + goodRow + "M,0.455,,0.095,0.514,0.2245,0.101,0.15,15\n", []string{"line 3", `column "diameter"`, "empty"}, false},
		{"not a number", goodRow + "M,0.455,0.365,abc,0.514,0.2245,0.101,0.15,15\n", []string{"line 2", `column "height"`, `"abc"`}, false},
		{"NaN feature", "M,NaN,0.365,0.095,0.514,0.2245,0.101,0.15,15\n", []string{"line 1", `column "length"`, "NaN"}, false},
		{"empty label", goodRow + "\n\n,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n", []string{"line 4", `column "sex"`, "empty"}, false},
		{"header row", "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings\n" + goodRow, []string{"line 1", "header", "--header"}, false},
		{"non-UTF-8", goodRow + "M\xff,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n", []string{"line 2", "UTF-8"}, false},
		{"10 MB line", goodRow + long, []string{"line 2", "longer than"}, false},
		{"only blank lines", "\n\n\r\n\n", []string{"no rows"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "data.csv")
			if err := os.WriteFile(in, []byte(c.data), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			_, _, err := runCLI(t, "run", "--input", in, "--output", out, "--seed", "1", "--quiet")
			if err == nil {
				t.Fatal("bad input was accepted")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range append(c.want, in) {
				if w == in && c.name == "only blank lines" {
					continue
				}
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if files := committedFiles(t, out); len(files) > 0 {
				t.Errorf("failed run left files: %v", files)
			}
			if code := cli.ExitCode(err, new(bytes.Buffer)); code == 0 {
				t.Error("exit code 0")
			}
		})
	}
}

func TestMissingInput(t *testing.T) {
	_, _, err := runCLI(t, "run", "--input", "/nonexistent/abalone.csv", "--output", t.TempDir()+"/out", "--quiet")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/abalone.csv") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing input: %v", err)
	}
}

func TestSkipPolicyKeepsRejectedRows(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "data.csv")
	bad1 := "M,0.455,oops,0.095,0.514,0.2245,0.101,0.15,15"
	bad2 := "F,0.455,0.365"
	data := goodRow + bad1 + "\n" + goodRow + bad2 + "\r\n" + "I,0.33,0.255,0.08,0.205,0.0895,0.0395,0.055,7\n"
	if err := os.WriteFile(in, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	mustRun(t, "run", "--input", in, "--output", out, "--seed", "1", "--on-invalid", "skip", "--quiet")
	m := readManifest(t, out)
	if m.Totals.Rejected != 2 || m.Totals.RowsIn != 3 {
		t.Errorf("manifest: %d rejected, %d rows in; want 2 and 3", m.Totals.Rejected, m.Totals.RowsIn)
	}
	got := len(lines(readSplit(t, out, "train"))) + len(lines(readSplit(t, out, "validation")))
	if got != 3 {
		t.Errorf("%d rows written, want 3", got)
	}
	rej, err := os.ReadFile(filepath.Join(out, "_rejected", "part-00000"))
	if err != nil {
		t.Fatal(err)
	}
	rl := lines(rej)
	if len(rl) != 3 { // header + 2
		t.Fatalf("rejected file:\n%s", rej)
	}
	for i, want := range []struct{ line, text, column string }{{"2", bad1, "diameter"}, {"4", bad2, ""}} {
		f := strings.SplitN(rl[i+1], "\t", 6)
		if len(f) != 6 || f[0] != in || f[1] != want.line || f[3] != want.column || f[5] != want.text {
			t.Errorf("rejected row %d = %q, want line %s column %q text %q", i, rl[i+1], want.line, want.column, want.text)
		}
	}
}

// TestUnseenLabelWithSavedModel: new data with a category the saved model
// does not know fails with its place, or is rejected verbatim with skip.
func TestUnseenLabelWithSavedModel(t *testing.T) {
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref")
	mustRun(t, "run", "--output", ref, "--seed", "1", "--quiet")
	model := filepath.Join(ref, "_shardprep", "model.json")
	in := filepath.Join(dir, "new.csv")
	odd := "X,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15"
	os.WriteFile(in, []byte(goodRow+goodRow+odd+"\n"+goodRow), 0o644)

	_, _, err := runCLI(t, "run", "--input", in, "--output", filepath.Join(dir, "a"), "--model", model, "--quiet")
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), `column "sex"`) || !strings.Contains(err.Error(), `"X"`) {
		t.Fatalf("unseen label: %v", err)
	}
	for _, mode := range []string{"hash", "spark"} {
		out := filepath.Join(dir, "b-"+mode)
		mustRun(t, "run", "--input", in, "--output", out, "--model", model, "--on-invalid", "skip", "--split-mode", mode, "--quiet")
		m := readManifest(t, out)
		if m.Totals.Rejected != 1 || m.Totals.RowsIn != 3 || !m.ModelGiven {
			t.Errorf("%s: manifest: rejected %d rows in %d model given %v", mode, m.Totals.Rejected, m.Totals.RowsIn, m.ModelGiven)
		}
		if got := len(lines(readSplit(t, out, "train"))) + len(lines(readSplit(t, out, "validation"))); got != 3 {
			t.Errorf("%s: %d rows written, want 3", mode, got)
		}
		rej, _ := os.ReadFile(filepath.Join(out, "_rejected", "part-00000"))
		if f := strings.SplitN(lines(rej)[1], "\t", 6); f[1] != "3" || f[5] != odd {
			t.Errorf("%s: rejected row: %q", mode, lines(rej)[1])
		}
	}
}
