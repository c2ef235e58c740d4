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
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/shardprep/shardprep/container"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage/storagetest"
)

// The tests in this file run "shardprep container" as real processes over
// fake /opt/ml trees (testdata/sagemaker), against MinIO where the job
// reads and writes S3.

// smTree copies the opt/ tree of testdata/sagemaker/NAME to a new
// temporary root, replacing each {{KEY}} of vars in its files.
func smTree(t *testing.T, name string, vars map[string]string) string {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join("testdata", "sagemaker", name)
	err := filepath.WalkDir(filepath.Join(src, "opt"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := string(data)
		for k, v := range vars {
			s = strings.ReplaceAll(s, "{{"+k+"}}", v)
		}
		if i := strings.Index(s, "{{"); i >= 0 {
			return fmt.Errorf("%s: placeholder %.20q left", p, s[i:])
		}
		return os.WriteFile(dst, []byte(s), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// platformArgs are the job's ContainerArguments, which SageMaker passes to
// the container's entrypoint.
func platformArgs(t *testing.T, root string) []string {
	t.Helper()
	job, err := container.Load(os.DirFS(root), nil)
	if err != nil {
		t.Fatal(err)
	}
	return job.Arguments
}

func ctrMinIOEnv(e storagetest.MinIOEnv) []string {
	return baseEnv("AWS_ACCESS_KEY_ID="+e.RootUser, "AWS_SECRET_ACCESS_KEY="+e.RootPassword, "AWS_REGION=us-east-1")
}

func ctrFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func ctrName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// ctrBuffer collects a process's output.
type ctrBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *ctrBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *ctrBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ctrProc is a running shardprep process.
type ctrProc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr ctrBuffer
	done           chan struct{}
	exitedAt       time.Time
}

// startCtr runs the binary with args and env; it is killed at the end of
// the test if still running.
func startCtr(t *testing.T, name string, env []string, args ...string) *ctrProc {
	t.Helper()
	p := &ctrProc{name: name, cmd: exec.Command(shardprepBin(t), args...), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		p.exitedAt = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *ctrProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait returns the exit status, failing the test if the process runs
// longer than timeout.
func (p *ctrProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s still running after %s; killed\n%s", p.name, timeout, p.tail())
	}
	return p.cmd.ProcessState.ExitCode()
}

// tail is the end of the process's output, for failure messages.
func (p *ctrProc) tail() string {
	lines := strings.Split(strings.TrimSpace(p.stderr.String()+p.stdout.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-12):], "\n")
}

// allJSONLines fails the test unless every line the process wrote is a
// JSON object.
func (p *ctrProc) allJSONLines(t *testing.T) {
	t.Helper()
	for _, stream := range []string{p.stdout.String(), p.stderr.String()} {
		for _, line := range strings.Split(strings.TrimSpace(stream), "\n") {
			var rec map[string]any
			if line != "" && json.Unmarshal([]byte(line), &rec) != nil {
				t.Errorf("%s wrote a line that is not JSON: %q", p.name, line)
			}
		}
	}
}

// ctrArea is a test's key prefix in the MinIO bucket.
type ctrArea struct {
	e      storagetest.MinIOEnv
	client *s3.Client
	prefix string
}

func newCtrArea(t *testing.T) *ctrArea {
	e, prefix := storagetest.MinIO(t)
	return &ctrArea{e: e, client: e.RootClient(t), prefix: prefix}
}

func (a *ctrArea) upload(t *testing.T, key, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := a.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &a.e.Bucket, Key: aws.String(a.prefix + key), Body: f}); err != nil {
		t.Fatal(err)
	}
}

// keys lists the keys under the area's prefix + under, relative to it.
func (a *ctrArea) keys(t *testing.T, under string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(a.client, &s3.ListObjectsV2Input{Bucket: &a.e.Bucket, Prefix: aws.String(a.prefix + under)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, strings.TrimPrefix(aws.ToString(o.Key), a.prefix+under))
		}
	}
	return out
}

