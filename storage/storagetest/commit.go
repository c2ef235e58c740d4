package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"

	"github.com/shardprep/shardprep/storage"
)

// CommitOptions adapts RunCommitConformance to a backend; nil means none.
type CommitOptions struct {
	// Leftovers, when set, counts what the backend holds for key beside
	// its objects: hidden files in the key's folder (local), multipart
	// uploads in progress for the key (S3). The suite checks that writes
	// leave nothing behind.
	Leftovers func(t *testing.T, b *storage.Bucket, key string) int
}

// RunCommitConformance runs the suite of exclusive creates (Create) against
// Buckets made by open, which must return a new, empty Bucket for each call
// (each subtest calls it once). S3 Buckets should be opened with PartSize
// storage.MinPartSize so that the multipart paths run.
func RunCommitConformance(t *testing.T, open func(t *testing.T) *storage.Bucket, opts *CommitOptions) {
	if opts == nil {
		opts = &CommitOptions{}
	}
	c := &commitSuite{opts: opts}
	for _, s := range []struct {
		name string
		run  func(*testing.T, *storage.Bucket)
	}{
		{"CreateExclusive", c.testCreateExclusive},
		{"CreateConcurrent", c.testCreateConcurrent},
	} {
		t.Run(s.name, func(t *testing.T) { s.run(t, open(t)) })
	}
}

type commitSuite struct {
	opts *CommitOptions
}

// left checks that the backend holds want leftovers for key.
func (c *commitSuite) left(t *testing.T, b *storage.Bucket, key string, want int) {
	t.Helper()
	if c.opts.Leftovers == nil {
		return
	}
	if got := c.opts.Leftovers(t, b, key); got != want {
		t.Errorf("%d leftovers of %s, want %d", got, key, want)
	}
}

func (c *commitSuite) testCreateExclusive(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	if err := b.Create(ctx, "_claim", []byte("job one")); err != nil {
		t.Fatalf("first Create: %v", err)
	}
	if err := b.Create(ctx, "_claim", []byte("job two")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Create: %v, want an error wrapping fs.ErrExist", err)
	}
	if got := Read(t, b, "_claim", 0, -1); string(got) != "job one" {
		t.Errorf("claim holds %q, want %q", got, "job one")
	}
	Write(t, b, "written", []byte("x"))
	if err := b.Create(ctx, "written", []byte("y")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over a written object: %v, want fs.ErrExist", err)
	}
	if err := b.Create(ctx, "dir/empty", nil); err != nil {
		t.Errorf("Create of an empty object: %v", err)
	}
	if info, err := b.Stat(ctx, "dir/empty"); err != nil || info.Size != 0 {
		t.Errorf("Stat(dir/empty) = %+v, %v", info, err)
	}
	// Once deleted, the key can be claimed again.
	if err := b.Delete(ctx, "_claim"); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, "_claim", []byte("job three")); err != nil {
		t.Errorf("Create after Delete: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Create(cctx, "cancelled", []byte("x")); err == nil {
		t.Error("Create with a cancelled context succeeded")
	}
	if got := listKeys(t, b, ""); !slices.Equal(got, []string{"_claim", "dir/empty", "written"}) {
		t.Errorf("List = %q", got)
	}
	c.left(t, b, "_claim", 0)
}

func (c *commitSuite) testCreateConcurrent(t *testing.T, b *storage.Bucket) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = b.Create(t.Context(), "_claim", fmt.Appendf(nil, "job %d", i)) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("Creates %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("Create %d: %v, want nil or fs.ErrExist", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no Create succeeded")
	}
	if got, want := string(Read(t, b, "_claim", 0, -1)), fmt.Sprintf("job %d", winner); got != want {
		t.Errorf("claim holds %q, want the winner's %q", got, want)
	}
	c.left(t, b, "_claim", 0)
}
