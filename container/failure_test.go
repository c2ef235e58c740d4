package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func readFailure(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "opt", "ml", "output", "message"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteFailure(t *testing.T) {
	root := t.TempDir()
	if err := WriteFailure(root, "read s3://b/abalone.csv:\n  line 12: column rings: \"x\" is not a number\r\n"); err != nil {
		t.Fatal(err)
	}
	got := readFailure(t, root)
	want := `read s3://b/abalone.csv:   line 12: column rings: "x" is not a number`
	if got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	// A second failure replaces the first and leaves no temporary files.
	if err := WriteFailure(root, "second"); err != nil {
		t.Fatal(err)
	}
	if got := readFailure(t, root); got != "second" {
		t.Errorf("message %q after rewrite", got)
	}
	ents, err := os.ReadDir(filepath.Join(root, "opt", "ml", "output"))
	if err != nil || len(ents) != 1 {
		t.Errorf("output dir holds %v (%v), want only message", ents, err)
	}
}

func TestFailureMessageTruncation(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
	}{
		{"ascii", strings.Repeat("a", 5000)},
		{"two-byte runes", strings.Repeat("é", 1000)},
		{"three-byte runes", "x" + strings.Repeat("€", 600)},
		{"four-byte runes", "xy" + strings.Repeat("😀", 400)},
		{"invalid UTF-8", strings.Repeat("\xffa", 2000)},
		{"lines", strings.Repeat("line\n", 500)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := WriteFailure(root, tc.reason); err != nil {
				t.Fatal(err)
			}
			got := readFailure(t, root)
			if len(got) > MaxFailureBytes {
				t.Errorf("%d bytes, want at most %d", len(got), MaxFailureBytes)
			}
			if len(got) < MaxFailureBytes-3-4 {
				t.Errorf("%d bytes: cut more than one rune short of the limit", len(got))
			}
			if !utf8.ValidString(got) {
				t.Errorf("message is not valid UTF-8")
			}
			if strings.ContainsAny(got, "\r\n") {
				t.Errorf("message has a line break")
			}
			if !strings.HasSuffix(got, "...") {
				t.Errorf("truncated message does not end in ...: %q", got[max(0, len(got)-10):])
			}
		})
	}
	if got := FailureMessage(strings.Repeat("b", MaxFailureBytes)); got != strings.Repeat("b", MaxFailureBytes) {
		t.Errorf("a reason of exactly %d bytes was changed", MaxFailureBytes)
	}
	if got := FailureMessage("bad \xffbyte"); got != "bad \uFFFDbyte" {
		t.Errorf("FailureMessage = %q", got)
	}
}

func TestWriteFailureUnwritable(t *testing.T) {
	root := t.TempDir()
	// opt/ml/output is a file, so the directory cannot be made.
	if err := os.MkdirAll(filepath.Join(root, "opt", "ml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "opt", "ml", "output"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFailure(root, "x"); err == nil {
		t.Error("WriteFailure succeeded where the directory cannot exist")
	}
}
