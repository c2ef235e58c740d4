package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

func TestCommitConformanceLocal(t *testing.T) {
	storagetest.RunCommitConformance(t, func(t *testing.T) *storage.Bucket {
		b, err := storage.OpenLocal(t.TempDir() + "/root/not/yet/created")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, &storagetest.CommitOptions{Leftovers: localLeftovers})
}

func TestCommitConformanceMemory(t *testing.T) {
	storagetest.RunCommitConformance(t, func(t *testing.T) *storage.Bucket { return storage.NewMemory() }, nil)
}

// localLeftovers counts the hidden files beside key that belong to it:
// stage files and writers' temporary files.
func localLeftovers(t *testing.T, b *storage.Bucket, key string) int {
	t.Helper()
	dir, base := path.Split(key)
	entries, err := os.ReadDir(filepath.Join(b.String(), filepath.FromSlash(dir)))
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "."+base+".") {
			n++
		}
	}
	return n
}

// TestLocalStageFiles: a staged part is the hidden file
// ".NAME.stage-STAGE" beside NAME; Sweep (which removes writers'
// temporary files) leaves it, and Publish renames it.
func TestLocalStageFiles(t *testing.T) {
	b, dir := openLocal(t)
	ctx := t.Context()
	s := storagetest.Stage(t, b, "train/part-00004", "job7-a2", []byte("1,2\n"))
	if got := dirNames(t, filepath.Join(dir, "train")); !slices.Equal(got, []string{".part-00004.stage-job7-a2"}) {
		t.Fatalf("train/ holds %q", got)
	}
	fi, err := os.Stat(filepath.Join(dir, "train", ".part-00004.stage-job7-a2"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("stage file: %v, %v; want mode 0644", fi, err)
	}
	if _, err := b.Sweep(ctx, func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, s); err != nil {
		t.Fatalf("Publish after Sweep: %v", err)
	}
	if got := dirNames(t, filepath.Join(dir, "train")); !slices.Equal(got, []string{"part-00004"}) {
		t.Errorf("after Publish train/ holds %q", got)
	}
	// A file of the user's that only looks like a stage is named so: it
	// is the caller's keep function that must spare other jobs' stages.
	if err := os.WriteFile(filepath.Join(dir, "train", ".part-00004.stage-x.y"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := b.DiscardStages(ctx, "", nil); err != nil || n != 0 {
		t.Errorf("DiscardStages = %d, %v; want 0 (\"x.y\" is no stage id)", n, err)
	}
}

// TestLocalCreateLeavesNoTempFile: Create's temporary file goes, whether
// the claim is won or lost.
func TestLocalCreateLeavesNoTempFile(t *testing.T) {
	b, dir := openLocal(t)
	for i := range 2 {
		err := b.Create(t.Context(), "out/_claim", fmt.Appendf(nil, "job %d", i))
		if (i == 0) != (err == nil) {
			t.Errorf("Create %d: %v", i, err)
		}
	}
	if got := dirNames(t, filepath.Join(dir, "out")); !slices.Equal(got, []string{"_claim"}) {
		t.Errorf("out/ holds %q", got)
	}
}

// ExampleBucket_NewStagedWriter stages a part as a worker does, hands its
// description on, and publishes it as a coordinator does.
func ExampleBucket_NewStagedWriter() {
	ctx := context.Background()
	b := storage.NewMemory()
	w, err := b.NewStagedWriter(ctx, "train/part-00000", "job1-a1")
	if err != nil {
		panic(err)
	}
	fmt.Fprintln(w, "0.5,1")
	if err := w.Close(); err != nil {
		panic(err)
	}
	s := w.Staged() // sent to the coordinator, e.g. as JSON
	objects, _ := b.List(ctx, "")
	fmt.Println("before Publish:", len(objects), "objects")

	if err := b.Publish(ctx, s); err != nil {
		panic(err)
	}
	objects, _ = b.List(ctx, "")
	fmt.Println("after Publish:", objects[0].Key, objects[0].Size, "bytes")
	err = b.Publish(ctx, s)
	fmt.Println("again:", errors.Is(err, fs.ErrNotExist))
	// Output:
	// before Publish: 0 objects
	// after Publish: train/part-00000 6 bytes
	// again: true
}

func ExampleBucket_Create() {
	ctx := context.Background()
	b := storage.NewMemory()
	fmt.Println(b.Create(ctx, "_claim", []byte("job 1")))
	err := b.Create(ctx, "_claim", []byte("job 2"))
	fmt.Println(errors.Is(err, fs.ErrExist))
	// Output:
	// <nil>
	// true
}
