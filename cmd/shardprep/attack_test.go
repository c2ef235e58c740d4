package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shardprep/shardprep/cmd/shardprep/sample"
	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/pipeline"
)

// The tests in this file attack a cluster with real processes: replayed,
// forged and oversized requests, unleased reports, a restarted
// coordinator, a worker that outlives its lease, and a fake coordinator.

// testClient speaks the coordinator protocol as the test's own client,
// signing its requests with secret as pipeline/http.go describes.
type testClient struct {
	base   string
	worker string
	job    string // the run id; "" to join
	secret []byte
}

// signed is a request ready to send (or to send again).
type signed struct {
	path   string
	header string
	body   []byte
}

func hexSHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// sign signs body for path as c, with a fresh nonce.
func (c *testClient) sign(path string, body []byte) signed {
	var n [16]byte
	rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, c.secret)
	io.WriteString(m, strings.Join([]string{"req", "POST" + path, c.job, c.worker, nonce, ts, hexSHA256(body)}, "\n"))
	header := fmt.Sprintf("v=2,job=%s,worker=%s,n=%s,t=%s,sig=%x", c.job, c.worker, nonce, ts, m.Sum(nil))
	return signed{path: path, header: header, body: body}
}

// send sends a signed request and returns the answer's status and body.
func (c *testClient) send(s signed) (int, []byte, error) {
	hr, err := http.NewRequest(http.MethodPost, c.base+s.path, bytes.NewReader(s.body))
	if err != nil {
		return 0, nil, err
	}
	hr.Header.Set("Shardprep-Auth", s.header)
	r, err := http.DefaultClient.Do(hr)
	if err != nil {
		return 0, nil, err
	}
	defer r.Body.Close()
	data, err := io.ReadAll(r.Body)
	return r.StatusCode, data, err
}

// post sends req to path, signed, and returns the answer's status and
// body.
func (c *testClient) post(path string, req any) (int, []byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, nil, err
	}
	return c.send(c.sign(path, body))
}

// call posts req to path and decodes a 200 answer into resp.
func (c *testClient) call(path string, req, resp any) error {
	code, data, err := c.post(path, req)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: %d: %s", path, code, data)
	}
	return json.Unmarshal(data, resp)
}

// joinAs joins the coordinator at addr as worker name and returns the
// client, holding the job's run id, and the job.
func joinAs(t *testing.T, addr, name string) (*testClient, *pipeline.Job) {
	t.Helper()
	c := &testClient{base: "http://" + addr, worker: name, secret: []byte(testSecret)}
	var resp struct {
		Job *pipeline.Job `json:"job"`
	}
	if err := c.call("/v1/join", map[string]any{"protocol": pipeline.ProtocolVersion, "worker": name, "instance": name}, &resp); err != nil {
		t.Fatal(err)
	}
	c.job = resp.Job.RunID
	return c, resp.Job
}

// wireTask is a task as the protocol sends it.
type wireTask struct {
	Phase   string `json:"phase"`
	Split   int    `json:"split"`
	Attempt int    `json:"attempt"`
	Lease   string `json:"lease"`
}

// leaseOne leases one task as c, waiting for it.
func leaseOne(t *testing.T, c *testClient) wireTask {
	t.Helper()
	var resp struct {
		Tasks []wireTask `json:"tasks"`
	}
	if err := c.call("/v1/lease", map[string]any{"worker": c.worker, "slots": 1, "wait_ms": 10000, "have_model": 1}, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Tasks) != 1 {
		t.Fatalf("leased %v, want one task", resp.Tasks)
	}
	return resp.Tasks[0]
}

