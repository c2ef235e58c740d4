package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden help transcripts in testdata/help")

// TestHelpTranscripts pins every command's help text: a change to a flag or
// its wording shows up here, and `go test -run TestHelpTranscripts -update`
// records the new text for review.
func TestHelpTranscripts(t *testing.T) {
	saved := defaultWorkers
	defaultWorkers = func() int { return 4 }
	defer func() { defaultWorkers = saved }()
	for _, cmd := range []string{"help", "run", "coordinator", "worker", "container", "submit", "clean", "report", "head", "gen", "spec"} {
		t.Run(cmd, func(t *testing.T) {
			args := []string{cmd, "-h"}
			if cmd == "help" {
				args = []string{"help"}
			}
			stdout, stderr, _ := runCLI(t, args...)
			got := stdout + stderr
			path := filepath.Join("testdata", "help", cmd+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to record it)", err)
			}
			if got != string(want) {
				t.Errorf("help of %s changed; review it and run with -update:\n%s", cmd, got)
			}
		})
	}
}