// get returns an object's bytes, or fs.ErrNotExist.
func (a *ctrArea) get(t *testing.T, key string) ([]byte, error) {
	t.Helper()
	res, err := a.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &a.e.Bucket, Key: aws.String(a.prefix + key)})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return nil, fs.ErrNotExist
	}
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data, nil
}

// openUploads lists the multipart uploads in progress for the given keys
// (MinIO matches ListMultipartUploads' prefix only as an exact key).
func (a *ctrArea) openUploads(t *testing.T, keys []string) []string {
	t.Helper()
	var open []string
	for _, k := range keys {
		res, err := a.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &a.e.Bucket, Prefix: aws.String(a.prefix + k)})
		if err != nil {
			t.Fatalf("ListMultipartUploads %s: %v", k, err)
		}
		for _, u := range res.Uploads {
			open = append(open, aws.ToString(u.Key))
		}
	}
	return open
}

// ctrPartKeys are the keys the parts of a job with up to n splits may have,
// under out.
func ctrPartKeys(out string, n int) []string {
	var keys []string
	for _, split := range []string{"train", "validation"} {
		for i := range n {
			keys = append(keys, fmt.Sprintf("%s%s/part-%05d", out, split, i))
		}
	}
	return keys
}

func ctrCompareParts(t *testing.T, want, got map[string][]byte) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("part %s missing", k)
		case !bytes.Equal(w, g):
			t.Errorf("part %s differs from shardprep run's (%d bytes, want %d)", k, len(g), len(w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected part %s", k)
		}
	}
}

// ctrGenInput writes rows generated rows to DIR/data.csv in a new folder and
// returns the folder and the file.
func ctrGenInput(t *testing.T, rows int) (dir, file string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "in")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "data.csv")
	if out, err := exec.Command(shardprepBin(t), "gen", "--rows", strconv.Itoa(rows), "--out", file).CombinedOutput(); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	return dir, file
}

// ctrReference runs "shardprep run" over a local input and returns its
// output folder.
func ctrReference(t *testing.T, input string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ref")
	argv := append([]string{"run", "--input", input, "--output", out, "--quiet"}, args...)
	if b, err := exec.Command(shardprepBin(t), argv...).CombinedOutput(); err != nil {
		t.Fatalf("shardprep run: %v\n%s", err, b)
	}
	return out
}

// ctrFailureMessage checks ROOT/opt/ml/output/message is one line of at
// most 1 KB of UTF-8 and returns it.
func ctrFailureMessage(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(container.FailurePath)))
	if err != nil {
		t.Fatalf("no failure message: %v", err)
	}
	if len(data) == 0 || len(data) > container.MaxFailureBytes || !utf8.Valid(data) || bytes.ContainsAny(data, "\r\n") {
		t.Errorf("failure message is not one line of 1-%d bytes of UTF-8: %q", container.MaxFailureBytes, data)
	}
	return string(data)
}

func ctrNoFailureMessage(t *testing.T, root string) {
	t.Helper()
	if data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(container.FailurePath))); err == nil {
		t.Errorf("failure message written by a successful run: %q", data)
	}
}

// ctrSeedJob prepares the fake trees of a job run by the PySpark script's
// arguments, one per host, reading input/ and writing out under the area.
func ctrSeedJob(t *testing.T, a *ctrArea, hosts int, out string) (job string, roots []string) {
	t.Helper()
	job = ctrName("shardprep-test-")
	var names []string
	for i := 1; i <= hosts; i++ {
		names = append(names, fmt.Sprintf("algo-%d", i))
	}
	list, _ := json.Marshal(names)
	for _, h := range names {
		roots = append(roots, smTree(t, "seed-job", map[string]string{
			"HOST": h, "HOSTS": string(list), "COUNT": strconv.Itoa(hosts), "JOB": job,
			"BUCKET": a.e.Bucket, "INPUT": a.prefix + "input", "OUTPUT": a.prefix + out,
		}))
	}
	return job, roots
}