// emptyTransformReport is a well-formed report of a transform task that
// read no rows, with the parts it would have staged under lease.
func emptyTransformReport(worker, run string, task wireTask) map[string]any {
	var parts []map[string]any
	for _, folder := range []string{"train", "validation"} {
		key := fmt.Sprintf("%s/part-%05d", folder, task.Split)
		parts = append(parts, map[string]any{"key": key, "size": 0, "rows": 0,
			"staged": map[string]any{"key": key, "stage": run + "-" + task.Lease, "size": 0}})
	}
	// Column stats travel in their binary form (base64 in JSON).
	cols, err := features.NewColumnStats(sample.Spec()).MarshalBinary()
	if err != nil {
		panic(err)
	}
	return map[string]any{"worker": worker, "task": task, "parts": parts,
		"result": map[string]any{"lines": 0, "rows_in": 0, "rejected": 0, "rows_out": []int64{0, 0}, "bytes_read": 0,
			"columns": cols}}
}

// randomLease is a lease id the coordinator never issued.
func randomLease() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// givenModel returns the model of the reference output for seed and
// split size, for a job that starts in the transform phase.
func givenModel(t *testing.T, in, seed, splitSize string) string {
	return filepath.Join(reference(t, in, seed, splitSize), "_shardprep", "model.json")
}

// TestAttackReplayedReport: signed reports captured from job A and
// replayed to job B's coordinator (same secret, same input) are refused
// as another job's, and so is a replay with B's run id written into it
// (its signature no longer holds); B commits exactly the bytes of
// `shardprep run`, with every row.
func TestAttackReplayedReport(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "23", "1MiB")
	outA := filepath.Join(t.TempDir(), "a")
	coordA, addrA := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", outA,
		"--seed", "23", "--split-size", "1MiB", "--workers", "0", "--lease", "5s")
	// A's worker talks through a proxy that keeps its signed reports.
	var mu sync.Mutex
	var captured []signed
	target, _ := url.Parse("http://" + addrA)
	proxy := httputil.NewSingleHostReverseProxy(target)
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/report" {
			mu.Lock()
			captured = append(captured, signed{path: r.URL.Path, header: r.Header.Get("Shardprep-Auth"), body: body})
			mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	defer spy.Close()
	wA := startWorker(t, clusterEnv(), nil, spy.URL, "wa")
	if code := coordA.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("job A: coordinator exit %d\n%s", code, lastLines(coordA.errText(), 3))
	}
	wA.wait(t, 30*time.Second)
	if len(captured) < 2 {
		t.Fatalf("captured %d reports of job A", len(captured))
	}

	outB := filepath.Join(t.TempDir(), "b")
	coordB, addrB := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", outB,
		"--seed", "23", "--split-size", "1MiB", "--workers", "0", "--lease", "5s")
	probe, _ := joinAs(t, addrB, "probe")
	replayer := &testClient{base: "http://" + addrB}
	for _, s := range captured {
		code, body, err := replayer.send(s)
		if err != nil || code != http.StatusConflict || !strings.Contains(string(body), "another job") {
			t.Errorf("replayed report of job A: %d %s %v, want 409 another job", code, body, err)
		}
		forged := s
		forged.header = regexpJob.ReplaceAllString(s.header, "job="+probe.job+",")
		if code, body, err := replayer.send(forged); err != nil || code != http.StatusUnauthorized {
			t.Errorf("replay with B's run id: %d %s %v, want 401", code, body, err)
		}
	}
	finishExactly(t, coordB, addrB, "wb", ref, outB)
	committed(t, outB)
	if m, r := readManifest(t, outB), readManifest(t, ref); m.Totals.RowsIn != r.Totals.RowsIn || m.Totals.RowsIn == 0 {
		t.Errorf("job B read %d rows, the in-process run %d", m.Totals.RowsIn, r.Totals.RowsIn)
	}
}

var regexpJob = regexp.MustCompile(`job=[0-9a-f]*,`)

