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

// localLeftovers counts the hidden files beside key that belong to it,
// such as writers' temporary files.
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
