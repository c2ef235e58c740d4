package storagetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shardprep/shardprep/storage"
)

// CommitOptions adapts RunCommitConformance to a backend; nil means none.
type CommitOptions struct {
	// Leftovers, when set, counts what the backend holds for key beside
	// its objects: hidden files in the key's folder (local), multipart
	// uploads in progress for the key (S3). The suite checks it against
	// the stages of key that should exist, so that a discarded stage or a
	// finished write is known to leave nothing behind.
	Leftovers func(t *testing.T, b *storage.Bucket, key string) int
}

// RunCommitConformance runs the suite of staged writes (NewStagedWriter,
// Publish, Discard, DiscardStages) and exclusive creates (Create) against
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
		{"StagedInvisibleUntilPublish", c.testInvisibleUntilPublish},
		{"StagedEmpty", c.testStagedEmpty},
		{"StagedLarge", c.testStagedLarge},
		{"StagedDiscard", c.testDiscard},
		{"DiscardStages", c.testDiscardStages},
		{"StagedCancel", c.testStagedCancel},
		{"StagedDiscardedWhileWriting", c.testDiscardedWhileWriting},
		{"StagedOnePerStage", c.testOnePerStage},
		{"StagedRejectsBadIDs", c.testBadIDs},
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

// Stage writes data as a staged object of key and stage in odd-sized
// writes, closes it and returns its description, failing the test on any
// error.
func Stage(t testing.TB, b *storage.Bucket, key, stage string, data []byte) storage.Staged {
	t.Helper()
	w, err := b.NewStagedWriter(t.Context(), key, stage)
	if err != nil {
		t.Fatalf("NewStagedWriter(%q, %q): %v", key, stage, err)
	}
	for rest, i := data, 0; len(rest) > 0; i++ {
		n := min(len(rest), 1<<20+i*4099)
		if _, err := w.Write(rest[:n]); err != nil {
			w.Close()
			t.Fatalf("Write(%q): %v", key, err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close(%q, %q): %v", key, stage, err)
	}
	s := w.Staged()
	if s.Key != key || s.Stage != stage || s.Size != int64(len(data)) {
		t.Fatalf("Staged() = key %q, stage %q, size %d; want %q, %q, %d", s.Key, s.Stage, s.Size, key, stage, len(data))
	}
	return s
}

// Stages lists the stages under prefix as "key@stage", sorted, by asking
// DiscardStages to keep every one.
func Stages(t testing.TB, b *storage.Bucket, prefix string) []string {
	t.Helper()
	out := []string{}
	n, err := b.DiscardStages(t.Context(), prefix, func(key, stage string) bool {
		out = append(out, key+"@"+stage)
		return true
	})
	if err != nil || n != 0 {
		t.Fatalf("DiscardStages(%q) keeping all = %d, %v; want 0, nil", prefix, n, err)
	}
	slices.Sort(out)
	return out
}

// viaJSON passes s through JSON, as it travels from worker to coordinator.
func viaJSON(t *testing.T, s storage.Staged) storage.Staged {
	t.Helper()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out storage.Staged
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *commitSuite) testInvisibleUntilPublish(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	const key = "train/part-00004"
	Write(t, b, key, []byte("old version"))
	data := []byte("0.1,0.2,1\n0.3,0.4,0\n")
	s := Stage(t, b, key, "job1-a1", data)
	if got := listKeys(t, b, ""); !slices.Equal(got, []string{key}) {
		t.Errorf("List while staged = %q, want only the old %s", got, key)
	}
	if got := Read(t, b, key, 0, -1); string(got) != "old version" {
		t.Errorf("read while staged = %q, want the old version", got)
	}
	if got := Stages(t, b, ""); !slices.Equal(got, []string{key + "@job1-a1"}) {
		t.Errorf("stages = %q", got)
	}
	c.left(t, b, key, 1)
	if err := b.Publish(ctx, viaJSON(t, s)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := Read(t, b, key, 0, -1); !bytes.Equal(got, data) {
		t.Errorf("after Publish read %q, want %q", got, data)
	}
	if info, err := b.Stat(ctx, key); err != nil || info.Size != int64(len(data)) {
		t.Errorf("Stat after Publish = %+v, %v", info, err)
	}
	if got := listKeys(t, b, ""); !slices.Equal(got, []string{key}) {
		t.Errorf("List after Publish = %q, want [%s]", got, key)
	}
	if got := Stages(t, b, ""); len(got) != 0 {
		t.Errorf("stages after Publish = %q, want none", got)
	}
	c.left(t, b, key, 0)
	if err := b.Publish(ctx, s); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Publish: %v, want an error wrapping fs.ErrNotExist", err)
	}
	if err := b.Discard(ctx, s); err != nil {
		t.Errorf("Discard after Publish: %v, want nil", err)
	}
	if got := Read(t, b, key, 0, -1); !bytes.Equal(got, data) {
		t.Errorf("Discard after Publish changed the object: %q", got)
	}
}

func (c *commitSuite) testStagedEmpty(t *testing.T, b *storage.Bucket) {
	s := Stage(t, b, "empty", "job1-a1", nil)
	if _, err := b.Stat(t.Context(), "empty"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat before Publish: %v, want fs.ErrNotExist", err)
	}
	if err := b.Publish(t.Context(), viaJSON(t, s)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if info, err := b.Stat(t.Context(), "empty"); err != nil || info.Size != 0 {
		t.Errorf("Stat = %+v, %v; want size 0", info, err)
	}
	if got := Read(t, b, "empty", 0, -1); len(got) != 0 {
		t.Errorf("read %q, want nothing", got)
	}
	c.left(t, b, "empty", 0)
}

func (c *commitSuite) testStagedLarge(t *testing.T, b *storage.Bucket) {
	data := pattern(LargeSize, 4)
	s := Stage(t, b, "large/part-00000", "job1-a1", data)
	if s.UploadID != "" && len(s.Parts) != 3 {
		t.Errorf("staged in %d parts, want 3 of storage.MinPartSize", len(s.Parts))
	}
	if got := listKeys(t, b, ""); len(got) != 0 {
		t.Errorf("List before Publish = %q, want nothing", got)
	}
	if err := b.Publish(t.Context(), viaJSON(t, s)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := Read(t, b, "large/part-00000", 0, -1); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, want %d identical bytes", len(got), len(data))
	}
	// A description whose size is wrong is refused, and the stage stays.
	s = Stage(t, b, "large/part-00001", "job1-a1", data[:1000])
	bad := s
	bad.Size++
	if err := b.Publish(t.Context(), bad); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Publish with a wrong size: %v, want a size error", err)
	}
	if err := b.Publish(t.Context(), s); err != nil {
		t.Errorf("Publish after a refused one: %v", err)
	}
}

func (c *commitSuite) testDiscard(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	const key = "train/part-00001"
	s := Stage(t, b, key, "job1-a1", pattern(storage.MinPartSize+1000, 5))
	c.left(t, b, key, 1)
	if err := b.Discard(ctx, viaJSON(t, s)); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	c.left(t, b, key, 0)
	if got := Stages(t, b, ""); len(got) != 0 {
		t.Errorf("stages after Discard = %q", got)
	}
	if got := listKeys(t, b, ""); len(got) != 0 {
		t.Errorf("List after Discard = %q, want nothing", got)
	}
	if err := b.Publish(ctx, s); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Publish after Discard: %v, want an error wrapping fs.ErrNotExist", err)
	}
	if err := b.Discard(ctx, s); err != nil {
		t.Errorf("second Discard: %v, want nil", err)
	}
	if _, err := b.Stat(ctx, key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat: %v, want fs.ErrNotExist", err)
	}
}

func (c *commitSuite) testDiscardStages(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	staged := map[string]storage.Staged{}
	for _, ks := range [][2]string{
		{"out/train/part-00000", "job1-a1"}, {"out/train/part-00000", "job1-a2"},
		{"out/train/part-00000", "job2-a1"}, {"out/validation/part-00000", "job1-a1"},
		{"out/train/part-00001", "job1-a1"}, {"other/part-00000", "job1-a1"},
	} {
		staged[ks[0]+"@"+ks[1]] = Stage(t, b, ks[0], ks[1], []byte(ks[0]+"@"+ks[1]))
	}
	Write(t, b, "out/train/notes.txt", []byte("not a stage"))
	// Keep job 2's stages and job 1's attempt a2.
	var asked []string
	n, err := b.DiscardStages(ctx, "out/train/", func(key, stage string) bool {
		asked = append(asked, key+"@"+stage)
		return !strings.HasPrefix(stage, "job1-") || stage == "job1-a2"
	})
	if err != nil || n != 2 {
		t.Fatalf("DiscardStages = %d, %v; want 2, nil", n, err)
	}
	slices.Sort(asked)
	if want := []string{"out/train/part-00000@job1-a1", "out/train/part-00000@job1-a2",
		"out/train/part-00000@job2-a1", "out/train/part-00001@job1-a1"}; !slices.Equal(asked, want) {
		t.Errorf("keep asked about %q, want %q", asked, want)
	}
	want := []string{"other/part-00000@job1-a1", "out/train/part-00000@job1-a2",
		"out/train/part-00000@job2-a1", "out/validation/part-00000@job1-a1"}
	if got := Stages(t, b, ""); !slices.Equal(got, want) {
		t.Errorf("stages left = %q, want %q", got, want)
	}
	c.left(t, b, "out/train/part-00000", 2)
	c.left(t, b, "out/train/part-00001", 0)
	if got := listKeys(t, b, ""); !slices.Equal(got, []string{"out/train/notes.txt"}) {
		t.Errorf("List = %q: DiscardStages touched an object", got)
	}
	if err := b.Publish(ctx, staged["out/train/part-00001@job1-a1"]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Publish of a discarded stage: %v, want fs.ErrNotExist", err)
	}
	if err := b.Publish(ctx, staged["out/train/part-00000@job1-a2"]); err != nil {
		t.Errorf("Publish of a kept stage: %v", err)
	}
	if got := Read(t, b, "out/train/part-00000", 0, -1); string(got) != "out/train/part-00000@job1-a2" {
		t.Errorf("published %q", got)
	}
	// A prefix that is not a folder; nil keep discards all.
	if n, err := b.DiscardStages(ctx, "out/valid", nil); err != nil || n != 1 {
		t.Errorf("DiscardStages(out/valid, nil) = %d, %v; want 1, nil", n, err)
	}
	if n, err := b.DiscardStages(ctx, "", nil); err != nil || n != 2 {
		t.Errorf("DiscardStages(\"\", nil) = %d, %v; want 2, nil", n, err)
	}
	c.left(t, b, "out/train/part-00000", 0)
	c.left(t, b, "other/part-00000", 0)
}

func (c *commitSuite) testStagedCancel(t *testing.T, b *storage.Bucket) {
	for _, size := range []int{1000, storage.MinPartSize + 1<<20} {
		key := fmt.Sprintf("cancelled/%d", size)
		ctx, cancel := context.WithCancel(t.Context())
		w, err := b.NewStagedWriter(ctx, key, "job1-a1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(pattern(size, 6)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("more")); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := w.Close(); !errors.Is(err, context.Canceled) {
			t.Errorf("%d bytes: Close after cancel: %v, want context.Canceled", size, err)
		}
		if s := w.Staged(); s.Key != "" {
			t.Errorf("%d bytes: Staged() after a failed Close = %+v, want zero", size, s)
		}
		c.left(t, b, key, 0)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if w, err := b.NewStagedWriter(ctx, "cancelled/before", "job1-a1"); err == nil {
		w.Write([]byte("x"))
		if err := w.Close(); err == nil {
			t.Error("staged writer with a cancelled context closed")
		}
	}
	if got := Stages(t, b, ""); len(got) != 0 {
		t.Errorf("stages after cancelled writes = %q, want none", got)
	}
	if got := listKeys(t, b, ""); len(got) != 0 {
		t.Errorf("List = %q, want nothing", got)
	}
}

// testDiscardedWhileWriting: a stage discarded while its writer is still
// writing (a late attempt) cannot be closed, so it is never published.
func (c *commitSuite) testDiscardedWhileWriting(t *testing.T, b *storage.Bucket) {
	const key = "late/part-00000"
	w, err := b.NewStagedWriter(t.Context(), key, "job1-a1")
	if err != nil {
		t.Fatal(err)
	}
	// More than a part: an S3 upload is under way, so the stage is found.
	if _, err := w.Write(pattern(storage.MinPartSize+1000, 7)); err != nil {
		t.Fatal(err)
	}
	if n, err := b.DiscardStages(t.Context(), "late/", nil); err != nil || n != 1 {
		t.Fatalf("DiscardStages = %d, %v; want 1, nil", n, err)
	}
	w.Write([]byte("late data")) // may fail already
	if err := w.Close(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Close of a discarded stage: %v, want an error wrapping fs.ErrNotExist", err)
	}
	if got := Stages(t, b, ""); len(got) != 0 {
		t.Errorf("stages = %q, want none", got)
	}
	c.left(t, b, key, 0)
	if _, err := b.Stat(t.Context(), key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat: %v, want fs.ErrNotExist", err)
	}
}

// testOnePerStage: a key has one staged object per stage, and stages of
// one key are independent.
func (c *commitSuite) testOnePerStage(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	const key = "dup/part-00000"
	w1, err := b.NewStagedWriter(ctx, key, "job1-a1")
	if err != nil {
		t.Fatal(err)
	}
	w1.Write([]byte("first"))
	w2, err := b.NewStagedWriter(ctx, key, "job1-a1")
	if err == nil {
		w2.Write([]byte("second"))
		if err := w1.Close(); err != nil {
			t.Fatalf("Close of the first writer: %v", err)
		}
		err = w2.Close()
	} else if cerr := w1.Close(); cerr != nil {
		t.Fatalf("Close of the first writer: %v", cerr)
	}
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second writer of one key and stage: %v, want an error wrapping fs.ErrExist", err)
	}
	other := Stage(t, b, key, "job1-a2", []byte("other attempt"))
	if err := b.Publish(ctx, w1.Staged()); err != nil {
		t.Fatalf("Publish of the first writer's stage: %v", err)
	}
	if got := Read(t, b, key, 0, -1); string(got) != "first" {
		t.Errorf("read %q, want %q", got, "first")
	}
	if got := Stages(t, b, ""); !slices.Equal(got, []string{key + "@job1-a2"}) {
		t.Errorf("stages = %q, want the other attempt's", got)
	}
	c.left(t, b, key, 1)
	if err := b.Discard(ctx, other); err != nil {
		t.Fatal(err)
	}
	c.left(t, b, key, 0)
}

func (c *commitSuite) testBadIDs(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	for _, stage := range []string{"", "a/b", "a.b", "a_b", "job 1", "é", strings.Repeat("a", storage.MaxStageLen+1)} {
		if w, err := b.NewStagedWriter(ctx, "k", stage); err == nil {
			w.Close()
			t.Errorf("NewStagedWriter(k, %q): no error", stage)
		}
		if err := b.Publish(ctx, storage.Staged{Key: "k", Stage: stage}); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Publish with stage %q: %v, want a validation error", stage, err)
		}
	}
	if w, err := b.NewStagedWriter(ctx, "k", strings.Repeat("a", storage.MaxStageLen)); err != nil {
		t.Errorf("stage of %d characters: %v", storage.MaxStageLen, err)
	} else if err := w.Close(); err != nil {
		t.Error(err)
	} else if err := b.Discard(ctx, w.Staged()); err != nil {
		t.Error(err)
	}
	for _, key := range []string{"", "/abs", "dir/"} {
		if _, err := b.NewStagedWriter(ctx, key, "job1-a1"); err == nil {
			t.Errorf("NewStagedWriter(%q): no error", key)
		}
	}
	// A description does not carry over to another key.
	s := Stage(t, b, "k", "job1-a1", []byte("k's data"))
	moved := s
	moved.Key = "k2"
	if err := b.Publish(ctx, moved); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Publish of a stage never written: %v, want fs.ErrNotExist", err)
	}
	if got := listKeys(t, b, ""); len(got) != 0 {
		t.Errorf("List = %q, want nothing", got)
	}
	if err := b.Discard(ctx, s); err != nil {
		t.Error(err)
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
