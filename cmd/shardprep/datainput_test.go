package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests in this file run the built binary on bad or awkward input, as
// a user would, and check what it exits with, what it says and what it
// leaves in the output.

// binRun runs the built shardprep with args (runBin without the
// environment and stdout) and returns its exit code and its stderr.
func binRun(t *testing.T, args ...string) (code int, stderr string) {
	t.Helper()
	_, stderr, code = runBin(t, baseEnv(), args...)
	return code, stderr
}

// binOK runs the built shardprep with args and fails t unless it exits 0.
func binOK(t *testing.T, args ...string) {
	t.Helper()
	if code, stderr := binRun(t, args...); code != 0 {
		t.Fatalf("shardprep %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
}

// errorLine returns the last line of a failed run's standard error (its
// error) and fails t unless it is the error's only line.
func errorLine(t *testing.T, stderr string) string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "shardprep: ") {
		t.Fatalf("no error line at the end of:\n%s", stderr)
	}
	for _, l := range lines[:len(lines)-1] {
		if strings.HasPrefix(l, "shardprep: ") || !strings.HasPrefix(l, "{") {
			t.Errorf("more than one line of error text: %q", l)
		}
	}
	return last
}

// genRows writes rows generated rows to dir/gen.csv and returns them,
// each with its "\n".
func genRows(t *testing.T, dir string, rows int) [][]byte {
	t.Helper()
	path := filepath.Join(dir, "gen.csv")
	binOK(t, "gen", "--rows", fmt.Sprint(rows), "--seed", "4", "--out", path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data[:len(data)-1], []byte("\n"))
}

func writeFile(t *testing.T, path string, parts ...[]byte) string {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(parts, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLongLineBinary: a 2 MB line is an invalid row. With --on-invalid
// skip the job exits 0, the line is in _rejected with its line number,
// offset, its length in the reason and its first 1 KiB, and every other
// row is written exactly as if the line were blank. With error the job
// exits 1 with one line naming the object, the line and the length, and
// leaves nothing.
func TestLongLineBinary(t *testing.T) {
	dir := t.TempDir()
	rows := genRows(t, dir, 20000)
	long := []byte("F," + strings.Repeat("0", 2<<20) + ",0.4,0.1,0.5,0.2,0.1,0.15,9")
	before, after := bytes.Join(rows[:5000], nil), bytes.Join(rows[5000:], nil)
	// The same object name: the draws depend on it.
	in := writeFile(t, filepath.Join(t.TempDir(), "data.csv"), before, long, []byte("\n"), after)
	blank := writeFile(t, filepath.Join(t.TempDir(), "data.csv"), before, bytes.Repeat([]byte("\n"), len(long)+1), after)
	common := []string{"--seed", "9", "--split-size", "64KiB", "--workers", "2", "--quiet"}

	out, ref := filepath.Join(dir, "out"), filepath.Join(dir, "ref")
	binOK(t, append([]string{"run", "--input", in, "--output", out, "--on-invalid", "skip"}, common...)...)
	binOK(t, append([]string{"run", "--input", blank, "--output", ref}, common...)...)
	sameParts(t, partsOf(t, ref), partsOf(t, out))
	if m := readManifest(t, out); m.Totals.Rejected != 1 || m.Totals.RowsIn != 20000 {
		t.Errorf("manifest: %d rejected, %d rows in; want 1 and 20000", m.Totals.Rejected, m.Totals.RowsIn)
	}
	var rejected []string
	files, _ := filepath.Glob(filepath.Join(out, "_rejected", "part-*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		rejected = append(rejected, lines(b)[1:]...)
	}
	if len(rejected) != 1 {
		t.Fatalf("%d rejected rows, want 1", len(rejected))
	}
	f := strings.Split(rejected[0], "\t")
	reason := fmt.Sprintf("the line is %d bytes long, longer than the limit of 1048576 bytes", len(long))
	if len(f) != 6 || f[0] != in || f[1] != "5001" || f[2] != fmt.Sprint(len(before)) || !strings.HasPrefix(f[4], reason) ||
		f[5] != string(long[:1024]) {
		t.Errorf("rejected row %.300q: want line 5001, offset %d, reason %q, the first 1024 bytes", rejected[0], len(before), reason)
	}

	failed := filepath.Join(dir, "failed")
	code, stderr := binRun(t, append([]string{"run", "--input", in, "--output", failed, "--on-invalid", "error"}, common...)...)
	msg := errorLine(t, stderr)
	if want := "shardprep: " + in + ": line 5001: " + reason; code != 1 || !strings.HasPrefix(msg, want) {
		t.Errorf("exit %d, %q; want 1, %q", code, msg, want)
	}
	if files := committedFiles(t, failed); len(files) > 0 {
		t.Errorf("the failed job left %q", files)
	}
}

// TestBrokenGzipBinary: a truncated or corrupt .gz input fails the job at
// once (not retried), with one line naming the object and what is wrong
// with it, exit 1, under either policy; nothing is left in the output.
func TestBrokenGzipBinary(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Join(genRows(t, dir, 20000), nil))
	zw.Close()
	gz := buf.Bytes()
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(gz)
		f(b)
		return b
	}
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"truncated", gz[:len(gz)/2]},
		{"bad block", edit(func(b []byte) { b[10] = 0x07 })},
		{"bad checksum", edit(func(b []byte) { b[len(b)-8] ^= 0xFF })},
	} {
		for _, policy := range []string{"error", "skip"} {
			t.Run(c.name+" "+policy, func(t *testing.T) {
				in := writeFile(t, filepath.Join(t.TempDir(), "data.csv.gz"), c.data)
				out := filepath.Join(t.TempDir(), "out")
				code, stderr := binRun(t, "run", "--input", in, "--output", out, "--seed", "1", "--workers", "2",
					"--on-invalid", policy, "--quiet", "--log-format", "json")
				msg := errorLine(t, stderr)
				if want := "shardprep: " + in + ": the gzip stream is truncated or corrupt: "; code != 1 || !strings.HasPrefix(msg, want) {
					t.Errorf("exit %d, %q; want 1, %q", code, msg, want)
				}
				if strings.Contains(msg, "attempt 3") || strings.Contains(msg, "failed 3 times") || strings.Contains(stderr, "(attempt 2)") ||
					strings.Count(stderr, `"msg":"data error; the job fails"`) != 1 {
					t.Errorf("the data error was retried, or not taken for one:\n%s", stderr)
				}
				if files := committedFiles(t, out); len(files) > 0 {
					t.Errorf("the failed job left %q", files)
				}
			})
		}
	}
}

