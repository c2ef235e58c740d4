package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardprep/shardprep/cmd/shardprep/sample"
)

// TestInputForms: a header row with --header, CRLF line ends, a gzip
// object, a folder with hidden files, and several inputs all give the rows
// of the plain file, in the same encoding.
func TestInputForms(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.csv")
	os.WriteFile(plain, sample.CSV, 0o644)
	ref := filepath.Join(dir, "ref")
	mustRun(t, "run", "--input", plain, "--output", ref, "--seed", "9", "--quiet")
	want := len(lines(readSplit(t, ref, "train"))) + len(lines(readSplit(t, ref, "validation")))

	header := filepath.Join(dir, "header.csv")
	os.WriteFile(header, append([]byte("sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings\r\n"),
		bytes.ReplaceAll(sample.CSV, []byte("\n"), []byte("\r\n"))...), 0o644)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(sample.CSV)
	zw.Close()
	folder := filepath.Join(dir, "folder")
	os.MkdirAll(filepath.Join(folder, "_temporary"), 0o755)
	os.WriteFile(filepath.Join(folder, "abalone.csv.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(folder, "_temporary", "junk.csv"), []byte("not,a,row\n"), 0o644)
	os.WriteFile(filepath.Join(folder, ".hidden.csv"), []byte("not,a,row\n"), 0o644)

	for _, c := range []struct {
		name string
		args []string
		rows int
	}{
		{"header and CRLF", []string{"--input", header, "--header"}, want},
		{"gzip folder with hidden files", []string{"--input", folder}, want},
		{"two inputs", []string{"--input", plain, "--input", folder}, 2 * want},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			mustRun(t, append([]string{"run", "--output", out, "--seed", "9", "--quiet"}, c.args...)...)
			got := len(lines(readSplit(t, out, "train"))) + len(lines(readSplit(t, out, "validation")))
			if got != c.rows {
				t.Errorf("%d rows, want %d", got, c.rows)
			}
			m := readManifest(t, out)
			for _, in := range m.Inputs {
				if strings.Contains(in.URL, "_temporary") || strings.Contains(in.URL, ".hidden") {
					t.Errorf("hidden object %s was read", in.URL)
				}
			}
		})
	}
}