// TestAttackCoordinatorRestarted: the coordinator is SIGKILLed while a
// worker runs a transform task and restarted on the same address with
// --overwrite, another seed and another split size. The worker meets the
// new job's run id and stops with an error saying so; the new job commits
// exactly the output of `shardprep run` with its own seed and split size.
func TestAttackCoordinatorRestarted(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "4", "512KiB")
	out := filepath.Join(t.TempDir(), "out")
	first, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "3", "--split-size", "256KiB", "--workers", "0", "--lease", "2s")
	var killed atomic.Bool
	first.onLog(func(r logRecord) {
		if r.Msg == "task leased" && strings.HasPrefix(r.Task, "transform") && killed.CompareAndSwap(false, true) {
			first.cmd.Process.Kill()
		}
	})
	w := startWorker(t, clusterEnv(), nil, "http://"+addr, "w1", "--coordinator-timeout", "60s")
	if code := first.wait(t, 2*time.Minute); code != -1 || !killed.Load() {
		t.Fatalf("first coordinator exit %d before it was killed in the transform phase", code)
	}
	second, addr2 := startCoordinator(t, clusterEnv(), nil, "--listen", addr, "--input", in, "--output", out, "--overwrite",
		"--seed", "4", "--split-size", "512KiB", "--workers", "1", "--lease", "2s")
	if addr2 != addr {
		t.Fatalf("restarted on %s, want %s", addr2, addr)
	}
	if code := w.wait(t, time.Minute); code == 0 || !strings.Contains(w.errText(), "another job") {
		t.Errorf("the old job's worker: exit %d, %s", code, lastLines(w.errText(), 1))
	}
	if code := second.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("restarted coordinator exit %d\n%s", code, lastLines(second.errText(), 3))
	}
	sameParts(t, partsOf(t, ref), partsOf(t, out))
	committed(t, out)
	m := readManifest(t, out)
	if m.Seed != 4 || m.SplitSize != 512<<10 {
		t.Errorf("manifest seed %d split size %d, want 4 and 512KiB", m.Seed, m.SplitSize)
	}
	if _, ok := workerSummary(m, "w1"); ok {
		t.Errorf("the old job's worker is in the new job's manifest: %+v", m.Workers)
	}
}

// TestAttackUnleasedReports: a signed client reports every split of a job
// done without leasing any (the job starts in the transform phase, with a
// given model), then reports a task it did lease under a lease id it was
// not given, and as another worker: every report is refused. A real
// worker then does the job, which commits the exact output of `shardprep
// run`.
func TestAttackUnleasedReports(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "29", "256KiB")
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "29", "--split-size", "256KiB", "--workers", "0", "--lease", "3s", "--model", givenModel(t, in, "29", "256KiB"))
	c, job := joinAs(t, addr, "forger")
	other, _ := joinAs(t, addr, "other")
	refused := func(what string, req map[string]any) {
		t.Helper()
		var resp struct {
			Accepted bool   `json:"accepted"`
			Reason   string `json:"reason"`
		}
		cl := c
		if req["worker"] != c.worker {
			cl = other
		}
		if err := cl.call("/v1/report", req, &resp); err != nil || resp.Accepted {
			t.Errorf("%s: %+v %v, want refused", what, resp, err)
		}
	}
	for i := range job.Splits {
		task := wireTask{Phase: "transform", Split: i, Attempt: 1, Lease: randomLease()}
		refused(fmt.Sprintf("unleased split %d", i), emptyTransformReport(c.worker, job.RunID, task))
	}
	task := leaseOne(t, c)
	wrong := task
	wrong.Lease = randomLease()
	refused("a lease id never issued", emptyTransformReport(c.worker, job.RunID, wrong))
	refused("another worker's lease", emptyTransformReport(other.worker, job.RunID, task))
	finishExactly(t, coord, addr, "w1", ref, out)
	committed(t, out)
	if n := countMsg(coord.logs(), "report refused"); n != len(job.Splits)+2 {
		t.Errorf("%d reports refused, want %d", n, len(job.Splits)+2)
	}
}

