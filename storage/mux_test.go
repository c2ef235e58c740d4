package storage_test

import (
	"errors"
	"io"
	"io/fs"
	"testing"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

func TestMuxRoutesURLs(t *testing.T) {
	local, _ := openLocal(t)
	nested, err := storage.OpenLocal(local.URL("inner"))
	if err != nil {
		t.Fatal(err)
	}
	mem := storage.NewMemory()
	storagetest.Write(t, local, "data/a.csv", []byte("local a"))
	storagetest.Write(t, nested, "b.csv", []byte("nested b"))
	storagetest.Write(t, mem, "c.csv", []byte("memory c"))
	m := storage.NewMux(local, mem)
	m.Add(nested)

	for _, c := range []struct {
		url, want string
		bucket    *storage.Bucket
		key       string
	}{
		{local.URL("data/a.csv"), "local a", local, "data/a.csv"},
		{nested.URL("b.csv"), "nested b", nested, "b.csv"}, // longest root wins
		{mem.URL("c.csv"), "memory c", mem, "c.csv"},
	} {
		b, key, err := m.Resolve(c.url)
		if err != nil || b != c.bucket || key != c.key {
			t.Errorf("Resolve(%q) = %v, %q, %v; want %v, %q", c.url, b, key, err, c.bucket, c.key)
		}
		r, err := m.NewRangeReader(t.Context(), c.url, "", 0, -1)
		if err != nil {
			t.Fatalf("NewRangeReader(%q): %v", c.url, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(got) != c.want {
			t.Errorf("read %q = %q, %v; want %q", c.url, got, err, c.want)
		}
	}
	for _, u := range []string{"s3://elsewhere/x", local.String(), local.String() + "-sibling/x", "mem://unknown/x"} {
		if _, err := m.NewRangeReader(t.Context(), u, "", 0, -1); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("NewRangeReader(%q): %v, want fs.ErrNotExist", u, err)
		}
	}
}
