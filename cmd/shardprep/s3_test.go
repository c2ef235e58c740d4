package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage/storagetest"
)

// samplePath is the bundled Abalone sample; expectedPath its output lines.
const samplePath = "../../features/testdata/abalone.csv"

// s3Env is the MinIO of scripts/test.sh with a key segment of this test's
// own under Product/, UserA/ and UserB/ (all deleted when the test ends)
// and the grants file of testdata/grants.json: usera may read and write
// Product/* and UserA/*, userb Product/* and UserB/*.
type s3Env struct {
	storagetest.MinIOEnv
	id     string
	grants string // path of the grants file
	root   *s3.Client
}

func newS3Env(t testing.TB) *s3Env {
	t.Helper()
	env, _ := storagetest.MinIO(t)
	if env.UserAKey == "" || env.UserASecret == "" || env.UserBKey == "" || env.UserBSecret == "" {
		t.Fatal("the MinIO env lacks SHARDPREP_MINIO_USERA_/USERB_ KEY or SECRET")
	}
	var b [5]byte
	rand.Read(b[:])
	e := &s3Env{MinIOEnv: env, id: "sp-" + hex.EncodeToString(b[:]), root: env.RootClient(t)}
	data, err := os.ReadFile("testdata/grants.json")
	if err != nil {
		t.Fatal(err)
	}
	g := strings.NewReplacer(`"s3://shardprep/`, `"s3://`+e.Bucket+`/`,
		`"grantee": "usera"`, `"grantee": "`+e.UserAKey+`"`, `"grantee": "userb"`, `"grantee": "`+e.UserBKey+`"`).Replace(string(data))
	e.grants = filepath.Join(t.TempDir(), "grants.json")
	if err := os.WriteFile(e.grants, []byte(g), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, owner := range []string{"Product", "UserA", "UserB"} {
			for _, k := range e.keys(t, e.area(owner)) {
				if _, err := e.root.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.Bucket), Key: aws.String(k)}); err != nil {
					t.Logf("cleaning up %s: %v", k, err)
				}
			}
		}
	})
	return e
}

// area is this test's folder under Product, UserA or UserB: "UserA/sp-ID/".
func (e *s3Env) area(owner string) string { return owner + "/" + e.id + "/" }

func (e *s3Env) url(key string) string { return "s3://" + e.Bucket + "/" + key }

// userEnv is the environment of a shardprep process run by usera ("a") or
// userb ("b"): their own access keys, nothing else.
func (e *s3Env) userEnv(user string) func(string) string {
	vars := map[string]string{"AWS_REGION": "us-east-1"}
	switch user {
	case "a":
		vars["AWS_ACCESS_KEY_ID"], vars["AWS_SECRET_ACCESS_KEY"] = e.UserAKey, e.UserASecret
	case "b":
		vars["AWS_ACCESS_KEY_ID"], vars["AWS_SECRET_ACCESS_KEY"] = e.UserBKey, e.UserBSecret
	default:
		panic("unknown user " + user)
	}
	return func(k string) string { return vars[k] }
}

func (e *s3Env) run(ctx context.Context, env func(string) string, args ...string) (stdout, stderr string, err error) {
	return runWith(ctx, env, args...)
}

// runWith runs the program in-process with exactly the environment env
// (nil: an empty one).
func runWith(ctx context.Context, env func(string) string, args ...string) (stdout, stderr string, err error) {
	if env == nil {
		env = func(string) string { return "" }
	}
	var out, errb bytes.Buffer
	err = run(ctx, args, env, &out, &errb)
	return out.String(), errb.String(), err
}

func (e *s3Env) put(t testing.TB, key string, data []byte) {
	t.Helper()
	_, err := e.root.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.Bucket), Key: aws.String(key), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

// upload puts the local file at key and returns its size.
func (e *s3Env) upload(t testing.TB, key, local string) int64 {
	t.Helper()
	f, err := os.Open(local)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.root.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.Bucket), Key: aws.String(key), Body: f, ContentLength: aws.Int64(fi.Size()),
	})
	if err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
	return fi.Size()
}

