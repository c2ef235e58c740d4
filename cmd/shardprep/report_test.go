package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/shardprep/shardprep/cmd/shardprep/sample"
	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/pipeline"
)

// reportText checks that the report at path is small, well formed (every
// element closed in order, void elements aside) and self-contained (no
// URL, script, link, image or CSS import), and returns its text.
func reportText(t *testing.T, path string) (text string, raw []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 1<<20 {
		t.Errorf("%s: %d bytes, want under 1 MiB", path, len(raw))
	}
	lower := strings.ToLower(string(raw))
	for _, bad := range []string{"http:", "https:", "//cdn", "url(", "@import", "<script", "<link", "<img", "<iframe", " src=", " href="} {
		if strings.Contains(lower, bad) {
			t.Errorf("%s holds %q: the report must be self-contained", path, bad)
		}
	}
	void := map[string]bool{"meta": true, "br": true, "hr": true, "input": true, "wbr": true, "col": true}
	var stack []string
	var sb strings.Builder
	z := html.NewTokenizer(bytes.NewReader(raw))
	for {
		switch z.Next() {
		case html.ErrorToken:
			if len(stack) != 0 {
				t.Errorf("%s: elements left open at the end: %v", path, stack)
			}
			return sb.String(), raw
		case html.StartTagToken:
			name, _ := z.TagName()
			if !void[string(name)] {
				stack = append(stack, string(name))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(stack) == 0 || stack[len(stack)-1] != string(name) {
				t.Fatalf("%s: </%s> closes %v", path, name, stack)
			}
			stack = stack[:len(stack)-1]
		case html.TextToken:
			sb.Write(z.Text())
			sb.WriteByte(' ')
		}
	}
}

// grouped writes n as the report does: thin spaces between thousands.
func grouped(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u2009")
		}
		b.WriteRune(c)
	}
	return b.String()
}

// checkReportNumbers asserts that the report's text shows the manifest's
// figures.
func checkReportNumbers(t *testing.T, text string, m *pipeline.Manifest) {
	t.Helper()
	want := []string{"rows in " + grouped(m.Totals.RowsIn+m.Totals.Rejected), "rejected " + grouped(m.Totals.Rejected),
		fmt.Sprintf("%d (%s split", m.Seed, m.SplitMode), grouped(m.Totals.BytesIn) + " bytes",
		fmt.Sprintf("%d reassigned", len(m.Reassigned))}
	for _, s := range m.Spec.Splits {
		n := m.Totals.RowsOut[s.Name]
		want = append(want, fmt.Sprintf("%s %s (%.1f%%)", s.Name, grouped(n), 100*float64(n)/float64(m.Totals.RowsIn)))
	}
	for _, col := range m.Model.CategoricalColumns() {
		labels, counts := m.Model.Labels(col)
		for i, l := range labels {
			want = append(want, fmt.Sprintf("%q %s", l, grouped(counts[i])))
		}
	}
	g := func(v *float64) string { return fmt.Sprintf("%.6g", *v) }
	for _, c := range m.Columns.Numeric() {
		want = append(want, fmt.Sprintf("%s %s 0 %s %s %s %s", c.Column, grouped(c.Count), g(c.Min), g(c.Max), g(c.Mean), g(c.Std)))
	}
	_, splits := m.Columns.Label()
	for _, c := range splits {
		want = append(want, fmt.Sprintf("%s: %s rows, mean %s, std %s", c.Column, grouped(c.Count), g(c.Mean), g(c.Std)))
	}
	for _, r := range m.Rejections.Counts {
		want = append(want, fmt.Sprintf("%s %s", r.Reason, grouped(r.Rows)))
	}
	for _, r := range m.Rejections.First {
		want = append(want, fmt.Sprintf("line %d", r.Line), r.Text)
	}
	flat := strings.Join(strings.Fields(text), " ")
	for _, w := range want {
		if !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
			t.Errorf("the report does not show %q", w)
		}
	}
}