// TestSplitSizeBoundsBinary: a --split-size below 64KiB is a usage error
// (exit 2) that names the flag and the minimum, and so is a split size
// that would cut the input into more than 100,000 splits, which also says
// what size would do; neither touches the output, not even with
// --overwrite.
func TestSplitSizeBoundsBinary(t *testing.T) {
	dir := t.TempDir()
	small := writeFile(t, filepath.Join(dir, "small.csv"), bytes.Join(genRows(t, dir, 100), nil))
	for _, size := range []string{"1", "65535", "1KiB"} {
		out := filepath.Join(dir, "out-"+size)
		code, stderr := binRun(t, "run", "--input", small, "--output", out, "--split-size", size, "--quiet")
		msg := errorLine(t, stderr)
		if code != 2 || !strings.Contains(msg, "--split-size ") || !strings.Contains(msg, "is below the minimum of 65536 (64KiB)") {
			t.Errorf("--split-size %s: exit %d, %q", size, code, msg)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("--split-size %s: the refused job made its output", size)
		}
	}

	// A sparse 7 GiB object: 114,688 splits of 64 KiB.
	big := filepath.Join(dir, "big.csv")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(7 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out")
	binOK(t, "run", "--input", small, "--output", out, "--quiet")
	code, stderr := binRun(t, "run", "--input", big, "--output", out, "--overwrite", "--split-size", "64KiB", "--quiet")
	msg := errorLine(t, stderr)
	want := "shardprep: --split-size 64KiB would cut the input (1 object, 7GiB) into 114688 splits, more than the 100000 a job may have: use --split-size 74KiB or more"
	if code != 2 || msg != want {
		t.Errorf("exit %d, %q; want 2, %q", code, msg, want)
	}
	committed(t, out)
}

// TestSIGTERMManySplitsBinary: a job of about 1,600 splits (64 KiB splits
// over ~100 MB) stops within seconds of SIGTERM, exits 130 and leaves
// nothing in its output.
func TestSIGTERMManySplitsBinary(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	binOK(t, "gen", "--rows", "2000000", "--seed", "8", "--out", in)
	out := filepath.Join(dir, "out")
	p := start(t, "run", baseEnv(), shardprepBin(t), "run", "--input", in, "--output", out, "--seed", "2",
		"--split-size", "64KiB", "--workers", "2", "--log-format", "json")
	begun := time.Now()
	// Stop it once it writes output, or after 5 seconds anyway.
	p.await(60*time.Second, func() bool {
		return len(committedFiles(t, out)) > 0 && time.Since(begun) > time.Second || time.Since(begun) > 5*time.Second
	})
	if _, done := p.exited(); done {
		t.Fatalf("the job ended before it was stopped:\n%s", p.errText())
	}
	p.signal(t, syscall.SIGTERM)
	stopped := time.Now()
	code := p.wait(t, 60*time.Second)
	at, _ := p.exited()
	took := at.Sub(stopped)
	t.Logf("exit %d %s after SIGTERM", code, took.Round(time.Millisecond))
	if code != 130 || took > 10*time.Second {
		t.Errorf("exit %d %s after SIGTERM; want 130 within 10s\n%s", code, took, lastLines(p.errText(), 3))
	}
	if msg := errorLine(t, p.errText()); !strings.Contains(msg, "interrupted; nothing was committed") {
		t.Errorf("error: %q", msg)
	}
	if files := committedFiles(t, out); len(files) > 0 {
		t.Errorf("the stopped job left %d files, e.g. %s", len(files), files[0])
	}
}

// TestHeaderAfterBlankLinesBinary: with --header the header is the first
// non-blank line of the object: after blank lines, a BOM and CRLF ends it
// is skipped and the rows are written exactly as if it were blank; without
// --header the same input is refused at the header's line.
func TestHeaderAfterBlankLinesBinary(t *testing.T) {
	dir := t.TempDir()
	rows := genRows(t, dir, 5000)
	body := bytes.Join(rows, nil)
	crlf := bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
	header := "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings"
	for _, c := range []struct {
		name, before, term string
		body               []byte
		line               int
	}{
		{"blank first line", "\n", "\n", body, 2},
		{"bom and blank line", "\uFEFF\n", "\n", body, 2},
		{"crlf blank lines", "\r\n\r\n", "\r\n", crlf, 3},
		{"bom crlf", "\uFEFF\r\n", "\r\n", crlf, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := writeFile(t, filepath.Join(t.TempDir(), "h.csv"), []byte(c.before+header+c.term), c.body)
			blank := writeFile(t, filepath.Join(t.TempDir(), "h.csv"),
				[]byte(c.before+strings.Repeat("\n", len(header)+len(c.term))), c.body)
			out, ref := filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "ref")
			common := []string{"--seed", "6", "--split-size", "64KiB", "--quiet"}
			binOK(t, append([]string{"run", "--input", in, "--output", out, "--header"}, common...)...)
			binOK(t, append([]string{"run", "--input", blank, "--output", ref}, common...)...)
			sameParts(t, partsOf(t, ref), partsOf(t, out))
			if m := readManifest(t, out); m.Totals.RowsIn != 5000 || m.Totals.Rejected != 0 {
				t.Errorf("manifest: %d rows in, %d rejected; want 5000 and 0", m.Totals.RowsIn, m.Totals.Rejected)
			}
			code, stderr := binRun(t, append([]string{"run", "--input", in, "--output", filepath.Join(t.TempDir(), "no")}, common...)...)
			msg := errorLine(t, stderr)
			if want := fmt.Sprintf("%s: line %d: the first line looks like a header row", in, c.line); code != 1 || !strings.Contains(msg, want) {
				t.Errorf("without --header: exit %d, %q; want 1, %q", code, msg, want)
			}
		})
	}
}