// TestAttackFakeCoordinator: a worker whose --coordinator is a fake
// (unsigned, or signed with another secret) that names a local file as
// the job's input stops at the join with an error saying the coordinator
// could not prove it holds the secret, sends nothing else, and so none of
// the file's text.
func TestAttackFakeCoordinator(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "private.csv")
	const text = "TOP-SECRET-ROW-1,2,3\n"
	if err := os.WriteFile(secretFile, []byte(strings.Repeat(text, 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	job, err := pipeline.NewJob(sample.Spec(), []pipeline.Object{{URL: secretFile, Name: "private.csv", Size: int64(100 * len(text)), Root: dir + "/"}},
		&pipeline.Settings{Name: "fake", Output: filepath.Join(dir, "out") + "/", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"unsigned", "other secret"} {
		t.Run(mode, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				got = append(got, r.URL.Path+" "+string(body))
				mu.Unlock()
				answer := map[string]any{"protocol": pipeline.ProtocolVersion, "job": job, "worker": "w", "heartbeat_ms": 100, "lease_ms": 1000,
					"state": "fit", "tasks": []wireTask{{Phase: "fit", Split: 0, Attempt: 1, Lease: randomLease()}}}
				data, _ := json.Marshal(answer)
				if mode == "other secret" {
					nonce := regexpNonce.FindStringSubmatch(r.Header.Get("Shardprep-Auth"))
					m := hmac.New(sha256.New, []byte("not-the-cluster-secret-0123456789"))
					io.WriteString(m, strings.Join([]string{"resp", r.URL.Path, job.RunID, nonce[1], "200", hexSHA256(data)}, "\n"))
					w.Header().Set("Shardprep-Auth", fmt.Sprintf("v=2,job=%s,n=%s,sig=%x", job.RunID, nonce[1], m.Sum(nil)))
				}
				w.Write(data)
			}))
			defer fake.Close()
			wk := startWorker(t, clusterEnv(), nil, fake.URL, "victim", "--coordinator-timeout", "20s")
			if code := wk.wait(t, 30*time.Second); code != 1 || !strings.Contains(wk.errText(), "could not prove it holds the cluster secret") {
				t.Errorf("worker: exit %d, %s", code, lastLines(wk.errText(), 1))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, req := range got {
				if strings.Contains(req, "TOP-SECRET") || !strings.HasPrefix(req, "/v1/join ") {
					t.Errorf("the fake coordinator received %.200s", req)
				}
			}
			if strings.Contains(wk.out(), "committed") {
				t.Errorf("worker stdout: %s", wk.out())
			}
		})
	}
}

var regexpNonce = regexp.MustCompile(`n=([0-9a-f]+)`)

// TestAttackBigBodies: 16 clients at once send 64 MiB bodies to the
// coordinator without a valid signature: unsigned (401), with a
// well-formed envelope and a declared length over the endpoint's bound
// (413), and chunked, without a length (413 after the bound). Each is
// answered at once, the coordinator's peak RSS stays bounded, and it then
// runs its job.
func TestAttackBigBodies(t *testing.T) {
	in := testData(t)
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "5", "--split-size", "1MiB", "--workers", "0", "--lease", "5s")
	before := vmHWM(t, coord.cmd.Process.Pid)
	const size = 64 << 20
	var wg sync.WaitGroup
	codes := make([]int, 16)
	start := time.Now()
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = rawPost(t, addr, i%3, size)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, code := range codes {
		want := []int{http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusRequestEntityTooLarge}[i%3]
		if code != want {
			t.Errorf("client %d (kind %d): status %d, want %d", i, i%3, code, want)
		}
	}
	if elapsed > 20*time.Second {
		t.Errorf("the refusals took %s", elapsed)
	}
	peak := vmHWM(t, coord.cmd.Process.Pid)
	t.Logf("coordinator VmHWM %d MiB before, %d MiB after 16 x 64 MiB bodies", before>>20, peak>>20)
	if peak > 200<<20 {
		t.Errorf("coordinator peak RSS %d MiB after 16 unauthenticated 64 MiB bodies", peak>>20)
	}
	w := startWorker(t, clusterEnv(), nil, "http://"+addr, "w1")
	if code := coord.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, lastLines(coord.errText(), 3))
	}
	w.wait(t, 30*time.Second)
	committed(t, out)
}