// screenshot renders the report at path in headless Chromium to a PNG and
// checks that it is as large as the window and far from blank. Without
// Chromium the test skips, except under CI, where it fails.
func screenshot(t *testing.T, path, png string) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (Debian package chromium; .ci/run installs it)")
		}
		t.Skip("chromium is not installed (Debian package chromium)")
	}
	abs, _ := filepath.Abs(path)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--window-size=1000,2400", "--screenshot="+png, "file://"+abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	checkScreenshot(t, png)
}

func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1000 || b.Dy() != 2400 {
		t.Errorf("screenshot %v, want 1000x2400", b)
	}
	bg := img.At(0, 0)
	colors := map[[3]uint32]bool{}
	inked := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := img.At(x, y)
			if !sameColor(c, bg) {
				inked++
			}
			r, g, bl, _ := c.RGBA()
			colors[[3]uint32{r >> 12, g >> 12, bl >> 12}] = true
		}
	}
	if share := float64(inked) / float64(b.Dx()*b.Dy()); share < 0.03 || len(colors) < 20 {
		t.Errorf("screenshot looks blank: %.1f%% of pixels drawn, %d colours", 100*share, len(colors))
	}
}

func sameColor(a, b interface{ RGBA() (r, g, b, a uint32) }) bool {
	r1, g1, b1, _ := a.RGBA()
	r2, g2, b2, _ := b.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2
}

var _ image.Image // the PNG decoder registers through image/png

// TestReportSample: the bundled sample's job leaves a report showing its
// manifest's figures, which `shardprep report` rebuilds the same, and
// which Chromium renders.
func TestReportSample(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	mustRun(t, "run", "--seed", "42", "--output", out, "--quiet")
	path := filepath.Join(out, "_shardprep", "report.html")
	text, _ := reportText(t, path)
	m := readManifest(t, out)
	if m.Layout != 2 || len(m.Attempts) != fitTasks(m)+len(m.Parts) || m.Columns == nil { // the fit's tasks and a transform per split
		t.Fatalf("manifest version %d, %d attempts, columns %v", m.Layout, len(m.Attempts), m.Columns != nil)
	}
	checkReportNumbers(t, text, m)
	if !strings.Contains(text, "Committed to") {
		t.Error("the report does not say the job committed")
	}
	os.Remove(path)
	stdout := mustRun(t, "report", out)
	if !strings.Contains(stdout, "wrote "+path) {
		t.Errorf("report printed %q, want where it wrote", stdout)
	}
	if again, _ := reportText(t, path); again != text {
		t.Error("the rebuilt report differs from the job's")
	}
	other := filepath.Join(t.TempDir(), "r.html")
	mustRun(t, "report", "-o", other, out)
	screenshot(t, other, filepath.Join(t.TempDir(), "report.png"))
}

