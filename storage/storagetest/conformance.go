// Package storagetest checks storage.Bucket implementations against one
// conformance suite, gives tests the MinIO server that scripts/test.sh
// starts, and puts a recording, fault-injecting proxy (FaultProxy) in front
// of it.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/shardprep/shardprep/storage"
)

// LargeSize is the size of the suite's large object: more than two parts of
// storage.MinPartSize, so an S3 Bucket opened with PartSize MinPartSize
// uploads it in three parts.
const LargeSize = 2*storage.MinPartSize + 1<<20 + 123

// AbandonedKeys are the keys whose writes the suite abandons (by
// cancellation) after enough data for a multipart upload; S3 tests can check
// that no upload is left for them.
var AbandonedKeys = []string{"cancelled/small", "cancelled/after-a-part", "cancelled/before"}

// RunConformance runs the suite against Buckets made by open, which must
// return a new, empty Bucket for each call (each subtest calls it once).
// S3 Buckets should be opened with PartSize storage.MinPartSize so that the
// multipart paths run.
func RunConformance(t *testing.T, open func(t *testing.T) *storage.Bucket) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open(t)) })
	t.Run("EmptyObject", func(t *testing.T) { testEmptyObject(t, open(t)) })
	t.Run("RangeReads", func(t *testing.T) { testRangeReads(t, open(t)) })
	t.Run("InvisibleUntilClose", func(t *testing.T) { testInvisibleUntilClose(t, open(t)) })
	t.Run("CancelMidWrite", func(t *testing.T) { testCancelMidWrite(t, open(t)) })
	t.Run("Missing", func(t *testing.T) { testMissing(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open(t)) })
	t.Run("List", func(t *testing.T) { testList(t, open(t)) })
	t.Run("Large", func(t *testing.T) { testLarge(t, open(t)) })
	t.Run("ETagPinning", func(t *testing.T) { testETagPinning(t, open(t)) })
	t.Run("WriterMisuse", func(t *testing.T) { testWriterMisuse(t, open(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, open(t)) })
}