// list returns the objects under prefix ("" for the whole bucket).
func (e *s3Env) list(t testing.TB, prefix string) []types.Object {
	t.Helper()
	var out []types.Object
	p := s3.NewListObjectsV2Paginator(e.root, &s3.ListObjectsV2Input{Bucket: aws.String(e.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		out = append(out, page.Contents...)
	}
	return out
}

// keys returns the sorted keys under prefix.
func (e *s3Env) keys(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	for _, o := range e.list(t, prefix) {
		keys = append(keys, aws.ToString(o.Key))
	}
	sort.Strings(keys)
	return keys
}

func (e *s3Env) get(t testing.TB, key string) []byte {
	t.Helper()
	out, err := e.root.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	return b
}

func (e *s3Env) manifest(t testing.TB, out string) *pipeline.Manifest {
	t.Helper()
	var m pipeline.Manifest
	if err := json.Unmarshal(e.get(t, out+pipeline.ManifestKey), &m); err != nil {
		t.Fatalf("manifest of %s: %v", out, err)
	}
	return &m
}

// split returns the concatenated parts of one split folder of an output.
func (e *s3Env) split(t testing.TB, out, name string) []byte {
	t.Helper()
	var all []byte
	for _, k := range e.keys(t, out+name+"/") {
		if strings.HasPrefix(k, out+name+"/part-") {
			all = append(all, e.get(t, k)...)
		}
	}
	return all
}

// snapshot maps every key of the bucket to its ETag, leaving out the
// */test/ folders where other packages' tests write concurrently.
func (e *s3Env) snapshot(t testing.TB) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, o := range e.list(t, "") {
		k := aws.ToString(o.Key)
		if el := strings.SplitN(k, "/", 3); len(el) == 3 && el[1] == "test" {
			continue
		}
		m[k] = aws.ToString(o.ETag)
	}
	return m
}

// cliResult is one in-process shardprep run.
type cliResult struct {
	stdout, stderr string
	err            error
	code           int    // the exit status
	line           string // what the process prints for err
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s%s", r.code, r.stdout, r.stderr, r.line)
}

var grantCallsRE = regexp.MustCompile(`(?m)^  grant calls (\d+) \(GetDataAccess or AssumeRole\)$`)

// grantCalls is the count a run's summary reports, -1 if none.
func grantCalls(stdout string) int {
	m := grantCallsRE.FindStringSubmatch(stdout)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestS3GrantsScenario is the seed's scenario against MinIO, through a
// recording proxy: the sample under Product/, UserA/ and UserB/, and a
// grants file giving usera Product/* and UserA/*, userb Product/* and
// UserB/*.
func TestS3GrantsScenario(t *testing.T) {
	e := newS3Env(t)
	proxy := storagetest.NewFaultProxy(t, e.Endpoint, e.Bucket, nil)
	sample, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"Product", "UserA", "UserB"} {
		e.put(t, e.area(owner)+"abalone.csv", sample)
	}
	want, err := os.ReadFile(expectedPath)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := lines(want)
	sort.Strings(wantLines)

	var transcript strings.Builder // everything the runs printed
	as := func(user, cmd string, args ...string) cliResult {
		full := append([]string{cmd, "--credentials", "grants", "--grants-file", e.grants, "--s3-endpoint", proxy.URL}, args...)
		var r cliResult
		r.stdout, r.stderr, r.err = e.run(context.Background(), e.userEnv(user), full...)
		var line bytes.Buffer
		r.code = cli.ExitCode(r.err, &line)
		r.line = line.String()
		transcript.WriteString(r.stdout + r.stderr + r.line)
		return r
	}
	ok := func(t *testing.T, r cliResult) {
		t.Helper()
		if r.err != nil {
			t.Fatalf("run failed: %s", r)
		}
	}
	// denied checks a refusal: exit 1, one line, naming what it says.
	denied := func(t *testing.T, r cliResult, says ...string) {
		t.Helper()
		if r.err == nil || r.code != 1 || strings.Count(r.line, "\n") != 1 {
			t.Fatalf("want a one-line error and exit 1: %s", r)
		}
		for _, s := range says {
			if !strings.Contains(r.line, s) {
				t.Errorf("error line lacks %q: %s", s, r.line)
			}
		}
	}
	// checkOutput checks a committed output of the sample.
	checkOutput := func(t *testing.T, out string, wantSplits int) *pipeline.Manifest {
		t.Helper()
		keys := e.keys(t, out)
		for _, k := range []string{"train/_SUCCESS", "validation/_SUCCESS", "train/part-00000", "validation/part-00000", pipeline.ModelKey, pipeline.ManifestKey} {
			if !slices.Contains(keys, out+k) {
				t.Errorf("%s lacks %s; it holds %v", out, k, keys)
			}
		}
		got := append(lines(e.split(t, out, "train")), lines(e.split(t, out, "validation"))...)
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
			t.Errorf("%s: train ∪ validation is not the expected multiset (%d lines, want %d)", out, len(got), len(wantLines))
		}
		m := e.manifest(t, out)
		if m.Totals.RowsIn != 4177 || len(m.Parts) != wantSplits {
			t.Errorf("%s: manifest says %d rows, %d splits; want 4177, %d", out, m.Totals.RowsIn, len(m.Parts), wantSplits)
		}
		return m
	}
	// assumeRoles runs f and returns the AssumeRole requests MinIO was sent meanwhile.
	assumeRoles := func(f func()) int {
		before := proxy.Seen("AssumeRole")
		f()
		return proxy.Seen("AssumeRole") - before
	}

	aIn := e.area("UserA")
	aOut := aIn + "output/"
	splits64k := (len(sample) + 64<<10 - 1) / (64 << 10)

	t.Run("usera processes UserA", func(t *testing.T) {
		var r cliResult
		calls := assumeRoles(func() {
			r = as("a", "run", "--input", e.url(aIn), "--output", e.url(aOut), "--seed", "7", "--split-size", "64KiB", "--log-format", "json")
		})
		ok(t, r)
		m := checkOutput(t, aOut, splits64k)
		if len(m.Inputs) != 1 || m.Inputs[0].URL != e.url(aIn+"abalone.csv") {
			t.Errorf("inputs %+v, want only %s", m.Inputs, e.url(aIn+"abalone.csv"))
		}
		// Input (READ) and output (READWRITE) fall under one grant,
		// UserA/* READWRITE: one AssumeRole serves both, for all splits.
		if n := grantCalls(r.stdout); n != 1 || calls != 1 {
			t.Errorf("summary says %d grant calls, MinIO saw %d AssumeRole; want 1 for %d splits\n%s", n, calls, splits64k, r.stdout)
		}
	})

	t.Run("usera head", func(t *testing.T) {
		r := as("a", "head", e.url(aOut+"train"))
		ok(t, r)
		train := lines(e.get(t, aOut+"train/part-00000"))
		if got := lines([]byte(r.stdout)); len(got) != 5 || strings.Join(got, "\n") != strings.Join(train[:5], "\n") {
			t.Errorf("head printed %q, want the first 5 lines of train/part-00000 %q", got, train[:5])
		}
	})

	t.Run("re-run", func(t *testing.T) {
		first := e.split(t, aOut, "train")
		r := as("a", "run", "--input", e.url(aIn), "--output", e.url(aOut), "--seed", "7", "--quiet")
		denied(t, r, "already exists", "--overwrite")
		ok(t, as("a", "run", "--input", e.url(aIn), "--output", e.url(aOut), "--seed", "7", "--split-size", "64KiB", "--quiet", "--overwrite"))
		m := checkOutput(t, aOut, splits64k)
		if len(m.Inputs) != 1 {
			t.Errorf("re-run over its own output read %d objects: %+v", len(m.Inputs), m.Inputs)
		}
		if !bytes.Equal(first, e.split(t, aOut, "train")) {
			t.Error("re-run with the same seed wrote different train parts")
		}
		// Into another output: the earlier output under the input is left out.
		other := aIn + "output2/"
		r = as("a", "run", "--input", e.url(aIn), "--output", e.url(other), "--seed", "7", "--log-format", "json")
		ok(t, r)
		if m := checkOutput(t, other, splits64k); len(m.Inputs) != 1 { // the default split size of the sample: 64KiB
			t.Errorf("run into a second output read %d objects: %+v", len(m.Inputs), m.Inputs)
		}
		if !strings.Contains(r.stderr, "leaving out earlier shardprep outputs") {
			t.Errorf("the log does not say that the earlier output was left out:\n%s", r.stderr)
		}
	})

	t.Run("userb denied UserA", func(t *testing.T) {
		before := e.snapshot(t)
		denied(t, as("b", "run", "--input", e.url(aIn), "--output", e.url(e.area("UserB")+"stolen/"), "--seed", "1", "--quiet"),
			"no access grant", "access key "+e.UserBKey, e.url(aIn)+"*", "permission READ")
		denied(t, as("b", "run", "--input", e.url(e.area("Product")), "--output", e.url(aIn+"by-b/"), "--seed", "1", "--quiet"),
			"no access grant", "access key "+e.UserBKey, e.url(aIn+"by-b/")+"*", "permission READWRITE")
		denied(t, as("b", "head", e.url(aOut+"train")),
			"no access grant", "access key "+e.UserBKey, e.url(aOut+"train/")+"*", "permission READ")
		after := e.snapshot(t)
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("denied runs changed the bucket:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("both users process Product", func(t *testing.T) {
		pIn := e.area("Product")
		ok(t, as("a", "run", "--input", e.url(pIn), "--output", e.url(pIn+"out-a/"), "--seed", "9", "--quiet"))
		ok(t, as("b", "run", "--input", e.url(pIn), "--output", e.url(pIn+"out-b/"), "--seed", "9", "--quiet"))
		for _, out := range []string{pIn + "out-a/", pIn + "out-b/"} {
			if m := checkOutput(t, out, splits64k); len(m.Inputs) != 1 || m.Inputs[0].URL != e.url(pIn+"abalone.csv") {
				t.Errorf("%s read %+v, want only %s", out, m.Inputs, e.url(pIn+"abalone.csv"))
			}
		}
		for _, s := range []string{"train", "validation"} {
			if !bytes.Equal(e.split(t, pIn+"out-a/", s), e.split(t, pIn+"out-b/", s)) {
				t.Errorf("%s differs between usera's and userb's run with the same seed", s)
			}
		}
	})

	t.Run("userb fallback", func(t *testing.T) {
		before := e.snapshot(t)
		r := as("b", "run", "--input", e.url(aIn), "--output", e.url(e.area("UserB")+"fallback/"), "--grants-fallback", "--seed", "1", "--log-format", "json")
		denied(t, r, "access denied to "+e.url(aIn))
		if !errors.Is(r.err, fs.ErrPermission) {
			t.Errorf("error %v is not fs.ErrPermission", r.err)
		}
		if !strings.Contains(r.stderr, "using the caller's own credentials (--grants-fallback)") || !strings.Contains(r.stderr, e.url(aIn)+"*") {
			t.Errorf("the log does not say that userb's own credentials are used for %s:\n%s", e.url(aIn), r.stderr)
		}
		if !proxy.SignedBy(e.UserBKey) {
			t.Error("no request was signed with userb's own key")
		}
		if after := e.snapshot(t); fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("the denied run changed the bucket:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("grant calls per prefix", func(t *testing.T) {
		// Input under Product/* (READ) and output under UserA/*
		// (READWRITE): two grants, two AssumeRoles, whatever the splits.
		for _, c := range []struct {
			size   string
			splits int
		}{{"64KiB", splits64k}, {"32MiB", 1}} {
			out := aIn + "cross-" + c.size + "/"
			var r cliResult
			calls := assumeRoles(func() {
				r = as("a", "run", "--input", e.url(e.area("Product")+"abalone.csv"), "--output", e.url(out), "--seed", "3", "--split-size", c.size)
			})
			ok(t, r)
			checkOutput(t, out, c.splits)
			if n := grantCalls(r.stdout); n != 2 || calls != 2 {
				t.Errorf("split size %s (%d splits): summary says %d grant calls, MinIO saw %d AssumeRole; want 2", c.size, c.splits, n, calls)
			}
		}
	})

	t.Run("no secrets", func(t *testing.T) {
		text := transcript.String()
		for _, k := range e.keys(t, "") {
			if strings.HasSuffix(k, "/"+pipeline.ManifestKey) && strings.Contains(k, e.id) {
				text += string(e.get(t, k))
			}
		}
		tokens := proxy.SessionTokens()
		if len(tokens) == 0 {
			t.Fatal("no request carried a session token; grant credentials were not used")
		}
		secrets := append([]string{e.UserASecret, e.UserBSecret, e.RootPassword}, tokens...)
		for i, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("secret %d (of %d: user A, user B, root, then session tokens) appears in the output", i, len(secrets))
			}
		}
		for _, word := range []string{"sessiontoken", "x-amz-security-token", "secretaccesskey"} {
			if strings.Contains(strings.ToLower(text), word) {
				t.Errorf("the output mentions %q", word)
			}
		}
	})
}

