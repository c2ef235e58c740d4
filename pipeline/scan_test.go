package pipeline

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shardprep/shardprep/features"
)

// abaloneRows returns the lines of the test data, each with its "\n".
func abaloneRows(t *testing.T) [][]byte {
	t.Helper()
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data[:len(data)-1], []byte("\n"))
}

// countingSource counts the bytes read through it.
type countingSource struct {
	Source
	n atomic.Int64
}

func (c *countingSource) NewRangeReader(ctx context.Context, url, etag string, off, n int64) (io.ReadCloser, error) {
	rc, err := c.Source.NewRangeReader(ctx, url, etag, off, n)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{readFunc(func(p []byte) (int, error) {
		k, err := rc.Read(p)
		c.n.Add(int64(k))
		return k, err
	}), rc}, nil
}

type readFunc func(p []byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// runData runs a job over data, one object named name, through src (the
// store itself when nil) and returns the store, the manifest and the error.
func runData(t *testing.T, name string, data []byte, s *Settings, src Source) (*memStore, *Manifest, error) {
	t.Helper()
	store := newMemStore()
	url := "in/" + name
	store.objects[url] = data
	spec, err := features.ParseSpec([]byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	job, err := NewJob(spec, []Object{{URL: url, Name: name, Size: int64(len(data)), Root: "in/"}}, s)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := src.(*countingSource); ok {
		c.Source = store
	} else if src == nil {
		src = store
	}
	m, err := Run(context.Background(), job, src, store, &CoordinatorOptions{Workers: 2})
	return store, m, err
}

// parts returns the train and validation parts of a run's store.
func parts(m *memStore) map[string]string {
	out := map[string]string{}
	for _, k := range m.keys() {
		if (strings.HasPrefix(k, "train/") || strings.HasPrefix(k, "validation/")) && strings.Contains(k, "part-") {
			out[k] = string(m.objects[k])
		}
	}
	return out
}

// sameParts fails unless two runs wrote the same train and validation
// parts, byte for byte.
func sameParts(t *testing.T, what string, want, got *memStore) {
	t.Helper()
	w, g := parts(want), parts(got)
	if len(w) == 0 || len(w) != len(g) {
		t.Fatalf("%s: %d parts, want %d", what, len(g), len(w))
	}
	for k, v := range w {
		if g[k] != v {
			t.Errorf("%s: %s differs", what, k)
		}
	}
}

// TestLongLineRejected: with the skip policy a line over the limit is a
// rejected row, whatever the split size: the rejected rows hold its line
// number, its length in the reason and its first bytes, every other row
// is written as if the line were blank, and the line is read through once
// (splits that start inside it stop at their end).
func TestLongLineRejected(t *testing.T) {
	rows := abaloneRows(t)
	long := "M," + strings.Repeat("1", 2<<20+5) + ",0.365,0.095,0.514,0.2245,0.101,0.15,15"
	before := bytes.Join(rows[:1000], nil)
	after := bytes.Join(rows[1000:], nil)
	data := append(append(append([]byte(nil), before...), long+"\r\n"...), after...)
	blank := append(append(append([]byte(nil), before...), strings.Repeat("\n", len(long)+2)...), after...)
	for _, size := range []int64{0, 20000, 300000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := &Settings{Seed: 5, SplitSize: size, OnInvalid: PolicySkip}
			src := &countingSource{}
			got, m, err := runData(t, "x.csv", data, s, src)
			if err != nil {
				t.Fatal(err)
			}
			if m.Totals.Rejected != 1 || m.Totals.RowsIn != int64(len(rows)) {
				t.Errorf("rejected %d rows in %d; want 1 and %d", m.Totals.Rejected, m.Totals.RowsIn, len(rows))
			}
			// Each pass reads the input once, and each split at most
			// one buffer more; reading the line through from every
			// split that starts inside it would be ~100 times that.
			splits := int64(1)
			if size > 0 {
				splits += int64(len(data)) / size
			}
			if n, bound := src.n.Load(), 4*int64(len(data))+2*splits*lineBufSize; n > bound {
				t.Errorf("read %d bytes for a %d-byte input over two passes, want at most %d", n, len(data), bound)
			}
			want, _, err := runData(t, "x.csv", blank, &Settings{Seed: 5, SplitSize: size}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sameParts(t, "long line skipped", want, got)
			var rej []string
			for _, k := range got.keys() {
				if strings.HasPrefix(k, rejectedFolder+"/") {
					rej = append(rej, strings.Split(strings.TrimSuffix(string(got.objects[k]), "\n"), "\n")[1:]...)
				}
			}
			if len(rej) != 1 {
				t.Fatalf("rejected rows: %q", rej)
			}
			f := strings.Split(rej[0], "\t")
			wantReason := fmt.Sprintf("the line is %d bytes long, longer than the limit of %d bytes", len(long), maxLineBytes)
			if len(f) != 6 || f[0] != "in/x.csv" || f[1] != "1001" || f[2] != fmt.Sprint(len(before)) ||
				!strings.HasPrefix(f[4], wantReason) || f[5] != long[:longLineKeep] {
				t.Errorf("rejected row: %.300q", rej[0])
			}
		})
	}
}

// TestLongLineError: under the error policy a line over the limit fails
// the job with its object, line number and length.
func TestLongLineError(t *testing.T) {
	rows := abaloneRows(t)
	long := strings.Repeat("x", 3<<20)
	data := append(append(bytes.Join(rows[:7], nil), long+"\n"...), bytes.Join(rows[7:], nil)...)
	_, _, err := runData(t, "x.csv", data, &Settings{Seed: 5, SplitSize: 20000}, nil)
	want := fmt.Sprintf("in/x.csv: line 8: the line is %d bytes long, longer than the limit of %d bytes", len(long), maxLineBytes)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "times") {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// failingSource fails reads of an object after its first n bytes.
type failingSource struct {
	*memStore
	n int
}

func (f *failingSource) NewRangeReader(ctx context.Context, url, etag string, off, n int64) (io.ReadCloser, error) {
	rc, err := f.memStore.NewRangeReader(ctx, url, etag, off, n)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(io.MultiReader(io.LimitReader(rc, int64(f.n)), iotestErrReader{errors.New("connection reset")})), nil
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// TestGzipStreamErrors: a truncated or corrupt gzip object fails the job
// at once with an error naming it (a data error, not retried); a failing
// read of a sound one is retried.
func TestGzipStreamErrors(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Join(abaloneRows(t), nil))
	zw.Close()
	gz := buf.Bytes()
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), gz...)) }
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", gz[:len(gz)/2], "the gzip stream is truncated or corrupt: unexpected EOF (after "},
		{"bad checksum", edit(func(b []byte) []byte { b[len(b)-8] ^= 0xFF; return b }), "the gzip stream is truncated or corrupt: gzip: invalid checksum (after "},
		{"bad block", edit(func(b []byte) []byte { b[10] = 0x07; return b }), "the gzip stream is truncated or corrupt: flate: corrupt input"},
		{"truncated header", gz[:6], "the gzip stream is truncated or corrupt: unexpected EOF (after 0 bytes"},
		{"not gzip", []byte("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n"), "not a gzip stream (gzip: invalid header)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store, _, err := runData(t, "x.csv.gz", c.data, &Settings{Seed: 5}, nil)
			if err == nil || !strings.HasPrefix(err.Error(), "in/x.csv.gz: "+c.want) || strings.Contains(err.Error(), "times") {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if keys := store.keys(); len(keys) != 1 {
				t.Errorf("the failed job left %q", keys)
			}
		})
	}
	store := newMemStore()
	store.objects["in/x.csv.gz"] = gz
	_, _, err := runData(t, "x.csv.gz", gz, &Settings{Seed: 5}, &failingSource{store, len(gz) / 2})
	if err == nil || !strings.Contains(err.Error(), "connection reset") || !strings.Contains(err.Error(), "failed 3 times") {
		t.Fatalf("a failing read: %v, want it retried", err)
	}
}

