package storage_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

func writeFiles(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("data of "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func urls(objs []storage.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.URL)
	}
	return out
}

// outputsRule takes a folder holding _meta/ for an output, as shardprep's
// own rule takes _shardprep/.
func outputsRule(keys []string) []string {
	var dirs []string
	for _, k := range keys {
		if i := strings.Index(k, "/_meta/"); i >= 0 && !slices.Contains(dirs, k[:i+1]) {
			dirs = append(dirs, k[:i+1])
		}
	}
	return dirs
}

func TestExpandLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	writeFiles(t, in, "b.csv", "a.csv", "sub/c.csv", "_temporary/x.csv", ".hidden.csv", "sub/.crc",
		"old/_meta/manifest.json", "old/train/part-00000", "out/train/part-00000")
	writeFiles(t, dir, "single.csv", "empty/.keep")
	var log bytes.Buffer
	r := storage.NewRouter(nil)
	objs, err := r.Expand(ctx, []string{in, filepath.Join(dir, "single.csv"), filepath.Join(in, "a.csv")}, &storage.ExpandOptions{
		Output: storage.Root(filepath.Join(in, "out")), Outputs: outputsRule, Log: slog.New(slog.NewTextHandler(&log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	root := in + "/"
	want := []storage.Object{
		{URL: root + "a.csv", Name: "a.csv", Root: root},
		{URL: root + "b.csv", Name: "b.csv", Root: root},
		{URL: root + "sub/c.csv", Name: "sub/c.csv", Root: root},
		{URL: dir + "/single.csv", Name: "single.csv", Root: dir + "/"},
	}
	if len(objs) != len(want) {
		t.Fatalf("Expand: %v, want %v", urls(objs), urls(want))
	}
	for i, o := range objs {
		w := want[i]
		if o.URL != w.URL || o.Name != w.Name || o.Root != w.Root || o.Size != int64(len("data of "+o.Name+"\n")) || o.ETag == "" {
			t.Errorf("object %d: %+v, want %+v with its size and an ETag", i, o, w)
		}
	}
	if !strings.Contains(log.String(), "leaving out earlier shardprep outputs") || !strings.Contains(log.String(), "old/") {
		t.Errorf("log does not name the earlier output left out:\n%s", log.String())
	}
	// Expand routes what it lists.
	rc, err := r.NewRangeReader(ctx, objs[2].URL, objs[2].ETag, 8, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "sub/c.csv\n" {
		t.Errorf("read %q, %v", got, err)
	}

	for _, c := range []struct{ arg, want string }{
		{filepath.Join(dir, "missing"), "input " + filepath.Join(dir, "missing") + ": no such file or folder"},
		{filepath.Join(dir, "empty"), "input " + filepath.Join(dir, "empty") + ": no objects there"},
		{"mem://m/key", "input mem://m/key: unsupported location"},
		{"s3://bucket/key", "s3://bucket/: unsupported location"},
		{"s3:/x", "input s3:/x: malformed URL"},
	} {
		if _, err := r.Expand(ctx, []string{c.arg}, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Expand(%s): %v, want an error containing %q", c.arg, err, c.want)
		}
	}
}

func TestRouterMountsAndRoutes(t *testing.T) {
	ctx := context.Background()
	mem := storage.NewMemory()
	for _, k := range []string{"sample.csv", "more/b.csv", "_hidden/c.csv"} {
		if err := mem.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	r := storage.NewRouter(&storage.RouterOptions{Mounts: map[string]*storage.Bucket{"bundled:": mem}})
	one, err := r.Expand(ctx, []string{"bundled:sample.csv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(one) != 1 || one[0].URL != "bundled:sample.csv" || one[0].Name != "sample.csv" || one[0].Root != "bundled:" || one[0].Size != 10 {
		t.Errorf("one mounted object: %+v", one)
	}
	all, err := r.Expand(ctx, []string{"bundled:"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(urls(all), " "); got != "bundled:more/b.csv bundled:sample.csv" {
		t.Errorf("the whole mount: %s", got)
	}
	if b, err := r.Bucket(ctx, "bundled:", true); err != nil || b != mem {
		t.Errorf("Bucket of the mounted root: %v, %v", b, err)
	}

	// A fresh Router reads only what is routed to it.
	fresh := storage.NewRouter(&storage.RouterOptions{Mounts: map[string]*storage.Bucket{"bundled:": mem}})
	if _, err := fresh.NewRangeReader(ctx, "bundled:sample.csv", "", 0, -1); err == nil {
		t.Error("an object never routed was read")
	}
	fresh.Route("bundled:more/b.csv", "bundled:")
	rc, err := fresh.NewRangeReader(ctx, "bundled:more/b.csv", "", 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "b.c" {
		t.Errorf("routed read: %q", got)
	}

	// Local roots are opened once per direction.
	dir := t.TempDir()
	b1, err1 := r.Bucket(ctx, dir+"/", false)
	b2, err2 := r.Bucket(ctx, dir+"/", false)
	if err1 != nil || err2 != nil || b1 != b2 || b1.String() != dir {
		t.Errorf("Bucket twice: %v %v, %v %v", b1, err1, b2, err2)
	}
}

func TestRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ arg, want string }{
		{"s3://bkt/p", "s3://bkt/p/"},
		{"s3://bkt/p/", "s3://bkt/p/"},
		{"s3://bkt", "s3://bkt/"},
		{"s3a://bkt/x/y", "s3://bkt/x/y/"},
		{"/tmp/out/", "/tmp/out/"},
		{"/tmp/out", "/tmp/out/"},
		{"out", wd + "/out/"},
		{"file:///srv/data", "/srv/data/"},
		{"mem://m/x", ""},
		{"s3://", ""},
		{"", ""},
	} {
		if got := storage.Root(c.arg); got != c.want {
			t.Errorf("Root(%q) = %q, want %q", c.arg, got, c.want)
		}
	}
}

// TestMinIOExpand: an s3:// argument is an object when one has its key,
// else a prefix; the same object under two arguments is listed once.
func TestMinIOExpand(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	client := env.RootClient(t)
	ctx := t.Context()
	root := openMinIO(t, client, env.Bucket, prefix)
	for _, k := range []string{"in/a.csv", "in/sub/b.csv", "in/_SUCCESS", "in.csv"} {
		storagetest.Write(t, root, k, []byte(k))
	}
	var opened []string
	r := storage.NewRouter(&storage.RouterOptions{OpenS3: func(ctx context.Context, bucket, p string, write bool) (*storage.Bucket, error) {
		opened = append(opened, p)
		return storage.OpenS3(bucket, p, &storage.S3Options{Client: client})
	}})
	base := "s3://" + env.Bucket + "/" + prefix
	objs, err := r.Expand(ctx, []string{base + "in", base + "in/a.csv", base + "in.csv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.Object{
		{URL: base + "in/a.csv", Name: "a.csv", Root: base + "in/"},
		{URL: base + "in/sub/b.csv", Name: "sub/b.csv", Root: base + "in/"},
		{URL: base + "in.csv", Name: "in.csv", Root: base},
	}
	if len(objs) != len(want) {
		t.Fatalf("Expand: %v, want %v", urls(objs), urls(want))
	}
	for i, o := range objs {
		if w := want[i]; o.URL != w.URL || o.Name != w.Name || o.Root != w.Root || o.ETag == "" {
			t.Errorf("object %d: %+v, want %+v with an ETag", i, o, w)
		}
	}
	// Each root was opened once, for reading.
	if strings.Join(opened, " ") != prefix+" "+prefix+"in/" {
		t.Errorf("opened %q", opened)
	}
	if _, err := r.Expand(ctx, []string{base + "nothing/here"}, nil); err == nil || !strings.Contains(err.Error(), "no objects there") {
		t.Errorf("empty prefix: %v", err)
	}
}