// benchRows is the size of the benchmark input: SHARDPREP_BENCH_ROWS, or a million.
func benchRows(b *testing.B) int {
	if s := os.Getenv("SHARDPREP_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("SHARDPREP_BENCH_ROWS=%q: want a positive number", s)
		}
		return n
	}
	return 1000000
}

func benchGen(b *testing.B, rows int) (string, int64) {
	local := filepath.Join(b.TempDir(), "gen.csv")
	if _, stderr, err := runWith(context.Background(), nil, "gen", "--rows", strconv.Itoa(rows), "--out", local, "--seed", "5"); err != nil {
		b.Fatalf("gen: %v\n%s", err, stderr)
	}
	fi, err := os.Stat(local)
	if err != nil {
		b.Fatal(err)
	}
	return local, fi.Size()
}

// BenchmarkRunLocal processes generated rows from and to local files.
// Bytes are input bytes.
func BenchmarkRunLocal(b *testing.B) {
	in, size := benchGen(b, benchRows(b))
	dir := b.TempDir()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(dir, strconv.Itoa(i))
		if _, stderr, err := runWith(context.Background(), nil, "run", "--input", in, "--output", out, "--seed", "1", "--quiet"); err != nil {
			b.Fatalf("run: %v\n%s", err, stderr)
		}
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
}