// Write stores data at key in one writer, failing the test on any error.
func Write(t testing.TB, b *storage.Bucket, key string, data []byte) {
	t.Helper()
	w, err := b.NewWriter(t.Context(), key)
	if err != nil {
		t.Fatalf("NewWriter(%q): %v", key, err)
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		t.Fatalf("Write(%q): %v", key, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close(%q): %v", key, err)
	}
}

// Read returns length bytes of key from offset (length < 0: to the end),
// failing the test on any error.
func Read(t testing.TB, b *storage.Bucket, key string, offset, length int64) []byte {
	t.Helper()
	got, err := read(t.Context(), b, key, "", offset, length)
	if err != nil {
		t.Fatalf("read %q [%d,+%d): %v", key, offset, length, err)
	}
	return got
}

func read(ctx context.Context, b *storage.Bucket, key, etag string, offset, length int64) ([]byte, error) {
	r, err := b.NewRangeReader(ctx, key, etag, offset, length)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return got, err
}

func keys(infos []storage.ObjectInfo) []string {
	out := []string{}
	for _, o := range infos {
		out = append(out, o.Key)
	}
	return out
}

func listKeys(t testing.TB, b *storage.Bucket, prefix string) []string {
	t.Helper()
	infos, err := b.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys(infos)
}

func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func testRoundTrip(t *testing.T, b *storage.Bucket) {
	data := []byte("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n")
	Write(t, b, "dir/sub/object.csv", data)
	info, err := b.Stat(t.Context(), "dir/sub/object.csv")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Key != "dir/sub/object.csv" || info.Size != int64(len(data)) || info.ETag == "" || info.ModTime.IsZero() {
		t.Errorf("Stat = %+v, want key dir/sub/object.csv, size %d, an ETag and a time", info, len(data))
	}
	if got := Read(t, b, "dir/sub/object.csv", 0, -1); !bytes.Equal(got, data) {
		t.Errorf("read back %q, want %q", got, data)
	}
	// The ETag from Stat pins a read of the same version.
	got, err := read(t.Context(), b, "dir/sub/object.csv", info.ETag, 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read with ETag %s: %q, %v; want the data", info.ETag, got, err)
	}
	// Overwriting replaces the content.
	Write(t, b, "dir/sub/object.csv", []byte("new"))
	if got := Read(t, b, "dir/sub/object.csv", 0, -1); string(got) != "new" {
		t.Errorf("after overwrite read %q, want %q", got, "new")
	}
}

func testEmptyObject(t *testing.T, b *storage.Bucket) {
	Write(t, b, "empty", nil)
	info, err := b.Stat(t.Context(), "empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("Stat(empty) = %+v, %v; want size 0", info, err)
	}
	for _, r := range [][2]int64{{0, -1}, {0, 10}, {0, 0}, {5, -1}} {
		got, err := read(t.Context(), b, "empty", info.ETag, r[0], r[1])
		if err != nil || len(got) != 0 {
			t.Errorf("read empty [%d,+%d) = %q, %v; want nothing", r[0], r[1], got, err)
		}
	}
	if got := listKeys(t, b, ""); !slices.Equal(got, []string{"empty"}) {
		t.Errorf("List = %q, want [empty]", got)
	}
}

func testRangeReads(t *testing.T, b *storage.Bucket) {
	data := pattern(1000, 1)
	Write(t, b, "r", data)
	for _, c := range []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"start", 0, 10, data[:10]},
		{"middle", 400, 123, data[400:523]},
		{"to end", 990, 10, data[990:]},
		{"past end", 950, 100, data[950:]},
		{"length -1 from start", 0, -1, data},
		{"length -1 from middle", 333, -1, data[333:]},
		{"length -2 means to end", 500, -2, data[500:]},
		{"length 0", 10, 0, nil},
		{"offset at end", 1000, -1, nil},
		{"offset past end", 5000, 10, nil},
		{"offset past end, length -1", 5000, -1, nil},
	} {
		got, err := read(t.Context(), b, "r", "", c.offset, c.length)
		if err != nil {
			t.Errorf("%s: read [%d,+%d): %v", c.name, c.offset, c.length, err)
			continue
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: read [%d,+%d) gave %d bytes, want %d (content differs: %v)",
				c.name, c.offset, c.length, len(got), len(c.want), len(got) == len(c.want))
		}
	}
	if _, err := b.NewRangeReader(t.Context(), "r", "", -1, 10); err == nil {
		t.Error("negative offset: no error")
	}
	// Small reads see the same bytes as one big read.
	r, err := b.NewRangeReader(t.Context(), "r", "", 100, 300)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []byte
	buf := make([]byte, 7)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	if !bytes.Equal(got, data[100:400]) {
		t.Errorf("7-byte reads gave %d bytes, want data[100:400]", len(got))
	}
}

func testInvisibleUntilClose(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	w, err := b.NewWriter(ctx, "out/part-00000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("partial line")); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, b, ""); len(got) != 0 {
		t.Errorf("List during write = %q, want nothing", got)
	}
	if _, err := b.Stat(ctx, "out/part-00000"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat during write: %v, want fs.ErrNotExist", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, b, ""); !slices.Equal(got, []string{"out/part-00000"}) {
		t.Errorf("List after Close = %q, want [out/part-00000]", got)
	}

	// While a replacement is written, readers see the old version whole.
	w, err = b.NewWriter(ctx, "out/part-00000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("replacement, not yet closed")); err != nil {
		t.Fatal(err)
	}
	if got := Read(t, b, "out/part-00000", 0, -1); string(got) != "partial line" {
		t.Errorf("during overwrite read %q, want the old %q", got, "partial line")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := Read(t, b, "out/part-00000", 0, -1); string(got) != "replacement, not yet closed" {
		t.Errorf("after overwrite read %q", got)
	}
}

func testCancelMidWrite(t *testing.T, b *storage.Bucket) {
	for _, c := range []struct {
		name string
		size int // written before cancelling
	}{
		{"small", 1000},
		{"after-a-part", storage.MinPartSize + 1<<20}, // an S3 multipart upload is under way
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			w, err := b.NewWriter(ctx, "cancelled/"+c.name)
			if err != nil {
				t.Fatal(err)
			}
			data := pattern(c.size, 2)
			if _, err := w.Write(data[:c.size/2]); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data[c.size/2:]); err != nil {
				t.Fatal(err)
			}
			cancel()
			w.Write([]byte("more")) // may fail: the write is abandoned either way
			if err := w.Close(); !errors.Is(err, context.Canceled) {
				t.Errorf("Close after cancel: %v, want an error wrapping context.Canceled", err)
			}
			if got := listKeys(t, b, ""); len(got) != 0 {
				t.Errorf("List after cancelled write = %q, want nothing", got)
			}
			if _, err := b.Stat(t.Context(), "cancelled/"+c.name); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat after cancelled write: %v, want fs.ErrNotExist", err)
			}
		})
	}
	// A writer whose context is already cancelled cannot be opened, or
	// fails by Close at the latest.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if w, err := b.NewWriter(ctx, "cancelled/before"); err == nil {
		w.Write([]byte("x"))
		if err := w.Close(); err == nil {
			t.Error("writer with a cancelled context committed")
		}
	}
	if got := listKeys(t, b, ""); len(got) != 0 {
		t.Errorf("List = %q, want nothing", got)
	}
}

