package main

import (
	"fmt"
	"runtime/debug"

	"github.com/shardprep/shardprep/pipeline"
)

// commit is the revision the binary was built from when the build could
// not record it itself (scripts/image.sh sets it with -ldflags
// "-X main.commit=..."); the Go toolchain's vcs.revision wins.
var commit string

// versionLine is what "shardprep version" prints: the version, the commit
// the binary was built from and whether its tree had changes
// ("shardprep 0.1.0 (commit 3eedcc1..., modified)"), or "commit unknown".
func versionLine() string {
	rev, modified := commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	switch {
	case rev == "":
		return fmt.Sprintf("shardprep %s (commit unknown)", pipeline.Version)
	case modified:
		return fmt.Sprintf("shardprep %s (commit %s, modified)", pipeline.Version, rev)
	}
	return fmt.Sprintf("shardprep %s (commit %s)", pipeline.Version, rev)
}
