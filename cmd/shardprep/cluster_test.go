package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// The tests in this file run shardprep as real processes: a coordinator
// and workers talking HTTP, killed and stopped with signals.

var (
	binDir  string // removed after the tests
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shardprep-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	removeTestImage()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shardprepBin builds the shardprep binary once, on first use.
func shardprepBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binPath = filepath.Join(binDir, "shardprep")
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building shardprep: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

const testSecret = "s3cr3t-for-the-cluster-tests-only"

// baseEnv is this process's environment without anything that could
// reach shardprep from outside the test: AWS, SHARDPREP and proxy
// settings.
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "SHARDPREP_") || strings.HasSuffix(strings.ToUpper(k), "_PROXY") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func clusterEnv(extra ...string) []string {
	return baseEnv(append([]string{"SHARDPREP_CLUSTER_SECRET=" + testSecret}, extra...)...)
}

// proc is a running shardprep process with its output, line by line.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	stdout  []string
	stderr  []string
	changed chan struct{} // closed and replaced on every line
	hook    func(rec logRecord)
	exitAt  time.Time

	done chan struct{} // closed when the process has exited
}

// logRecord is one JSON log line.
type logRecord struct {
	Msg    string `json:"msg"`
	Level  string `json:"level"`
	Worker string `json:"worker"`
	Task   string `json:"task"`
	Phase  string `json:"phase"`
	raw    string
}

// start runs argv (argv[0] is the program) with env; the process is
// killed at the end of the test if still running.
func start(t *testing.T, name string, env []string, argv ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(argv[0], argv[1:]...), changed: make(chan struct{}), done: make(chan struct{})}
	p.cmd.Env = env
	outPipe, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	var readers sync.WaitGroup
	read := func(r io.Reader, into *[]string, logs bool) {
		defer readers.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			line := sc.Text()
			var rec logRecord
			if logs {
				if json.Unmarshal([]byte(line), &rec) == nil {
					rec.raw = line
				}
			}
			p.mu.Lock()
			*into = append(*into, line)
			close(p.changed)
			p.changed = make(chan struct{})
			hook := p.hook
			p.mu.Unlock()
			if hook != nil && rec.raw != "" {
				hook(rec)
			}
		}
	}
	readers.Add(2)
	go read(outPipe, &p.stdout, false)
	go read(errPipe, &p.stderr, true)
	go func() {
		readers.Wait()
		p.cmd.Wait()
		p.mu.Lock()
		p.exitAt = time.Now()
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not exit after SIGKILL", name)
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.out(), name, p.errText())
		}
	})
	return p
}

// onLog sets a function called with each JSON log line, as it arrives.
func (p *proc) onLog(f func(rec logRecord)) {
	p.mu.Lock()
	p.hook = f
	p.mu.Unlock()
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

func (p *proc) out() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stdout, "\n")
}

func (p *proc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

func (p *proc) logs() []logRecord {
	p.mu.Lock()
	lines := append([]string(nil), p.stderr...)
	p.mu.Unlock()
	var recs []logRecord
	for _, l := range lines {
		var rec logRecord
		if json.Unmarshal([]byte(l), &rec) == nil {
			rec.raw = l
			recs = append(recs, rec)
		}
	}
	return recs
}

// await waits until cond holds for the process's output so far, the
// process exits, or timeout passes; it returns whether cond held.
func (p *proc) await(timeout time.Duration, cond func() bool) bool {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-p.done:
			return cond()
		case <-deadline:
			return cond()
		case <-time.After(50 * time.Millisecond): // cond may depend on other processes
		}
	}
}

// wait waits for the process to exit and returns its exit code (-1 when
// a signal ended it).
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %s\nstdout:\n%s\nstderr:\n%s", p.name, timeout, p.out(), p.errText())
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) exited() (time.Time, bool) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.exitAt, true
	default:
		return time.Time{}, false
	}
}

var listenRE = regexp.MustCompile(`coordinator listening on (\S+),`)

