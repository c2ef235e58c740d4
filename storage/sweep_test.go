package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/shardprep/shardprep/storage"
)

// TestSweepRemovesStagedFiles: a writer's staging file left by a killed
// process is removed by Sweep; finished objects stay.
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
	if err := b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("staged file survived the sweep: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "train", "part-00000")); err != nil {
		t.Errorf("sweep removed a finished object: %v", err)
	}
	if err := storage.NewMemory().Sweep(ctx); err != nil {
		t.Error(err)
	}
}