// rawPost sends a POST of size zero bytes over a raw connection, kind 0
// unsigned to /v1/report, kind 1 with a well-formed but wrong envelope
// and its length declared, kind 2 the same chunked, and returns the
// answer's status (0 if none came).
func rawPost(t *testing.T, addr string, kind int, size int64) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close()
	bogus := (&testClient{worker: "x", secret: []byte("wrong-secret-wrong-secret")}).sign("/v1/join", nil).header
	head := "POST /v1/report HTTP/1.1\r\nHost: " + addr + "\r\n"
	switch kind {
	case 0:
		head += fmt.Sprintf("Content-Length: %d\r\n", size)
	case 1:
		head = "POST /v1/join HTTP/1.1\r\nHost: " + addr + "\r\nShardprep-Auth: " + bogus + fmt.Sprintf("\r\nContent-Length: %d\r\n", size)
	case 2:
		head = "POST /v1/join HTTP/1.1\r\nHost: " + addr + "\r\nShardprep-Auth: " + bogus + "\r\nTransfer-Encoding: chunked\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Error(err)
		return 0
	}
	go func() {
		chunk := make([]byte, 1<<20)
		for sent := int64(0); sent < size; sent += int64(len(chunk)) {
			var err error
			if kind == 2 {
				_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
			} else {
				_, err = conn.Write(chunk)
			}
			if err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Errorf("kind %d: %v", kind, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// vmHWM returns the peak resident set size of process pid.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// TestAttackOverflowingReport: a report of a leased task with counts
// that overflow is answered 400 at once (a worker does not retry a 400),
// not 500; the task's lease then lapses and a real worker does the job,
// which commits the exact output of `shardprep run`.
func TestAttackOverflowingReport(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "31", "1MiB")
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "31", "--split-size", "1MiB", "--workers", "0", "--lease", "2s", "--model", givenModel(t, in, "31", "1MiB"))
	c, job := joinAs(t, addr, "overflow")
	task := leaseOne(t, c)
	req := emptyTransformReport(c.worker, job.RunID, task)
	req["result"] = map[string]any{"lines": int64(math.MaxInt64), "rows_in": int64(math.MaxInt64), "rejected": 0,
		"rows_out": []int64{math.MaxInt64, 1}, "bytes_read": 1}
	start := time.Now()
	code, body, err := c.post("/v1/report", req)
	if err != nil || code != http.StatusBadRequest || !strings.Contains(string(body), "out of range") {
		t.Errorf("overflowing report: %d %s %v, want 400 out of range", code, body, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal took %s", d)
	}
	// Counts that do not fit an int64 at all.
	raw := c.sign("/v1/report", []byte(`{"worker":"overflow","task":{"phase":"transform","split":0,"attempt":1,"lease":"`+task.Lease+`"},"result":{"rows_in":99999999999999999999}}`))
	if code, body, err := c.send(raw); err != nil || code != http.StatusBadRequest {
		t.Errorf("report with a count beyond int64: %d %s %v, want 400", code, body, err)
	}
	finishExactly(t, coord, addr, "w1", ref, out)
}

// TestAttackLateWriterS3: on MinIO, a worker is frozen (SIGSTOP) holding
// a transform lease, its coordinator is killed, and a new job with
// --overwrite and another seed commits the same output from a coordinator
// on the same address. The frozen worker is then resumed: it cannot
// change any object of the committed output (every byte is compared
// before and after), and it stops non-zero.
func TestAttackLateWriterS3(t *testing.T) {
	e := newS3Env(t)
	in := testData(t)
	ref := reference(t, in, "37", "1MiB")
	area := e.area("UserA")
	e.upload(t, area+"in/"+filepath.Base(in), in)
	out := e.url(area + "out/")
	env := clusterEnv("AWS_ACCESS_KEY_ID="+e.RootUser, "AWS_SECRET_ACCESS_KEY="+e.RootPassword, "AWS_REGION=us-east-1")
	args := []string{"--input", e.url(area + "in/" + filepath.Base(in)), "--output", out, "--s3-endpoint", e.Endpoint, "--split-size", "1MiB"}
	first, addr := startCoordinator(t, env, nil, append([]string{"--listen", "127.0.0.1:0", "--seed", "36", "--workers", "0", "--lease", "1s"}, args...)...)
	var zombie atomic.Pointer[proc]
	stopped := make(chan struct{})
	var once sync.Once
	first.onLog(func(r logRecord) {
		if r.Msg == "task leased" && strings.HasPrefix(r.Task, "transform") {
			once.Do(func() {
				zombie.Load().cmd.Process.Signal(syscall.SIGSTOP)
				first.cmd.Process.Kill()
				close(stopped)
			})
		}
	})
	zombie.Store(startWorker(t, env, nil, "http://"+addr, "zombie", "--s3-endpoint", e.Endpoint, "--coordinator-timeout", "60s"))
	select {
	case <-stopped:
	case <-time.After(2 * time.Minute):
		t.Fatal("the worker was never leased a transform task")
	}
	first.wait(t, 30*time.Second)
	// The new job lingers after its commit for an observer that never
	// hears the outcome, so that the zombie meets it when resumed.
	second, _ := startCoordinator(t, env, nil, append([]string{"--listen", addr, "--seed", "37", "--workers", "1", "--lease", "20s",
		"--linger", "20s", "--overwrite"}, args...)...)
	joinAs(t, addr, "observer")
	if !second.await(2*time.Minute, func() bool { return countMsg(second.logs(), "job committed") > 0 }) {
		t.Fatalf("the new job did not commit\n%s", lastLines(second.errText(), 3))
	}
	before := objectsUnder(t, e, area+"out/")
	z := zombie.Load()
	z.signal(t, syscall.SIGCONT)
	if code := z.wait(t, 90*time.Second); code == 0 {
		t.Errorf("the resumed worker exited 0")
	}
	time.Sleep(time.Second)
	after := objectsUnder(t, e, area+"out/")
	for k, b := range before {
		if !bytes.Equal(after[k], b) {
			t.Errorf("%s changed after the commit (%d bytes, then %d)", k, len(b), len(after[k]))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s appeared after the commit", k)
		}
	}
	want := partsOf(t, ref)
	got := map[string][]byte{}
	for k, b := range after {
		if strings.Contains(k, "/part-") && !strings.HasPrefix(k, "_") {
			got[k] = b
		}
	}
	sameParts(t, want, got)
}

// objectsUnder reads every visible object under prefix, by key relative
// to it (hidden staging markers, named ".*", left out).
func objectsUnder(t *testing.T, e *s3Env, prefix string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, k := range e.keys(t, prefix) {
		rel := strings.TrimPrefix(k, prefix)
		if strings.HasPrefix(filepath.Base(rel), ".") {
			continue
		}
		m[rel] = e.get(t, k)
	}
	return m
}

// finishExactly starts a real worker named name on the coordinator coord
// at addr and asserts that both exit 0 and that the output out holds the
// parts of the reference run ref.
func finishExactly(t *testing.T, coord *proc, addr, name, ref, out string) {
	t.Helper()
	w := startWorker(t, clusterEnv(), nil, "http://"+addr, name)
	if code := coord.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, lastLines(coord.errText(), 3))
	}
	if code := w.wait(t, 30*time.Second); code != 0 {
		t.Errorf("worker %s exit %d", name, code)
	}
	sameParts(t, partsOf(t, ref), partsOf(t, out))
}