// startCoordinator starts a coordinator (wrapped in prefix, e.g. ip netns
// exec) with JSON debug logs and returns it with its address.
func startCoordinator(t *testing.T, env, prefix []string, args ...string) (*proc, string) {
	t.Helper()
	argv := append(append(append([]string(nil), prefix...), shardprepBin(t), "coordinator", "--log-format", "json"), args...)
	p := start(t, "coordinator", append(env, "SHARDPREP_DEBUG=1"), argv...)
	var addr string
	ok := p.await(60*time.Second, func() bool {
		if m := listenRE.FindStringSubmatch(p.out()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	if !ok {
		t.Fatalf("coordinator did not start listening\nstdout:\n%s\nstderr:\n%s", p.out(), p.errText())
	}
	return p, addr
}

func startWorker(t *testing.T, env, prefix []string, url, name string, args ...string) *proc {
	t.Helper()
	argv := append(append(append([]string(nil), prefix...), shardprepBin(t), "worker", "--coordinator", url, "--name", name,
		"--workers", "1", "--log-format", "json"), args...)
	return start(t, name, env, argv...)
}

// Test data: 200,000 generated rows, made once.
var (
	dataOnce sync.Once
	dataPath string
	dataErr  error
	refMu    sync.Mutex
	refs     = map[string]string{}
)

func testData(t *testing.T) string {
	t.Helper()
	bin := shardprepBin(t)
	dataOnce.Do(func() {
		dataPath = filepath.Join(binDir, "data", "abalone-200k.csv")
		os.MkdirAll(filepath.Dir(dataPath), 0o755)
		out, err := exec.Command(bin, "gen", "--rows", "200000", "--seed", "5", "--out", dataPath).CombinedOutput()
		if err != nil {
			dataErr = fmt.Errorf("gen: %v\n%s", err, out)
		}
	})
	if dataErr != nil {
		t.Fatal(dataErr)
	}
	return dataPath
}

// reference returns the output folder of `shardprep run` in-process on
// input with the given seed and split size, made once per combination.
func reference(t *testing.T, input, seed, splitSize string) string {
	t.Helper()
	refMu.Lock()
	defer refMu.Unlock()
	key := input + "|" + seed + "|" + splitSize
	if dir, ok := refs[key]; ok {
		return dir
	}
	dir := filepath.Join(binDir, fmt.Sprintf("ref-%d", len(refs)))
	cmd := exec.Command(shardprepBin(t), "run", "--input", input, "--output", dir, "--seed", seed, "--split-size", splitSize, "--workers", "2", "--quiet")
	cmd.Env = baseEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, out)
	}
	refs[key] = dir
	return dir
}

// partsOf reads the part files of the train and validation folders.
func partsOf(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	parts := map[string][]byte{}
	for _, split := range []string{"train", "validation"} {
		names, err := filepath.Glob(filepath.Join(dir, split, "part-*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			parts[split+"/"+filepath.Base(n)] = b
		}
	}
	return parts
}

// sameParts fails unless got holds exactly the parts of want, byte for byte.
func sameParts(t *testing.T, want, got map[string][]byte) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("the reference output has no parts")
	}
	var names []string
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s missing", k)
		case !bytes.Equal(g, want[k]):
			t.Errorf("%s differs from the in-process run (%d vs %d bytes)", k, len(g), len(want[k]))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected part %s", k)
		}
	}
}

func committed(t *testing.T, dir string) {
	t.Helper()
	for _, s := range []string{"train", "validation"} {
		if _, err := os.Stat(filepath.Join(dir, s, "_SUCCESS")); err != nil {
			t.Errorf("%s/_SUCCESS: %v", s, err)
		}
	}
}

// noSuccess fails if a _SUCCESS marker exists anywhere under dir.
func noSuccess(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == pipeline.SuccessName {
			t.Errorf("%s exists", path)
		}
		return nil
	})
}

// workerRecord is a worker's record in a manifest.
type workerRecord struct {
	Worker      string
	Tasks       int
	Rows, Bytes int64
	Lost        bool
}

// workerSummary returns the record of the worker name in m, if any.
func workerSummary(m *pipeline.Manifest, name string) (workerRecord, bool) {
	for _, w := range m.Workers {
		if w.Worker == name {
			return workerRecord{w.Worker, w.Tasks, w.Rows, w.Bytes, w.Lost}, true
		}
	}
	return workerRecord{}, false
}

