package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/shardprep/shardprep/storage"
)

// TestSweepRemovesStagedFiles: a writer's staging file left by a killed
// process is removed by Sweep when its key is owned; finished objects, the
// staging files of other keys and files merely named like one stay.
func TestSweepRemovesStagedFiles(t *testing.T) {
	dir := t.TempDir()
	b, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, err := b.NewWriter(ctx, "train/part-00000")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("1.0\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "train", ".part-00001.tmp-12345")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "train", ".part-00002.tmp-12345")
	foreign := filepath.Join(dir, ".cfg.tmp-1")
	for _, p := range []string{other, foreign} {
		if err := os.WriteFile(p, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	owned := func(key string) bool { return key == "train/part-00000" || key == "train/part-00001" }
	if n, err := b.Sweep(ctx, owned); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1, nil", n, err)
	}
	for _, p := range []string{other, foreign} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("sweep removed %s, not an owned key's: %v", p, err)
		}
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("staged file survived the sweep: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "train", "part-00000")); err != nil {
		t.Errorf("sweep removed a finished object: %v", err)
	}
	if _, err := storage.NewMemory().Sweep(ctx, owned); err != nil {
		t.Error(err)
	}
}