// TestContainerTwoInstances runs a two-instance job the way SageMaker
// Processing starts it: the same image on algo-1 and algo-2, each with its
// own /opt/ml and the PySpark script's ContainerArguments.
func TestContainerTwoInstances(t *testing.T) {
	a := newCtrArea(t)
	inDir, inFile := ctrGenInput(t, 300_000)
	a.upload(t, "input/data.csv", inFile)
	ref := ctrReference(t, inDir, "--seed", "7", "--split-size", "1MiB")

	job, roots := ctrSeedJob(t, a, 2, "output")
	port := strconv.Itoa(ctrFreePort(t))
	env := ctrMinIOEnv(a.e)
	argv := func(i int) []string {
		args := []string{"container", "--sagemaker-root", roots[i], "--cluster-port", port, "--listen", "127.0.0.1",
			"--host-address", "algo-1=127.0.0.1", "--s3-endpoint", a.e.Endpoint,
			"--credentials", "default", "--seed", "7", "--split-size", "1MiB", "--workers", "2"}
		return append(args, platformArgs(t, roots[i])...)
	}
	algo1 := startCtr(t, "algo-1", env, argv(0)...)

	// The coordinator publishes the secret before it plans the job.
	secretKey := "output/_shardprep/cluster-secret-" + job
	var secret string
	for deadline := time.Now().Add(time.Minute); secret == ""; time.Sleep(20 * time.Millisecond) {
		if data, err := a.get(t, secretKey); err == nil {
			secret = string(data)
		} else if !algo1.running() || time.Now().After(deadline) {
			t.Fatalf("no cluster secret at %s (algo-1 running: %t)\n%s", secretKey, algo1.running(), algo1.tail())
		}
	}
	if len(secret) != 64 {
		t.Errorf("cluster secret has %d characters, want 64 hex", len(secret))
	}
	algo2 := startCtr(t, "algo-2", env, argv(1)...)

	for _, p := range []*ctrProc{algo1, algo2} {
		if code := p.wait(t, 3*time.Minute); code != 0 {
			t.Errorf("%s exit status %d\n%s", p.name, code, p.tail())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// --listen narrows the coordinator to loopback, where its own worker
	// and algo-2 (at 127.0.0.1 here) join it.
	if want := `"msg":"coordinator listening","addr":"127.0.0.1:` + port + `"`; !strings.Contains(algo1.stderr.String(), want) {
		t.Errorf("algo-1 did not log %s", want)
	}
	for i, p := range []*ctrProc{algo1, algo2} {
		ctrNoFailureMessage(t, roots[i])
		p.allJSONLines(t)
		if strings.Contains(p.stdout.String()+p.stderr.String(), secret) {
			t.Errorf("%s wrote the cluster secret to its output", p.name)
		}
	}

	keys := a.keys(t, "output/")
	for _, k := range []string{"train/_SUCCESS", "validation/_SUCCESS", pipeline.ManifestKey} {
		if !slices.Contains(keys, k) {
			t.Errorf("output lacks %s: %q", k, keys)
		}
	}
	if _, err := a.get(t, secretKey); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the cluster secret object is still there after the job")
	}
	manifests := 0
	got := map[string][]byte{}
	for _, k := range keys {
		switch {
		case strings.HasSuffix(k, "manifest.json"):
			manifests++
		case strings.Contains(k, "cluster-secret"):
			t.Errorf("cluster secret left in the output: %s", k)
		case strings.Contains(k, "/part-"):
			got[k], _ = a.get(t, "output/"+k)
		}
	}
	if manifests != 1 {
		t.Errorf("%d manifests, want 1", manifests)
	}
	ctrCompareParts(t, partsOf(t, ref), got)

	data, err := a.get(t, "output/"+pipeline.ManifestKey)
	if err != nil {
		t.Fatal(err)
	}
	var m pipeline.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Job != job || m.Seed != 7 {
		t.Errorf("manifest job %q seed %d, want %q and 7", m.Job, m.Seed, job)
	}
	var names []string
	for _, w := range m.Workers {
		names = append(names, w.Worker)
		t.Logf("worker %s: %d tasks, %d rows", w.Worker, w.Tasks, w.Rows)
	}
	for _, h := range []string{"algo-1", "algo-2"} {
		if !slices.Contains(names, h) {
			t.Errorf("manifest workers %q lack %s", names, h)
		}
	}
}

// TestContainerLateWorker: an instance that comes up after the others
// committed the job finds the job done and exits 0, as SageMaker needs
// every instance to for a completed job.
func TestContainerLateWorker(t *testing.T) {
	a := newCtrArea(t)
	a.upload(t, "input/abalone.csv", "sample/abalone.csv")
	job, roots := ctrSeedJob(t, a, 2, "output")
	port := strconv.Itoa(ctrFreePort(t))
	env := append(ctrMinIOEnv(a.e), "AWS_ENDPOINT_URL_S3="+a.e.Endpoint)
	argv := func(i int) []string {
		args := []string{"container", "--sagemaker-root", roots[i], "--cluster-port", port,
			"--host-address", "algo-1=127.0.0.1", "--credentials", "default", "--secret-timeout", "20s"}
		return append(args, platformArgs(t, roots[i])...)
	}
	algo1 := startCtr(t, "algo-1", env, argv(0)...)
	if code := algo1.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("algo-1 exit status %d\n%s", code, algo1.tail())
	}
	start := time.Now()
	algo2 := startCtr(t, "algo-2", env, argv(1)...)
	if code := algo2.wait(t, time.Minute); code != 0 {
		t.Fatalf("algo-2 exit status %d\n%s", code, algo2.tail())
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the late worker took %s to see the job committed", d)
	}
	if !strings.Contains(algo2.stderr.String(), "the job committed before this worker joined") {
		t.Errorf("algo-2 did not say the job committed before it joined:\n%s", algo2.tail())
	}
	ctrNoFailureMessage(t, roots[1])
	if _, err := a.get(t, "output/_shardprep/cluster-secret-"+job); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the cluster secret object is still there after the job")
	}
}