func countMsg(recs []logRecord, msg string) int {
	n := 0
	for _, r := range recs {
		if r.Msg == msg {
			n++
		}
	}
	return n
}

// TestClusterMatchesRun: a coordinator working on splits itself and three
// worker processes on loopback write the bytes of `shardprep run`.
func TestClusterMatchesRun(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "7", "1MiB")
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "7", "--split-size", "1MiB", "--workers", "1", "--lease", "5s")
	var workers []*proc
	for i := 1; i <= 3; i++ {
		workers = append(workers, startWorker(t, clusterEnv(), nil, "http://"+addr, fmt.Sprintf("w%d", i)))
	}
	if code := coord.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, coord.errText())
	}
	for _, w := range workers {
		if code := w.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit %d\n%s", w.name, code, w.errText())
		}
		if !strings.Contains(w.out(), "the job committed") {
			t.Errorf("%s stdout: %q", w.name, w.out())
		}
	}
	sameParts(t, partsOf(t, ref), partsOf(t, out))
	committed(t, out)
	m := readManifest(t, out)
	total := 0
	for _, ws := range m.Workers {
		total += ws.Tasks
	}
	if len(m.Workers) < 2 || total != fitTasks(m)+len(m.Parts) || len(m.Reassigned) != 0 {
		t.Errorf("manifest: workers %+v (%d tasks for %d splits), reassigned %v", m.Workers, total, len(m.Parts), m.Reassigned)
	}
	// The summary and the log account for every worker.
	if n := countMsg(coord.logs(), "worker summary"); n != len(m.Workers) {
		t.Errorf("%d worker summary lines for %d workers", n, len(m.Workers))
	}
	if len(m.Workers) > 1 && !strings.Contains(coord.out(), "worker "+m.Workers[0].Worker) {
		t.Errorf("the coordinator's summary lacks per-worker lines:\n%s", coord.out())
	}
}

// leaseTracker follows, from the coordinator's debug log, the tasks each
// worker holds.
type leaseTracker struct{ p *proc }

var splitRE = regexp.MustCompile(`^(\w+) split (\d+) \(attempt (\d+)\)$`)

// held returns the tasks worker holds: leased to it, neither reported
// done or failed, nor expired.
func (lt leaseTracker) held(worker string) map[string]bool {
	held := map[string]bool{}
	for _, r := range lt.p.logs() {
		if r.Worker != worker || r.Task == "" {
			continue
		}
		switch r.Msg {
		case "task leased":
			held[r.Task] = true
		case "task done", "task failed", "lease expired; reassigning":
			delete(held, r.Task)
		}
	}
	return held
}

func (lt leaseTracker) expired(worker string) []string {
	var tasks []string
	for _, r := range lt.p.logs() {
		if r.Msg == "lease expired; reassigning" && r.Worker == worker {
			tasks = append(tasks, r.Task)
		}
	}
	return tasks
}

