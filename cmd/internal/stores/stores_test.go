package stores

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/shardprep/sample"
	"github.com/shardprep/shardprep/storage"
)

func newTestStores() *Stores {
	return New(storage.S3Config{}, func(string) string { return "" }, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestSampleAndLocalInputs: the bundled sample is one input at SampleURL
// and reads as package sample's bytes; a local folder expands to its
// objects, read through the folder's bucket.
func TestSampleAndLocalInputs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.csv"), []byte("M,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := storage.Root(filepath.Join(t.TempDir(), "out"))
	st := newTestStores()
	objs, err := st.Inputs(ctx, []string{SampleURL, dir}, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].URL != SampleURL || objs[0].Size != int64(len(sample.CSV)) || objs[1].Size != 4 {
		t.Fatalf("inputs %+v", objs)
	}
	src := st.Source(objs)
	for i, want := range [][]byte{sample.CSV, []byte("M,1\n")} {
		r, err := src.NewRangeReader(ctx, objs[i].URL, objs[i].ETag, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s read %d bytes (%v), want %d", objs[i].URL, len(got), err, len(want))
		}
	}
}

// TestSinkPublishesStagedParts: a part staged through Sink is invisible
// until published with the description that crossed the pipeline as
// JSON; a discarded one never appears.
func TestSinkPublishesStagedParts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := newTestStores().Bucket(ctx, storage.Root(dir), true)
	if err != nil {
		t.Fatal(err)
	}
	sink := Sink(b)
	stage := func(key string) []byte {
		w, err := sink.NewStagedWriter(ctx, key, "run1-lease2")
		if err != nil {
			t.Fatal(err)
		}
		if w.Staged() != nil {
			t.Errorf("a description before Close")
		}
		io.WriteString(w, "1,0.5\n")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return w.Staged()
	}
	kept, dropped := stage("train/part-00000"), stage("train/part-00001")
	if _, err := os.Stat(filepath.Join(dir, "train", "part-00000")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a staged part is visible before its publication: %v", err)
	}
	if err := sink.Publish(ctx, kept); err != nil {
		t.Fatal(err)
	}
	if err := sink.Discard(ctx, dropped); err != nil {
		t.Fatal(err)
	}
	if n, err := sink.Size(ctx, "train/part-00000"); err != nil || n != 6 {
		t.Errorf("published part: %d bytes, %v", n, err)
	}
	if _, err := sink.Size(ctx, "train/part-00001"); err == nil {
		t.Errorf("a discarded part is visible")
	}
	if err := sink.Publish(ctx, []byte("{")); err == nil {
		t.Errorf("a broken description was published")
	}
}

func TestCheckAndDisplay(t *testing.T) {
	var ue *cli.UsageError
	if err := Check(storage.S3Config{Credentials: "magic"}); !errors.As(err, &ue) {
		t.Errorf("bad credentials setting: %v, want a usage error", err)
	}
	if err := Check(storage.S3Config{Credentials: "default", GrantsDuration: time.Hour, MaxRetries: 3}); err != nil {
		t.Errorf("default settings: %v", err)
	}
	for root, want := range map[string]string{"/data/out/": "/data/out", "s3://b/p/": "s3://b/p/"} {
		if got := Display(root); got != want {
			t.Errorf("Display(%q) = %q, want %q", root, got, want)
		}
	}
}