// TestContainerSIGTERM stops a running job the way StopProcessingJob
// does: SIGTERM to every instance while parts are being uploaded.
func TestContainerSIGTERM(t *testing.T) {
	a := newCtrArea(t)
	_, inFile := ctrGenInput(t, 800_000)
	a.upload(t, "input/data.csv", inFile)
	info, err := os.Stat(inFile)
	if err != nil {
		t.Fatal(err)
	}
	const splitSize = 16 << 20
	splits := int((info.Size()+splitSize-1)/splitSize) + 1

	for _, hosts := range []int{1, 2} {
		t.Run(map[int]string{1: "one instance", 2: "two instances"}[hosts], func(t *testing.T) {
			out := fmt.Sprintf("out-%d/", hosts)
			_, roots := ctrSeedJob(t, a, hosts, strings.TrimSuffix(out, "/"))
			port := strconv.Itoa(ctrFreePort(t))
			env := append(ctrMinIOEnv(a.e), "AWS_ENDPOINT_URL_S3="+a.e.Endpoint)
			var procs []*ctrProc
			for i, root := range roots {
				args := []string{"container", "--sagemaker-root", root, "--cluster-port", port,
					"--host-address", "algo-1=127.0.0.1", "--credentials", "default",
					"--split-size", "16MiB", "--s3-part-size", "5MiB", "--workers", "2"}
				procs = append(procs, startCtr(t, fmt.Sprintf("algo-%d", i+1), env, append(args, platformArgs(t, root)...)...))
			}

			// Stop once a part is being uploaded in pieces.
			keys := ctrPartKeys(out, splits)
			for deadline := time.Now().Add(2 * time.Minute); len(a.openUploads(t, keys)) == 0; time.Sleep(50 * time.Millisecond) {
				for _, p := range procs {
					if !p.running() {
						t.Fatalf("%s ended before any multipart upload began\n%s", p.name, p.tail())
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("no multipart upload began within 2m")
				}
			}
			sent := time.Now()
			for _, p := range procs {
				if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			for i, p := range procs {
				code := p.wait(t, time.Minute)
				took := p.exitedAt.Sub(sent)
				t.Logf("%s exit status %d, %s after SIGTERM", p.name, code, took.Round(time.Millisecond))
				if code == 0 {
					t.Errorf("%s exited 0 after SIGTERM", p.name)
				}
				if took > 20*time.Second {
					t.Errorf("%s took %s to exit after SIGTERM", p.name, took)
				}
				msg := ctrFailureMessage(t, roots[i])
				t.Logf("%s message: %s", p.name, msg)
				if !strings.Contains(msg, "interrupted") {
					t.Errorf("%s failure message does not say the job was interrupted: %q", p.name, msg)
				}
			}
			for _, k := range a.keys(t, out) {
				if strings.Contains(k, "_SUCCESS") || strings.Contains(k, "/part-") || strings.Contains(k, "cluster-secret") {
					t.Errorf("left behind after SIGTERM: %s%s", out, k)
				}
			}
			if open := a.openUploads(t, keys); len(open) > 0 {
				t.Errorf("multipart uploads left open after SIGTERM: %q", open)
			}
		})
	}
}

// TestContainerLocalChannels runs a one-instance job whose input and
// output are ProcessingInput and ProcessingOutput folders, with the
// platform's /opt/ml paths resolved under --sagemaker-root.
func TestContainerLocalChannels(t *testing.T) {
	abalone, err := os.ReadFile("sample/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	inDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(inDir, "abalone.csv"), abalone, 0o644); err != nil {
		t.Fatal(err)
	}
	ref := ctrReference(t, inDir, "--seed", "42", "--split-size", "64KiB")

	setup := func(t *testing.T, data []byte) (root, job string) {
		job = ctrName("local-")
		root = smTree(t, "local-channels", map[string]string{"JOB": job})
		in := filepath.Join(root, "opt/ml/processing/input/abalone")
		for _, d := range []string{in, filepath.Join(root, "opt/ml/processing/output/prepared")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(in, "abalone.csv"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return root, job
	}

	t.Run("committed", func(t *testing.T) {
		root, job := setup(t, abalone)
		// Only the container's own flag: the job's ContainerArguments
		// (--seed 42 --split-size 64KiB) are used.
		p := startCtr(t, "algo-1", baseEnv(), "container", "--sagemaker-root", root)
		if code := p.wait(t, time.Minute); code != 0 {
			t.Fatalf("exit status %d\n%s", code, p.tail())
		}
		out := filepath.Join(root, "opt/ml/processing/output/prepared")
		ctrCompareParts(t, partsOf(t, ref), partsOf(t, out))
		for _, marker := range []string{"train/_SUCCESS", "validation/_SUCCESS"} {
			if _, err := os.Stat(filepath.Join(out, marker)); err != nil {
				t.Error(err)
			}
		}
		m := readManifest(t, out)
		if m.Job != job || m.Seed != 42 || m.SplitSize != 64<<10 {
			t.Errorf("manifest job %q seed %d split size %d, want %q, 42, 64KiB", m.Job, m.Seed, m.SplitSize, job)
		}
		ctrNoFailureMessage(t, root)
		p.allJSONLines(t)
	})

	t.Run("bad row", func(t *testing.T) {
		bad := bytes.Replace(abalone, []byte("\nM,0.455,"), []byte("\nM,oops,"), 1)
		if bytes.Equal(bad, abalone) {
			t.Fatal("test input unchanged")
		}
		root, _ := setup(t, bad)
		p := startCtr(t, "algo-1", baseEnv(), "container", "--sagemaker-root", root)
		if code := p.wait(t, time.Minute); code == 0 {
			t.Fatalf("exit status 0 for a bad row\n%s", p.tail())
		}
		msg := ctrFailureMessage(t, root)
		if !strings.Contains(msg, "abalone.csv") || !strings.Contains(msg, "oops") {
			t.Errorf("failure message does not name the object and the bad text: %q", msg)
		}
		out := filepath.Join(root, "opt/ml/processing/output/prepared")
		if files := committedFiles(t, out); len(files) > 0 {
			t.Errorf("a failed job left %q", files)
		}
	})
}

// TestContainerRefusals checks the configurations the container refuses,
// each with its reason in opt/ml/output/message.
func TestContainerRefusals(t *testing.T) {
	twoHosts := map[string]string{"HOST": "algo-2", "HOSTS": `["algo-1", "algo-2"]`, "COUNT": "2", "JOB": "refused",
		"BUCKET": "bucket", "INPUT": "in", "OUTPUT": "out"}
	cases := []struct {
		name string
		tree string
		args []string
		want string
	}{
		{"secret in the job's Environment", "secret-in-environment", nil, "anyone allowed to describe the job"},
		{"two instances with a local output", "seed-job",
			[]string{"--input", "s3://bucket/in/", "--output", "/opt/ml/processing/output/prepared"}, "needs an s3:// output"},
		{"host not in the job", "seed-job", []string{"--host", "algo-9"}, `"algo-9" is not one of the job's hosts`},
		{"seed and shardprep output flags", "seed-job", []string{"--output", "s3://bucket/x/", "--s3_output_bucket", "b"}, "both --s3_output_bucket and --output"},
		{"no configuration", "", nil, "reading the SageMaker Processing configuration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.tree != "" {
				root = smTree(t, c.tree, twoHosts)
			}
			args := append([]string{"container", "--sagemaker-root", root}, c.args...)
			env := func(k string) string {
				if k == "SHARDPREP_CLUSTER_SECRET" && c.tree == "secret-in-environment" {
					return "0123456789abcdef0123456789abcdef" // as SageMaker sets the job's Environment
				}
				return ""
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, env, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q\n%s", err, c.want, stderr.String())
			}
			if msg := ctrFailureMessage(t, root); !strings.Contains(msg, c.want) {
				t.Errorf("failure message %q lacks %q", msg, c.want)
			}
		})
	}
}

// TestContainerStagesParquet: a SageMaker Processing job whose arguments
// name a spec with Spark ML stages, shipped in its own input channel, and
// the parquet format writes the same parts as `run` with those arguments.
func TestContainerStagesParquet(t *testing.T) {
	cars, err := os.ReadFile("sample/cars.csv")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("sample/cars.spec.json")
	if err != nil {
		t.Fatal(err)
	}
	inDir := t.TempDir()
	writeFiles(t, inDir, map[string]string{"cars.csv": string(cars), "cars.spec.json": string(spec)})
	ref := ctrReference(t, filepath.Join(inDir, "cars.csv"), "--spec", filepath.Join(inDir, "cars.spec.json"),
		"--output-format", "parquet", "--seed", "42")

	root := smTree(t, "local-channels", map[string]string{"JOB": ctrName("stages-")})
	config := filepath.Join(root, "opt/ml/config/processingjobconfig.json")
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	args := `["--spec", "/opt/ml/processing/input/spec/cars.spec.json", "--output-format", "parquet", "--seed", "42"]`
	data = []byte(strings.Replace(string(data), `["--seed", "42", "--split-size", "64KiB"]`, args, 1))
	if !strings.Contains(string(data), args) {
		t.Fatal("the job's arguments were not replaced")
	}
	writeFiles(t, filepath.Dir(config), map[string]string{"processingjobconfig.json": string(data)})
	writeFiles(t, filepath.Join(root, "opt/ml/processing/input/abalone"), map[string]string{"cars.csv": string(cars)})
	writeFiles(t, filepath.Join(root, "opt/ml/processing/input/spec"), map[string]string{"cars.spec.json": string(spec)})
	out := filepath.Join(root, "opt/ml/processing/output/prepared")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}

	p := startCtr(t, "algo-1", baseEnv(), "container", "--sagemaker-root", root)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit status %d\n%s", code, p.tail())
	}
	want, got := partsOf(t, ref), partsOf(t, out)
	parquet := 0
	for k := range want {
		if strings.HasSuffix(k, ".parquet") {
			parquet++
		}
	}
	if parquet == 0 {
		t.Fatalf("the reference job wrote no parquet parts: %v", slices.Sorted(maps.Keys(want)))
	}
	ctrCompareParts(t, want, got)
	ctrNoFailureMessage(t, root)
}