const testHeader = "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight,rings"

// TestHeaderIsFirstNonBlankLine: with Header, the first non-blank line of
// the object is skipped, after blank lines, a byte order mark or CRLF
// ends, in whichever split it falls; the rows are written as if it were
// blank. A header-like line after a row is not skipped.
func TestHeaderIsFirstNonBlankLine(t *testing.T) {
	body := bytes.Join(abaloneRows(t), nil)
	bom := "\uFEFF"
	cases := []struct {
		name, before, term string
		splitSize          int64
	}{
		{"first line", "", "\n", 0},
		{"blank first line", "\n", "\n", 0},
		{"blank lines crlf", "\r\n\r\n", "\r\n", 20000},
		{"bom blank", bom + "\n", "\n", 20000},
		{"bom crlf blank", bom + "\r\n", "\r\n", 0},
		{"bom", bom, "\r\n", 0},
		{"cr ends", "\r\r", "\r", 0},
		{"header in a later split", strings.Repeat("\n", 50000), "\n", 20000},
		{"header in a later split after a bom", bom + strings.Repeat("\r\n", 30000), "\r\n", 20000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.before + testHeader + c.term + string(body))
			blank := []byte(c.before + strings.Repeat("\n", len(testHeader)+len(c.term)) + string(body))
			got, m, err := runData(t, "x.csv", data, &Settings{Seed: 5, SplitSize: c.splitSize, Header: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.Totals.RowsIn != 4177 || m.Totals.Rejected != 0 {
				t.Errorf("rows in %d, rejected %d", m.Totals.RowsIn, m.Totals.Rejected)
			}
			want, _, err := runData(t, "x.csv", blank, &Settings{Seed: 5, SplitSize: c.splitSize}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sameParts(t, c.name, want, got)
			// Without Header, the line is refused as a header row.
			_, _, err = runData(t, "x.csv", data, &Settings{Seed: 5, SplitSize: c.splitSize}, nil)
			line := strings.Count(c.before, "\n") + strings.Count(strings.ReplaceAll(c.before, "\r\n", "\n"), "\r") + 1
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d: the first line looks like a header row", line)) {
				t.Errorf("without Header: %v", err)
			}
		})
	}
	// A header-like line that starts a split but follows rows is data.
	rows := abaloneRows(t)
	head := bytes.Join(rows[:500], nil)
	data := []byte(testHeader + "\n" + string(head) + testHeader + "\n" + string(bytes.Join(rows[500:], nil)))
	at := int64(len(testHeader) + 1 + len(head))
	_, _, err := runData(t, "x.csv", data, &Settings{Seed: 5, SplitSize: at - 1, Header: true}, nil)
	if err == nil || !strings.Contains(err.Error(), "line 502") || !strings.Contains(err.Error(), `column "length"`) {
		t.Errorf("a second header-like line: %v", err)
	}
}
