package storage

import (
	"strings"
	"testing"
)

func FuzzStageKey(f *testing.F) {
	f.Add("train/part-00004", "job1-a2")
	f.Add(".a.stage-b", "c")
	f.Add("a/b/.c", "x-y-z")
	f.Add("a//b", "1")
	f.Fuzz(func(t *testing.T, key, stage string) {
		if checkKeyCommon(key) != nil || strings.HasSuffix(key, "/") || checkStage(stage) != nil {
			return
		}
		k := stageKey(key, stage)
		gotKey, gotStage, ok := parseStageKey(k)
		if !ok || gotKey != key || gotStage != stage {
			t.Fatalf("parseStageKey(%q) = %q, %q, %v; want %q, %q", k, gotKey, gotStage, ok, key, stage)
		}
	})
}