// TestReportSkipPolicy: a job that rejects rows shows their counts by
// reason and the first ones verbatim, with object and line.
func TestReportSkipPolicy(t *testing.T) {
	dir := t.TempDir()
	sample, err := os.ReadFile("sample/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.SplitAfter(string(sample), "\n")
	bad := []string{"M,0.455,0.365,0.1o5,0.514,0.2245,0.101,0.15,15\n", "F,0.5,0.4\n", ",0.5,0.4,0.1,0.5,0.2,0.1,0.15,9\n"}
	var in strings.Builder
	for i, l := range ls {
		in.WriteString(l)
		if i%1000 == 10 {
			in.WriteString(bad[(i/1000)%len(bad)])
		}
	}
	input := filepath.Join(dir, "dirty.csv")
	if err := os.WriteFile(input, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	mustRun(t, "run", "--input", input, "--output", out, "--seed", "3", "--on-invalid", "skip", "--split-size", "64KiB", "--workers", "2", "--quiet")
	m := readManifest(t, out)
	if m.Totals.Rejected != 5 || len(m.Rejections.First) != 5 || len(m.Rejections.Counts) != 3 {
		t.Fatalf("rejected %d, rejections %+v", m.Totals.Rejected, m.Rejections)
	}
	if r := m.Rejections.First[0]; r.Line != 12 || r.Object != input || r.Text != strings.TrimSuffix(bad[0], "\n") {
		t.Errorf("first rejected row %+v, want line 12 of %s: %q", r, input, bad[0])
	}
	path := filepath.Join(out, "_shardprep", "report.html")
	text, _ := reportText(t, path)
	checkReportNumbers(t, text, m)
	screenshot(t, path, filepath.Join(dir, "report.png"))
}

// TestReportColumnStatsExact: the column statistics equal a reference
// computed here from the input and the output, and are the same bytes for
// 1, 2 and 8 workers and any split size.
func TestReportColumnStatsExact(t *testing.T) {
	in := testData(t)
	var first []byte
	for _, run := range []struct{ workers, split string }{{"1", "64KiB"}, {"2", "256KiB"}, {"8", "1MiB"}, {"2", "32MiB"}} {
		out := filepath.Join(t.TempDir(), "out")
		mustRun(t, "run", "--input", in, "--output", out, "--seed", "9", "--workers", run.workers, "--split-size", run.split, "--quiet")
		m := readManifest(t, out)
		got, err := m.Columns.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = got
			checkColumnsReference(t, in, out, m.Columns)
		} else if !bytes.Equal(got, first) {
			t.Errorf("--workers %s --split-size %s: column statistics differ from the first run's", run.workers, run.split)
		}
	}
}

// checkColumnsReference recomputes the stats: the numeric columns from
// the input CSV, the label per split from the output parts.
func checkColumnsReference(t *testing.T, input, out string, cs *features.ColumnStats) {
	t.Helper()
	data, err := os.ReadFile(input)
	if err != nil {
		t.Fatal(err)
	}
	spec := sample.Spec()
	refs := make([]*exactRef, len(spec.Numeric))
	for i := range refs {
		refs[i] = newExactRef()
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		for i := range spec.Numeric {
			refs[i].add(t, f[i+1])
		}
	}
	for i, c := range cs.Numeric() {
		refs[i].check(t, c)
	}
	_, splits := cs.Label()
	for _, c := range splits {
		ref := newExactRef()
		for _, l := range lines(readSplit(t, out, c.Column)) {
			ref.add(t, l[:strings.IndexByte(l, ',')])
		}
		ref.check(t, c)
	}
}

// TestReportFailedJob: a job that fails on a bad row commits nothing and
// leaves its report, as far as it got, under the report's usual name in
// its local output, and says where; a later job to that output replaces
// it without --overwrite.
func TestReportFailedJob(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(input, []byte("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\nF,0.5,0.4,0.1o5,0.5,0.2,0.1,0.15,9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	stdout, stderr, code := runBin(t, append(baseEnv(), "TMPDIR="+dir), "run", "--input", input, "--output", out, "--job-name", "broken")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	report := filepath.Join(out, "_shardprep", "report.html")
	if !strings.Contains(stdout, "the failed job's report: "+report+"\n") {
		t.Fatalf("stdout does not name %s:\n%s", report, stdout)
	}
	text, _ := reportText(t, report)
	if !strings.Contains(text, "Failed:") || !strings.Contains(text, `not a number: "0.1o5"`) {
		t.Errorf("the failed job's report does not say why it failed:\n%.2000s", text)
	}
	var left []string
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if !slices.Equal(left, []string{report}) {
		t.Errorf("the failed job left %v in its output, want only its report", left)
	}
	if err := os.WriteFile(input, []byte(sample.CSV), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runBin(t, baseEnv(), "run", "--input", input, "--output", out, "--quiet"); code != 0 {
		t.Fatalf("a job after the failed one: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "_SUCCESS")); err != nil {
		if m, _ := filepath.Glob(filepath.Join(out, "*", "_SUCCESS")); len(m) == 0 {
			t.Errorf("the job after the failed one did not commit: %v", err)
		}
	}
	if text, _ := reportText(t, report); strings.Contains(text, "Failed:") {
		t.Errorf("the committed job's report is still the failed one's")
	}
}
