package storage_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

func openLocal(t *testing.T) (*storage.Bucket, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

// dirNames lists the names in dir, hidden files included.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestLocalStagesInHiddenTempFile(t *testing.T) {
	b, dir := openLocal(t)
	w, err := b.NewWriter(t.Context(), "train/part-00000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("15.0,1.0,0.0\n")); err != nil {
		t.Fatal(err)
	}
	names := dirNames(t, filepath.Join(dir, "train"))
	if len(names) != 1 || !strings.HasPrefix(names[0], ".part-00000.tmp-") {
		t.Fatalf("during write the folder holds %q, want one .part-00000.tmp-* file", names)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, filepath.Join(dir, "train")); !slices.Equal(names, []string{"part-00000"}) {
		t.Errorf("after Close the folder holds %q, want [part-00000]", names)
	}
	fi, err := os.Stat(filepath.Join(dir, "train", "part-00000"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o044 != 0o044 {
		t.Errorf("committed file mode %v, want it readable by group and others like a normal output file", fi.Mode())
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "train", "part-00000")); string(got) != "15.0,1.0,0.0\n" {
		t.Errorf("file holds %q", got)
	}
}

func TestLocalAbandonedWritesLeaveNoFiles(t *testing.T) {
	b, dir := openLocal(t)
	ctx, cancel := context.WithCancel(t.Context())
	w, err := b.NewWriter(ctx, "out/a")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	cancel()
	if err := w.Close(); !errors.Is(err, context.Canceled) {
		t.Errorf("Close: %v", err)
	}
	if names := dirNames(t, filepath.Join(dir, "out")); len(names) != 0 {
		t.Errorf("after a cancelled write the folder holds %q", names)
	}

	// A rename that cannot happen (a folder is in the way) fails Close and
	// removes the temporary file.
	if err := os.MkdirAll(filepath.Join(dir, "out", "taken", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err = b.NewWriter(t.Context(), "out/taken")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "out", "taken")) {
		t.Errorf("Close over a folder: %v, want an error naming the path", err)
	}
	if names := dirNames(t, filepath.Join(dir, "out")); !slices.Equal(names, []string{"taken"}) {
		t.Errorf("after a failed Close the folder holds %q, want only the folder in the way", names)
	}
}

func TestLocalListSkipsTempAndFolders(t *testing.T) {
	b, dir := openLocal(t)
	for name, data := range map[string]string{
		"a.csv":                    "1",
		"sub/.b.csv.tmp-123":       "staged by a writer",
		"sub/c.csv":                "3",
		"sub/.hidden":              "a hidden file is an object",
		"sub/empty-folder/.keep/x": "4",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "really-empty"), 0o755)
	os.Symlink(filepath.Join(dir, "a.csv"), filepath.Join(dir, "link.csv"))
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling"))
	got := storagetestKeys(t, b, "")
	want := []string{"a.csv", "link.csv", "sub/.hidden", "sub/c.csv", "sub/empty-folder/.keep/x"}
	if !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	// Deleting a folder's key is a no-op: folders are not objects.
	if err := b.Delete(t.Context(), "really-empty"); err != nil {
		t.Errorf("Delete(folder): %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "really-empty")); err != nil {
		t.Errorf("Delete removed a folder: %v", err)
	}
	if _, err := b.Stat(t.Context(), "sub"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(folder): %v, want fs.ErrNotExist", err)
	}
}

func storagetestKeys(t *testing.T, b *storage.Bucket, prefix string) []string {
	t.Helper()
	infos, err := b.List(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range infos {
		keys = append(keys, o.Key)
	}
	return keys
}

func TestLocalRootBehindSymlink(t *testing.T) {
	real, _ := openLocal(t)
	storagetest.Write(t, real, "in/abalone.csv", []byte("M,0.455\n"))
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real.String(), link); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	b, err := storage.OpenLocal(link)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "in/", "in/aba"} {
		if got := storagetestKeys(t, b, prefix); !slices.Equal(got, []string{"in/abalone.csv"}) {
			t.Errorf("List(%q) through a linked root = %q, want [in/abalone.csv]", prefix, got)
		}
	}
}

func TestLocalRejectsEscapingKeys(t *testing.T) {
	b, dir := openLocal(t)
	for _, key := range []string{"", "/etc/passwd", "..", "../x", "a/../../x", "a/./b", "./a", "a//b", "a/", "a\x00b", "bad\xffutf8"} {
		if _, err := b.NewWriter(t.Context(), key); err == nil {
			t.Errorf("NewWriter(%q): no error", key)
		}
		if _, err := b.NewRangeReader(t.Context(), key, "", 0, -1); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("NewRangeReader(%q): %v, want a key error", key, err)
		}
		if err := b.Delete(t.Context(), key); err == nil {
			t.Errorf("Delete(%q): no error", key)
		}
	}
	for _, prefix := range []string{"../", "a/../..", "/abs"} {
		if _, err := b.List(t.Context(), prefix); err == nil {
			t.Errorf("List(%q): no error", prefix)
		}
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("rejected keys left %q", names)
	}
}

func TestLocalETagChangesOnReplace(t *testing.T) {
	b, _ := openLocal(t)
	storagetest.Write(t, b, "same", []byte("identical content"))
	v1, err := b.Stat(t.Context(), "same")
	if err != nil {
		t.Fatal(err)
	}
	// Same size, same content, written within the same clock tick or not:
	// the file is a new one, so the ETag differs.
	storagetest.Write(t, b, "same", []byte("identical content"))
	v2, err := b.Stat(t.Context(), "same")
	if err != nil {
		t.Fatal(err)
	}
	if v1.ETag == v2.ETag {
		t.Errorf("ETag %s unchanged after the file was replaced", v1.ETag)
	}
	if _, err := b.NewRangeReader(t.Context(), "same", v1.ETag, 0, -1); !errors.Is(err, storage.ErrChanged) {
		t.Errorf("read pinned to the replaced file: %v, want ErrChanged", err)
	}
}

func TestOpenLocal(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := storage.OpenLocal(file); err == nil {
		t.Error("OpenLocal(a file): no error")
	}
	if _, err := storage.OpenLocal(""); err == nil {
		t.Error(`OpenLocal(""): no error`)
	}
	t.Chdir(dir)
	b, err := storage.OpenLocal("rel/out")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "rel", "out")
	if real, err := filepath.EvalSymlinks(dir); err == nil && !strings.HasPrefix(b.String(), dir) {
		want = filepath.Join(real, "rel", "out")
	}
	if b.String() != want || b.URL("train/part-00000") != filepath.Join(want, "train", "part-00000") {
		t.Errorf("String() = %q, URL = %q; want %q and a path under it", b.String(), b.URL("train/part-00000"), want)
	}
	if got := storagetestKeys(t, b, ""); len(got) != 0 {
		t.Errorf("List of a folder not yet created = %q, want nothing", got)
	}
	storagetest.Write(t, b, "train/part-00000", []byte("x"))
	if _, err := os.Stat(filepath.Join(want, "train", "part-00000")); err != nil {
		t.Errorf("the write did not land under %s: %v", want, err)
	}
}
