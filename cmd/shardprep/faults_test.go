package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage/storagetest"
)

// genInput writes rows generated rows to a local file and uploads it to key.
func genInput(t testing.TB, e *s3Env, rows int, key string) (local string, size int64) {
	t.Helper()
	local = filepath.Join(t.TempDir(), "gen.csv")
	if _, stderr, err := e.run(context.Background(), nil, "gen", "--rows", fmt.Sprint(rows), "--out", local, "--seed", "5"); err != nil {
		t.Fatalf("gen: %v\n%s", err, stderr)
	}
	return local, e.upload(t, key, local)
}

// TestS3FaultsOutputIdentical runs a job of a million generated rows,
// large enough for multipart uploads with 5 MiB parts, once cleanly and
// once through dropped GET connections and 503 SlowDown answers to PUTs
// and UploadParts: the job completes and its output is byte for byte the
// clean run's.
func TestS3FaultsOutputIdentical(t *testing.T) {
	e := newS3Env(t)
	rows := 1000000
	if testing.Short() {
		rows = 300000
	}
	in := e.area("Product") + "gen/"
	genInput(t, e, rows, in+"data.csv")

	var faulty bool
	var mu sync.Mutex
	proxy := storagetest.NewFaultProxy(t, e.Endpoint, e.Bucket, func(r storagetest.S3Request) storagetest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if !faulty {
			return storagetest.Fault{}
		}
		switch {
		case r.Op == "GetObject" && strings.HasSuffix(r.Key, ".csv") && r.N%2 == 1:
			return storagetest.Fault{CutHalf: true}
		case (r.Op == "PutObject" || r.Op == "UploadPart") && r.Attempt == 1 && r.N%2 == 1:
			return storagetest.Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"}
		}
		return storagetest.Fault{}
	})
	job := func(out string) (string, error) {
		stdout, stderr, err := e.run(context.Background(), e.userEnv("a"), "run",
			"--input", e.url(in), "--output", e.url(out), "--seed", "11",
			"--credentials", "grants", "--grants-file", e.grants, "--s3-endpoint", proxy.URL,
			"--s3-part-size", "5MiB", "--split-size", "16MiB", "--workers", "2", "--quiet", "--log-format", "json")
		return stdout + stderr, err
	}

	clean := e.area("Product") + "clean/"
	if log, err := job(clean); err != nil {
		t.Fatalf("clean run: %v\n%s", err, log)
	}
	if n := proxy.Seen("UploadPart"); n < 4 {
		t.Fatalf("clean run made %d UploadPart requests; the output is too small to test multipart uploads", n)
	}

	mu.Lock()
	faulty = true
	mu.Unlock()
	proxy.Reset()
	dirty := e.area("Product") + "faults/"
	start := time.Now()
	log, err := job(dirty)
	if err != nil {
		t.Fatalf("run with transient faults: %v\n%s", err, log)
	}
	t.Logf("faulty run: %v; injected %d cut GETs, %d SlowDown PutObject, %d SlowDown UploadPart; %d GetObject, %d UploadPart requests",
		time.Since(start).Round(time.Millisecond), proxy.Faults("GetObject cut"), proxy.Faults("PutObject 503"), proxy.Faults("UploadPart 503"),
		proxy.Seen("GetObject"), proxy.Seen("UploadPart"))
	for _, kind := range []string{"GetObject cut", "PutObject 503", "UploadPart 503"} {
		if proxy.Faults(kind) == 0 {
			t.Errorf("no %q fault was injected; the test proves nothing about it", kind)
		}
	}

	want, got := e.keys(t, clean), e.keys(t, dirty)
	if strings.Join(trimAll(want, clean), " ") != strings.Join(trimAll(got, dirty), " ") {
		t.Fatalf("the runs wrote different keys:\nclean  %v\nfaults %v", trimAll(want, clean), trimAll(got, dirty))
	}
	parts := 0
	for _, k := range trimAll(want, clean) {
		if strings.HasSuffix(k, "manifest.json") || strings.HasSuffix(k, "report.html") {
			continue // hold timings
		}
		if !bytes.Equal(e.get(t, clean+k), e.get(t, dirty+k)) {
			t.Errorf("%s differs between the clean run and the run with faults", k)
		}
		if strings.Contains(k, "part-") {
			parts++
		}
	}
	m := e.manifest(t, dirty)
	if m.Totals.RowsIn != int64(rows) || parts != 2*len(m.Parts) {
		t.Errorf("faulty run: %d rows in (want %d), %d part objects for %d splits", m.Totals.RowsIn, rows, parts, len(m.Parts))
	}
}

func trimAll(keys []string, prefix string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, prefix)
	}
	return out
}