func testMissing(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	Write(t, b, "present", []byte("x"))
	if _, err := b.Stat(ctx, "absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(absent): %v, want fs.ErrNotExist", err)
	}
	if _, err := b.Stat(ctx, "absent/deeper"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(absent/deeper): %v, want fs.ErrNotExist", err)
	}
	for _, r := range [][2]int64{{0, -1}, {0, 10}, {5, 0}} {
		if _, err := read(ctx, b, "absent", "", r[0], r[1]); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("read absent [%d,+%d): %v, want fs.ErrNotExist", r[0], r[1], err)
		}
	}
	if _, err := read(ctx, b, "absent", `"0123"`, 0, -1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read absent with an ETag: %v, want fs.ErrNotExist", err)
	}
	if _, err := b.Stat(ctx, "present"); err != nil {
		t.Errorf("Stat(present): %v", err)
	}
	if got := listKeys(t, b, "absent"); len(got) != 0 {
		t.Errorf("List(absent) = %q, want nothing", got)
	}
}

func testDelete(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	if err := b.Delete(ctx, "never-written"); err != nil {
		t.Errorf("Delete of a missing object: %v, want nil", err)
	}
	Write(t, b, "d/one", []byte("1"))
	Write(t, b, "d/two", []byte("2"))
	if err := b.Delete(ctx, "d/one"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Stat(ctx, "d/one"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Delete: %v, want fs.ErrNotExist", err)
	}
	if err := b.Delete(ctx, "d/one"); err != nil {
		t.Errorf("second Delete: %v, want nil", err)
	}
	if got := listKeys(t, b, ""); !slices.Equal(got, []string{"d/two"}) {
		t.Errorf("List after Delete = %q, want [d/two]", got)
	}
}

func testList(t *testing.T, b *storage.Bucket) {
	all := []string{"x-y", "x/1", "x/2/deep", "x/2/deeper/still", "xa", "y/1", "z"}
	for i, k := range slices.Backward(all) { // written out of order
		Write(t, b, k, bytes.Repeat([]byte{'a'}, i+1))
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"x", []string{"x-y", "x/1", "x/2/deep", "x/2/deeper/still", "xa"}},
		{"x/", []string{"x/1", "x/2/deep", "x/2/deeper/still"}},
		{"x/2", []string{"x/2/deep", "x/2/deeper/still"}},
		{"x/2/deep", []string{"x/2/deep", "x/2/deeper/still"}},
		{"x/2/deeper/", []string{"x/2/deeper/still"}},
		{"y/", []string{"y/1"}},
		{"z", []string{"z"}},
		{"nothing/", []string{}},
		{"q", []string{}},
	} {
		if got := listKeys(t, b, c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
	infos, err := b.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range infos {
		want := int64(slices.Index(all, o.Key) + 1)
		if o.Size != want || o.ETag == "" || o.ModTime.IsZero() {
			t.Errorf("List entry %+v: want size %d, an ETag and a time", o, want)
		}
	}
}

func testLarge(t *testing.T, b *storage.Bucket) {
	data := pattern(LargeSize, 3)
	w, err := b.NewWriter(t.Context(), "large/object")
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes, so part boundaries fall inside them.
	for rest, i := data, 0; len(rest) > 0; i++ {
		n := min(len(rest), 1<<20+i*4099)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	info, err := b.Stat(t.Context(), "large/object")
	if err != nil || info.Size != LargeSize {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, LargeSize)
	}
	if got := Read(t, b, "large/object", 0, -1); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, want %d identical bytes", len(got), len(data))
	}
	// A range across the first part boundary, and the tail.
	off := int64(storage.MinPartSize - 10)
	if got := Read(t, b, "large/object", off, 20); !bytes.Equal(got, data[off:off+20]) {
		t.Error("range across a part boundary differs")
	}
	if got := Read(t, b, "large/object", LargeSize-5, 100); !bytes.Equal(got, data[LargeSize-5:]) {
		t.Error("tail range differs")
	}
}

func testETagPinning(t *testing.T, b *storage.Bucket) {
	ctx := t.Context()
	Write(t, b, "pinned", []byte("version one"))
	v1, err := b.Stat(ctx, "pinned")
	if err != nil {
		t.Fatal(err)
	}
	Write(t, b, "pinned", []byte("version two, longer"))
	v2, err := b.Stat(ctx, "pinned")
	if err != nil {
		t.Fatal(err)
	}
	if v1.ETag == v2.ETag {
		t.Fatalf("ETag %s unchanged by an overwrite with other content", v1.ETag)
	}
	for _, r := range [][2]int64{{0, -1}, {3, 4}, {0, 0}} {
		got, err := read(ctx, b, "pinned", v1.ETag, r[0], r[1])
		if !errors.Is(err, storage.ErrChanged) {
			t.Errorf("read [%d,+%d) pinned to the old ETag: %q, %v; want an error wrapping ErrChanged", r[0], r[1], got, err)
		}
	}
	got, err := read(ctx, b, "pinned", v2.ETag, 0, -1)
	if err != nil || string(got) != "version two, longer" {
		t.Errorf("read pinned to the current ETag: %q, %v", got, err)
	}
	infos, err := b.List(ctx, "pinned")
	if err != nil || len(infos) != 1 || infos[0].ETag != v2.ETag {
		t.Errorf("List = %+v, %v; want one entry with ETag %s (as Stat)", infos, err, v2.ETag)
	}
	if err := b.Delete(ctx, "pinned"); err != nil {
		t.Fatal(err)
	}
	if _, err := read(ctx, b, "pinned", v2.ETag, 0, -1); err == nil {
		t.Error("read of a deleted object pinned to its ETag succeeded")
	}
}

func testWriterMisuse(t *testing.T, b *storage.Bucket) {
	w, err := b.NewWriter(t.Context(), "once")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Error("second Close: no error")
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Close: no error")
	}
	if got := Read(t, b, "once", 0, -1); string(got) != "data" {
		t.Errorf("read %q, want %q", got, "data")
	}
	for _, key := range []string{"", "/abs"} {
		if _, err := b.NewWriter(t.Context(), key); err == nil {
			t.Errorf("NewWriter(%q): no error", key)
		}
		if _, err := b.Stat(t.Context(), key); err == nil {
			t.Errorf("Stat(%q): no error", key)
		}
	}
}

func testConcurrentWriters(t *testing.T, b *storage.Bucket) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			w, err := b.NewWriter(t.Context(), fmt.Sprintf("train/part-%05d", i))
			if err == nil {
				_, err = fmt.Fprintf(w, "part %d\n", i)
				if cerr := w.Close(); err == nil {
					err = cerr
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got := listKeys(t, b, "train/")
	if len(got) != n {
		t.Fatalf("List(train/) = %q, want %d parts", got, n)
	}
	for i, k := range got {
		if want := fmt.Sprintf("train/part-%05d", i); k != want {
			t.Errorf("List[%d] = %q, want %q", i, k, want)
		}
		if data := Read(t, b, k, 0, -1); string(data) != fmt.Sprintf("part %d\n", i) {
			t.Errorf("%s holds %q", k, data)
		}
	}
}