// TestClusterSurvivesKilledWorker: a worker SIGKILLed while it holds a
// transform task loses it to another worker when its lease lapses; the
// job commits the same bytes, and the manifest records the reassignment.
func TestClusterSurvivesKilledWorker(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "11", "256KiB")
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "11", "--split-size", "256KiB", "--workers", "0", "--lease", "1s")
	lt := leaseTracker{coord}
	// The victim is stopped the moment the coordinator hands it its
	// second transform task, so it is frozen holding a lease.
	var victim atomic.Pointer[proc]
	var armed atomic.Bool
	var transformLeases atomic.Int32
	stopped := make(chan string, 10)
	coord.onLog(func(r logRecord) {
		if r.Msg == "task leased" && r.Worker == "w2" && strings.HasPrefix(r.Task, "transform") &&
			transformLeases.Add(1) >= 2 && armed.CompareAndSwap(true, false) {
			victim.Load().cmd.Process.Signal(syscall.SIGSTOP)
			stopped <- r.Task
		}
	})
	armed.Store(true)
	w1 := startWorker(t, clusterEnv(), nil, "http://"+addr, "w1")
	victim.Store(startWorker(t, clusterEnv(), nil, "http://"+addr, "w2"))
	w3 := startWorker(t, clusterEnv(), nil, "http://"+addr, "w3")
	w2 := victim.Load()

	var lost []string
	for attempt := 1; ; attempt++ {
		select {
		case <-stopped:
		case <-coord.done:
			t.Fatalf("the job ended before w2 could be stopped holding a task:\n%s", coord.errText())
		case <-time.After(2 * time.Minute):
			t.Fatal("w2 was never leased a second transform task")
		}
		// Frozen, w2 either still holds its task (its lease will lapse)
		// or had reported it just before it stopped.
		coord.await(30*time.Second, func() bool { return len(lt.expired("w2")) > 0 || len(lt.held("w2")) == 0 })
		if lost = lt.expired("w2"); len(lost) > 0 {
			break
		}
		if attempt == 5 {
			t.Fatal("w2 finished its task before it stopped, 5 times")
		}
		armed.Store(true)
		w2.signal(t, syscall.SIGCONT)
	}
	w2.signal(t, syscall.SIGKILL)
	if code := coord.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, coord.errText())
	}
	for _, w := range []*proc{w1, w3} {
		if code := w.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit %d", w.name, code)
		}
	}
	sameParts(t, partsOf(t, ref), partsOf(t, out))
	committed(t, out)

	m := readManifest(t, out)
	reassigned := map[int]bool{}
	for _, r := range m.Reassigned {
		if r.From != "w2" || r.Reason != "lease expired" || r.Phase != pipeline.PhaseTransform {
			t.Errorf("unexpected reassignment %+v", r)
		}
		reassigned[r.Split] = true
	}
	for _, task := range lost {
		mm := splitRE.FindStringSubmatch(task)
		if mm == nil {
			t.Fatalf("task %q", task)
		}
		split, _ := strconv.Atoi(mm[2])
		if !reassigned[split] {
			t.Errorf("split %d, lost by w2, is not in the manifest's reassigned %+v", split, m.Reassigned)
		}
		p := m.Parts[split]
		if len(p.Workers) < 2 || p.Workers[0] != "w2" || p.Workers[len(p.Workers)-1] == "w2" {
			t.Errorf("part %d workers %v, want w2 then another", split, p.Workers)
		}
	}
	if ws, ok := workerSummary(m, "w2"); !ok || !ws.Lost {
		t.Errorf("w2 in the manifest: %+v, want lost", ws)
	}
}