// TestS3PersistentFailureLeavesNothing: when the output cannot be written
// the job fails with a clear error and leaves no _SUCCESS, no objects and
// no open multipart uploads behind; the same when the job is cancelled
// mid-upload.
func TestS3PersistentFailureLeavesNothing(t *testing.T) {
	e := newS3Env(t)
	in := e.area("Product") + "gen/"
	genInput(t, e, 400000, in+"data.csv")

	// The check for open uploads must see one that is open.
	ctx := context.Background()
	probe := e.area("Product") + "probe/part-00000"
	up, err := e.root.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(e.Bucket), Key: aws.String(probe)})
	if err != nil {
		t.Fatal(err)
	}
	if open := e.openUploads(t, []string{probe}); len(open) != 1 {
		t.Fatalf("openUploads found %v, want the probe's upload", open)
	}
	if _, err := e.root.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(e.Bucket), Key: aws.String(probe), UploadId: up.UploadId}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		workers string
		rule    func(out string, cancel func()) func(storagetest.S3Request) storagetest.Fault
		want    []string // in the error line
	}{
		{"500 on every PUT", "2", func(out string, _ func()) func(storagetest.S3Request) storagetest.Fault {
			// The claim goes through, so that the job gets to its parts.
			return func(r storagetest.S3Request) storagetest.Fault {
				if (r.Op == "PutObject" || r.Op == "UploadPart") && strings.HasPrefix(r.Key, out) && r.Key != out+pipeline.ClaimKey {
					return storagetest.Fault{Status: http.StatusInternalServerError, Code: "InternalError"}
				}
				return storagetest.Fault{}
			}
		}, []string{"InternalError", "exceeded maximum number of attempts", "nothing was committed"}},
		{"AccessDenied on UploadPart", "1", func(out string, _ func()) func(storagetest.S3Request) storagetest.Fault {
			// The first split's parts are written (one worker) before the
			// second fails; the job must remove them.
			return func(r storagetest.S3Request) storagetest.Fault {
				if r.Op == "UploadPart" && r.Key == out+"train/part-00001" {
					return storagetest.Fault{Status: http.StatusForbidden, Code: "AccessDenied"}
				}
				return storagetest.Fault{}
			}
		}, []string{"access denied to " + e.url(""), "UploadPart", "nothing was committed"}},
		{"cancelled during uploads", "2", func(out string, cancel func()) func(storagetest.S3Request) storagetest.Fault {
			return func(r storagetest.S3Request) storagetest.Fault {
				if r.Op == "UploadPart" && r.N == 3 {
					cancel()
				}
				return storagetest.Fault{}
			}
		}, []string{"interrupted", "nothing was committed"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := e.area("Product") + fmt.Sprintf("fail%d/", i)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			proxy := storagetest.NewFaultProxy(t, e.Endpoint, e.Bucket, c.rule(out, cancel))
			stdout, stderr, err := e.run(ctx, e.userEnv("a"), "run",
				"--input", e.url(in), "--output", e.url(out), "--seed", "3",
				"--credentials", "grants", "--grants-file", e.grants, "--s3-endpoint", proxy.URL,
				"--s3-part-size", "5MiB", "--split-size", "8MiB", "--workers", c.workers, "--s3-max-retries", "2",
				"--quiet", "--log-format", "json")
			if err == nil {
				t.Fatalf("the job succeeded:\n%s", stdout)
			}
			var line bytes.Buffer
			code := cli.ExitCode(err, &line)
			if code == 0 || strings.Count(line.String(), "\n") != 1 {
				t.Errorf("exit %d, error output %q: want non-zero and one line", code, line.String())
			}
			for _, w := range c.want {
				if !strings.Contains(line.String(), w) {
					t.Errorf("error line lacks %q:\n%s", w, line.String())
				}
			}
			t.Logf("error line: %s", strings.TrimSpace(line.String()))
			// Parts are staged (a multipart upload and its marker object)
			// and only published at commit: the first split's parts must
			// have been staged before the failure, so that their removal
			// is tested, and none published.
			if c.name == "AccessDenied on UploadPart" && (proxy.Seen("PutObject") == 0 || proxy.Seen("CompleteMultipartUpload") != 0) {
				t.Errorf("%d PutObject, %d CompleteMultipartUpload: want the first split's parts staged, none published",
					proxy.Seen("PutObject"), proxy.Seen("CompleteMultipartUpload"))
			}
			if left := e.keys(t, out); len(left) != 0 {
				t.Errorf("the failed job left %d objects under its output: %v\nstderr:\n%s", len(left), left, stderr)
			}
			creates, aborts := proxy.Seen("CreateMultipartUpload"), proxy.Seen("AbortMultipartUpload")
			if creates == 0 {
				t.Fatalf("no multipart upload was started; the test proves nothing about aborting them")
			}
			if aborts < creates-proxy.Seen("CompleteMultipartUpload") {
				t.Errorf("%d multipart uploads started, %d completed, only %d aborted", creates, proxy.Seen("CompleteMultipartUpload"), aborts)
			}
			keys := proxy.UploadKeys()
			for _, f := range []string{"train", "validation", "_rejected"} {
				for i := range e.plannedSplits(t, in, 8<<20) + 2 {
					keys = append(keys, out+fmt.Sprintf("%s/part-%05d", f, i))
				}
			}
			if open := e.openUploads(t, keys); len(open) != 0 {
				t.Errorf("multipart uploads left open: %v", open)
			}
		})
	}
}

// plannedSplits is an upper bound of the splits of a job over the objects
// under in with the given split size.
func (e *s3Env) plannedSplits(t testing.TB, in string, splitSize int64) int {
	t.Helper()
	n := 0
	for _, info := range e.list(t, in) {
		n += int((aws.ToInt64(info.Size) + splitSize - 1) / splitSize)
	}
	return n
}

// openUploads lists the multipart uploads in progress for the given keys
// (MinIO's ListMultipartUploads matches its prefix only as an exact key).
func (e *s3Env) openUploads(t testing.TB, keys []string) []string {
	t.Helper()
	ctx := context.Background()
	var open []string
	for _, k := range keys {
		res, err := e.root.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(e.Bucket), Prefix: aws.String(k)})
		if err != nil {
			t.Fatalf("ListMultipartUploads %s: %v", k, err)
		}
		for _, u := range res.Uploads {
			open = append(open, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
		}
	}
	return open
}
