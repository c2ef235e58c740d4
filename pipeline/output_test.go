package pipeline

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestCheckOutput: an output holding objects is refused, unless
// overwrite is set: then it is emptied, the _SUCCESS markers first. A
// published cluster secret does not count and stays.
func TestCheckOutput(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	store := newMemStore()
	store.objects[ClusterSecretKey("j")] = []byte("secret")
	if err := CheckOutput(ctx, store, "out", false, log); err != nil {
		t.Fatalf("an output holding only the cluster secret: %v", err)
	}
	for _, k := range []string{"train/part-00000", "train/" + SuccessName, ManifestKey} {
		store.objects[k] = nil
	}
	err := CheckOutput(ctx, store, "out", false, log)
	if err == nil || !strings.Contains(err.Error(), "already exists (3 objects)") {
		t.Fatalf("an existing output: %v", err)
	}
	var deleted []string
	del := &deleteLog{memStore: store, deleted: &deleted}
	if err := CheckOutput(ctx, del, "out", true, log); err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 3 || deleted[0] != "train/"+SuccessName {
		t.Errorf("deleted %v, want the marker first, then the rest", deleted)
	}
	if keys := store.keys(); len(keys) != 1 || keys[0] != ClusterSecretKey("j") {
		t.Errorf("left %v, want only the cluster secret", keys)
	}
}

type deleteLog struct {
	*memStore
	deleted *[]string
}

func (d *deleteLog) Delete(ctx context.Context, key string) error {
	*d.deleted = append(*d.deleted, key)
	return d.memStore.Delete(ctx, key)
}

// TestCommitted: an output counts as committed by a job when its manifest
// names the job and every split has its _SUCCESS marker.
func TestCommitted(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	job := abaloneJob(t, store, &Settings{Name: "j1", Seed: 5})
	if _, err := Run(ctx, job, store, store, nil); err != nil {
		t.Fatal(err)
	}
	if !Committed(ctx, store, "j1") || Committed(ctx, store, "j2") {
		t.Errorf("committed by j1: %v, by j2: %v; want true, false", Committed(ctx, store, "j1"), Committed(ctx, store, "j2"))
	}
	delete(store.objects, "validation/"+SuccessName)
	if Committed(ctx, store, "j1") {
		t.Error("an output without a split's marker counts as committed")
	}
}