// TestClusterCoordinatorKilled: when the coordinator dies, every worker
// exits non-zero within its --coordinator-timeout, and nothing is
// committed.
func TestClusterCoordinatorKilled(t *testing.T) {
	in := testData(t)
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "3", "--split-size", "256KiB", "--workers", "0", "--lease", "2s")
	var killedAt atomic.Int64
	coord.onLog(func(r logRecord) {
		if r.Msg == "task leased" && strings.HasPrefix(r.Task, "transform") && killedAt.Load() == 0 {
			coord.cmd.Process.Kill()
			killedAt.Store(time.Now().UnixNano())
		}
	})
	const timeout = 3 * time.Second
	var workers []*proc
	for i := 1; i <= 3; i++ {
		workers = append(workers, startWorker(t, clusterEnv(), nil, "http://"+addr, fmt.Sprintf("w%d", i),
			"--coordinator-timeout", timeout.String()))
	}
	if code := coord.wait(t, 2*time.Minute); code != -1 || killedAt.Load() == 0 {
		t.Fatalf("coordinator exit %d before it was killed in the transform phase\n%s", code, coord.errText())
	}
	killed := time.Unix(0, killedAt.Load())
	for _, w := range workers {
		code := w.wait(t, timeout+30*time.Second)
		at, _ := w.exited()
		if code == 0 {
			t.Errorf("%s exited 0 without a committed job", w.name)
		}
		// The bound: the timeout, plus a heartbeat period and the time
		// to stop a running task, on a busy machine.
		if d := at.Sub(killed); d > timeout+5*time.Second {
			t.Errorf("%s exited %s after the coordinator died; timeout %s", w.name, d, timeout)
		}
		if !strings.Contains(w.errText(), "coordinator unreachable") {
			t.Errorf("%s does not say the coordinator is unreachable:\n%s", w.name, lastLines(w.errText(), 3))
		}
	}
	noSuccess(t, out)
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestClusterRefusesWrongSecret: a worker with another secret is refused
// and exits non-zero at once with a clear message; unsigned requests are
// refused; the secret never appears in the log; a worker with the right
// secret then does the job.
func TestClusterRefusesWrongSecret(t *testing.T) {
	in := testData(t)
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "5", "--split-size", "1MiB", "--workers", "0", "--lease", "5s")
	const wrong = "not-the-cluster-secret-at-all"
	intruder := startWorker(t, baseEnv("SHARDPREP_CLUSTER_SECRET="+wrong), nil, "http://"+addr, "intruder")
	start := time.Now()
	if code := intruder.wait(t, 30*time.Second); code != 1 {
		t.Errorf("worker with a wrong secret: exit %d, want 1", code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("worker with a wrong secret took %s to give up", d)
	}
	if e := intruder.errText(); !strings.Contains(e, "refused") || !strings.Contains(e, "wrong cluster secret") {
		t.Errorf("worker with a wrong secret says:\n%s", lastLines(e, 3))
	}
	nosecret := startWorker(t, baseEnv(), nil, "http://"+addr, "nosecret")
	if code := nosecret.wait(t, 30*time.Second); code != 2 || !strings.Contains(nosecret.errText(), "SHARDPREP_CLUSTER_SECRET") {
		t.Errorf("worker without a secret: exit %d, %s", code, lastLines(nosecret.errText(), 1))
	}
	resp, err := http.Post("http://"+addr+"/v1/join", "application/json", strings.NewReader(`{"protocol":1,"worker":"curl"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned join: %s, want 401", resp.Status)
	}

	good := startWorker(t, clusterEnv(), nil, "http://"+addr, "good")
	if code := coord.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d", code)
	}
	if code := good.wait(t, 30*time.Second); code != 0 {
		t.Errorf("good worker exit %d", code)
	}
	committed(t, out)
	logs := coord.errText()
	if strings.Count(logs, "refused a request") < 2 {
		t.Errorf("refusals not logged:\n%s", logs)
	}
	if strings.Contains(logs, testSecret) || strings.Contains(logs, wrong) {
		t.Error("a secret appears in the coordinator's log")
	}
	if m := readManifest(t, out); len(m.Workers) != 1 || m.Workers[0].Worker != "good" {
		t.Errorf("manifest workers %+v, want only good", m.Workers)
	}
}

// TestClusterLateJoiner: a worker that joins while the job is in its
// transform phase gets work. The first worker is frozen (SIGSTOP) holding
// a task so that the job cannot end without the late one, then resumed;
// both exit 0 and the output is the in-process run's.
func TestClusterLateJoiner(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "13", "256KiB")
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "13", "--split-size", "256KiB", "--workers", "0", "--lease", "30s")
	var early atomic.Pointer[proc]
	stopped := make(chan struct{})
	var once sync.Once
	coord.onLog(func(r logRecord) {
		if r.Msg == "task leased" && r.Worker == "early" && strings.HasPrefix(r.Task, "transform") {
			once.Do(func() {
				early.Load().cmd.Process.Signal(syscall.SIGSTOP)
				close(stopped)
			})
		}
	})
	early.Store(startWorker(t, clusterEnv(), nil, "http://"+addr, "early"))
	select {
	case <-stopped:
	case <-time.After(2 * time.Minute):
		t.Fatal("early was never leased a transform task")
	}
	late := startWorker(t, clusterEnv(), nil, "http://"+addr, "late")
	lateDid := func() bool {
		for _, r := range coord.logs() {
			if r.Msg == "task done" && r.Worker == "late" {
				return true
			}
		}
		return false
	}
	if !coord.await(time.Minute, lateDid) {
		t.Fatal("the late worker did no task")
	}
	early.Load().signal(t, syscall.SIGCONT)
	if code := coord.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d", code)
	}
	for _, w := range []*proc{early.Load(), late} {
		if code := w.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit %d", w.name, code)
		}
	}
	sameParts(t, partsOf(t, ref), partsOf(t, out))
	committed(t, out)
	m := readManifest(t, out)
	for _, name := range []string{"early", "late"} {
		if ws, ok := workerSummary(m, name); !ok || ws.Tasks == 0 || ws.Lost {
			t.Errorf("%s in the manifest: %+v, want tasks and no lost lease", name, ws)
		}
	}
	for _, r := range coord.logs() {
		if r.Msg == "worker joined" && r.Worker == "late" && r.Phase != "transform" {
			t.Errorf("late joined in phase %q", r.Phase)
		}
	}
}

// TestClusterJoinDuringLinger: after the commit the coordinator keeps
// answering while a worker it knows has not heard the outcome; a worker
// joining then learns the job committed and exits 0.
func TestClusterJoinDuringLinger(t *testing.T) {
	in := testData(t)
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "5", "--split-size", "1MiB", "--workers", "0", "--lease", "30s", "--linger", "60s")
	// An observer joins and stays silent: the coordinator lingers for it.
	var obs struct {
		Worker string `json:"worker"`
		Job    struct {
			RunID string `json:"run_id"`
		} `json:"job"`
	}
	observer := &testClient{base: "http://" + addr, worker: "observer", secret: []byte(testSecret)}
	err := observer.call("/v1/join", map[string]any{"protocol": pipeline.ProtocolVersion, "worker": "observer", "instance": "observer-1"}, &obs)
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, clusterEnv(), nil, "http://"+addr, "w1")
	if !coord.await(2*time.Minute, func() bool { return countMsg(coord.logs(), "job committed") > 0 }) {
		t.Fatal("the job did not commit")
	}
	if code := w.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("w1 exit %d", code)
	}
	after := startWorker(t, clusterEnv(), nil, "http://"+addr, "after")
	if code := after.wait(t, 30*time.Second); code != 0 || !strings.Contains(after.out(), "the job committed") {
		t.Errorf("a worker joining after the commit: exit %d, %q", code, after.out())
	}
	if _, done := coord.exited(); done {
		t.Fatal("the coordinator left while a worker had not heard")
	}
	var hb struct {
		State pipeline.Phase `json:"state"`
	}
	observer.job, observer.worker = obs.Job.RunID, obs.Worker
	err = observer.call("/v1/heartbeat", map[string]any{"worker": obs.Worker}, &hb)
	if err != nil || hb.State != pipeline.PhaseCommitted {
		t.Fatalf("observer heartbeat: %+v %v", hb, err)
	}
	informed := time.Now()
	if code := coord.wait(t, 30*time.Second); code != 0 {
		t.Errorf("coordinator exit %d", code)
	}
	if at, _ := coord.exited(); at.Sub(informed) > 10*time.Second {
		t.Errorf("coordinator lingered %s after every worker heard", at.Sub(informed))
	}
	committed(t, out)
}

// TestClusterDataErrorFailsOnce: an invalid row under --on-invalid error
// fails the job at its first report, not after retries; every process
// exits non-zero; nothing is left in the output.
func TestClusterDataErrorFailsOnce(t *testing.T) {
	data, err := os.ReadFile(testData(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data[:len(data)/4], []byte("\n"))
	lines = lines[:len(lines)-1]
	lines[30000-1] = []byte("F,0.5,0.4,0.1,heavy,0.2,0.1,0.15,9\n")
	in := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(in, bytes.Join(lines, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "5", "--split-size", "256KiB", "--workers", "0", "--lease", "2s")
	var workers []*proc
	for i := 1; i <= 2; i++ {
		workers = append(workers, startWorker(t, clusterEnv(), nil, "http://"+addr, fmt.Sprintf("w%d", i)))
	}
	if code := coord.wait(t, 2*time.Minute); code != 1 {
		t.Fatalf("coordinator exit %d, want 1", code)
	}
	last := lastLines(coord.errText(), 1)
	if !strings.Contains(last, "line 30000") || !strings.Contains(last, `"whole_weight"`) || !strings.Contains(last, "nothing was committed") {
		t.Errorf("coordinator's error: %s", last)
	}
	recs := coord.logs()
	if n, m := countMsg(recs, "data error; the job fails"), countMsg(recs, "task failed"); n != 1 || m != 0 {
		t.Errorf("%d data errors and %d task failures logged, want 1 and 0", n, m)
	}
	for _, w := range workers {
		if code := w.wait(t, 30*time.Second); code != 1 || !strings.Contains(w.errText(), "job failed") {
			t.Errorf("%s: exit %d, %s", w.name, code, lastLines(w.errText(), 1))
		}
	}
	noSuccess(t, out)
	if parts := partsOf(t, out); len(parts) != 0 {
		t.Errorf("the failed job left %d parts", len(parts))
	}
}

// TestClusterOverMinIO: the 1+3 cluster against MinIO (scripts/test.sh
// starts it) writes the bytes of the in-process run on local files.
func TestClusterOverMinIO(t *testing.T) {
	ep, user, pass, bucket := os.Getenv("SHARDPREP_MINIO_ENDPOINT"), os.Getenv("SHARDPREP_MINIO_ROOT_USER"),
		os.Getenv("SHARDPREP_MINIO_ROOT_PASSWORD"), os.Getenv("SHARDPREP_MINIO_BUCKET")
	if ep == "" || user == "" || pass == "" || bucket == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("MinIO not running in CI: SHARDPREP_MINIO_* unset (scripts/test.sh starts it)")
		}
		t.Skip("MinIO not running: use scripts/test.sh")
	}
	in := testData(t)
	ref := reference(t, in, "17", "1MiB")
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(user, pass, "")))
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("cluster-test-%d-%d/", os.Getpid(), time.Now().UnixNano())
	b, err := storage.OpenS3(bucket, prefix, &storage.S3Options{Client: storage.NewS3Client(cfg, ep, true)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		infos, _ := b.List(context.Background(), "")
		for _, i := range infos {
			b.Delete(context.Background(), i.Key)
		}
	})
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.NewWriter(ctx, "in/"+filepath.Base(in))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	root := "s3://" + bucket + "/" + prefix
	env := clusterEnv("AWS_ACCESS_KEY_ID="+user, "AWS_SECRET_ACCESS_KEY="+pass, "AWS_REGION=us-east-1")
	coord, addr := startCoordinator(t, env, nil, "--listen", "127.0.0.1:0", "--input", root+"in/"+filepath.Base(in),
		"--output", root+"out/", "--s3-endpoint", ep, "--seed", "17", "--split-size", "1MiB", "--workers", "1", "--lease", "5s")
	var workers []*proc
	for i := 1; i <= 3; i++ {
		workers = append(workers, startWorker(t, env, nil, "http://"+addr, fmt.Sprintf("w%d", i), "--s3-endpoint", ep))
	}
	if code := coord.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, lastLines(coord.errText(), 5))
	}
	for _, w := range workers {
		if code := w.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit %d\n%s", w.name, code, lastLines(w.errText(), 3))
		}
	}
	got := map[string][]byte{}
	infos, err := b.List(ctx, "out/")
	if err != nil {
		t.Fatal(err)
	}
	success := 0
	for _, info := range infos {
		rel := strings.TrimPrefix(info.Key, "out/")
		if strings.HasSuffix(rel, "/"+pipeline.SuccessName) {
			success++
		}
		if !strings.Contains(rel, "/part-") || strings.HasPrefix(rel, "_") {
			continue
		}
		rc, err := b.NewRangeReader(ctx, info.Key, "", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		got[rel] = body
	}
	sameParts(t, partsOf(t, ref), got)
	if success != 2 {
		t.Errorf("%d _SUCCESS markers, want 2", success)
	}
}

// TestClusterInNetworkNamespaces runs the coordinator and each worker in
// its own network namespace, joined by veth pairs on private /30s, so
// that nothing relies on a shared loopback.
func TestClusterInNetworkNamespaces(t *testing.T) {
	if reason := netnsUnavailable(); reason != "" {
		t.Skip(reason)
	}
	in := testData(t)
	ref := reference(t, in, "19", "1MiB")
	tag := fmt.Sprintf("sp%d", os.Getpid()%100000)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	cns := tag + "-c"
	ip("netns", "add", cns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", cns).Run() })
	ip("-n", cns, "link", "set", "lo", "up")
	const workers = 3
	var wns, caddr []string
	for i := 1; i <= workers; i++ {
		ns := fmt.Sprintf("%s-w%d", tag, i)
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		cEnd, wEnd := fmt.Sprintf("%sc%d", tag, i), fmt.Sprintf("%sw%d", tag, i)
		ip("link", "add", cEnd, "netns", cns, "type", "veth", "peer", "name", wEnd, "netns", ns)
		c, w := fmt.Sprintf("10.213.%d.1", i), fmt.Sprintf("10.213.%d.2", i)
		ip("-n", cns, "addr", "add", c+"/30", "dev", cEnd)
		ip("-n", ns, "addr", "add", w+"/30", "dev", wEnd)
		ip("-n", cns, "link", "set", cEnd, "up")
		ip("-n", ns, "link", "set", wEnd, "up")
		ip("-n", ns, "link", "set", "lo", "up")
		wns = append(wns, ns)
		caddr = append(caddr, c)
	}
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), []string{"ip", "netns", "exec", cns}, "--listen", "0.0.0.0:7070",
		"--input", in, "--output", out, "--seed", "19", "--split-size", "1MiB", "--workers", "0", "--lease", "5s")
	if !strings.HasSuffix(addr, ":7070") {
		t.Fatalf("coordinator listens on %s", addr)
	}
	var procs []*proc
	for i, ns := range wns {
		procs = append(procs, startWorker(t, clusterEnv(), []string{"ip", "netns", "exec", ns}, "http://"+caddr[i]+":7070", fmt.Sprintf("w%d", i+1)))
	}
	if code := coord.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, lastLines(coord.errText(), 5))
	}
	for _, p := range procs {
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit %d\n%s", p.name, code, lastLines(p.errText(), 3))
		}
	}
	sameParts(t, partsOf(t, ref), partsOf(t, out))
	committed(t, out)
	m := readManifest(t, out)
	for i := 1; i <= workers; i++ {
		if ws, ok := workerSummary(m, fmt.Sprintf("w%d", i)); !ok || ws.Tasks == 0 {
			t.Logf("w%d did no task (%+v): the others were faster", i, ws)
		}
	}
}

// netnsUnavailable says why network namespaces cannot be used here, or
// "" when they can.
func netnsUnavailable() string {
	if runtime.GOOS != "linux" {
		return "network namespaces need Linux"
	}
	if os.Geteuid() != 0 {
		return "network namespaces need root (ip netns add)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command (iproute2) is not installed"
	}
	name := fmt.Sprintf("spprobe%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add fails here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", name).Run()
	return ""
}

// TestClusterCoordinatorInterrupted: SIGTERM to the coordinator fails the
// job: the workers hear it and exit non-zero well before their
// coordinator timeout, and the parts already written are removed.
func TestClusterCoordinatorInterrupted(t *testing.T) {
	in := testData(t)
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "3", "--split-size", "256KiB", "--workers", "0", "--lease", "2s")
	var once sync.Once
	coord.onLog(func(r logRecord) {
		if r.Msg == "task done" && strings.HasPrefix(r.Task, "transform") {
			once.Do(func() { coord.cmd.Process.Signal(syscall.SIGTERM) })
		}
	})
	var workers []*proc
	for i := 1; i <= 2; i++ {
		workers = append(workers, startWorker(t, clusterEnv(), nil, "http://"+addr, fmt.Sprintf("w%d", i),
			"--coordinator-timeout", "60s"))
	}
	if code := coord.wait(t, 2*time.Minute); code != 130 {
		t.Errorf("interrupted coordinator: exit %d, want 130\n%s", code, lastLines(coord.errText(), 2))
	}
	stopped, _ := coord.exited()
	for _, w := range workers {
		code := w.wait(t, 30*time.Second)
		at, _ := w.exited()
		if code == 0 || !strings.Contains(w.errText(), "job failed") {
			t.Errorf("%s: exit %d, %s", w.name, code, lastLines(w.errText(), 1))
		}
		if d := at.Sub(stopped); d > 10*time.Second {
			t.Errorf("%s exited %s after the coordinator", w.name, d)
		}
	}
	noSuccess(t, out)
	if parts := partsOf(t, out); len(parts) != 0 {
		t.Errorf("the interrupted job left %d parts", len(parts))
	}
}