// BenchmarkRunMinIO processes the same rows from and to MinIO on loopback,
// as usera with grant credentials. Bytes are input bytes; grantcalls/op is
// the AssumeRole calls of one run.
func BenchmarkRunMinIO(b *testing.B) {
	e := newS3Env(b)
	local, size := benchGen(b, benchRows(b))
	in := e.area("Product") + "bench/in.csv"
	e.upload(b, in, local)
	b.SetBytes(size)
	b.ReportAllocs()
	calls := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := e.area("UserA") + "bench-out-" + strconv.Itoa(i) + "/"
		stdout, stderr, err := e.run(context.Background(), e.userEnv("a"), "run", "--input", e.url(in), "--output", e.url(out), "--seed", "1", "--quiet",
			"--credentials", "grants", "--grants-file", e.grants, "--s3-endpoint", e.Endpoint)
		if err != nil {
			b.Fatalf("run: %v\n%s", err, stderr)
		}
		calls += grantCalls(stdout)
	}
	b.ReportMetric(float64(calls)/float64(b.N), "grantcalls/op")
}

// TestS3JobOutlivesGrantCredentials: with a refresh margin longer than the
// credentials' lifetime, every credential is due for replacement the moment
// it is handed out, as if it expired mid-job at every request. The job
// refreshes them, one AssumeRole at a time, and writes exactly what a run
// with long-lived credentials writes.
func TestS3JobOutlivesGrantCredentials(t *testing.T) {
	e := newS3Env(t)
	sample, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	in := e.area("UserA")
	e.put(t, in+"abalone.csv", sample)
	common := []string{"run", "--credentials", "grants", "--grants-file", e.grants, "--s3-endpoint", e.Endpoint,
		"--input", e.url(in + "abalone.csv"), "--seed", "11", "--split-size", "64KiB", "--workers", "2"}

	stable, _, err := e.run(context.Background(), e.userEnv("a"), append(common, "--output", e.url(in+"stable/"))...)
	if err != nil {
		t.Fatal(err)
	}
	churn, stderr, err := e.run(context.Background(), e.userEnv("a"),
		append(common, "--output", e.url(in+"churn/"), "--grants-duration", "15m", "--grants-refresh", "20m")...)
	if err != nil {
		t.Fatalf("job with constantly expiring credentials: %v\n%s", err, stderr)
	}
	n, m := grantCalls(stable), grantCalls(churn)
	t.Logf("grant calls: %d with long-lived credentials, %d with expiring ones", n, m)
	if n < 1 || m <= 2*n {
		t.Errorf("grant calls: %d with long-lived credentials, %d with expiring ones; want many refreshes", n, m)
	}
	for _, split := range []string{"train", "validation"} {
		if !bytes.Equal(e.split(t, in+"stable/", split), e.split(t, in+"churn/", split)) {
			t.Errorf("%s differs between the two runs", split)
		}
	}
}
