package roles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// testProcess is a process whose lines for people and logs are buffers,
// with no AWS settings from this machine.
func testProcess() (p *Process, stdout, stderr *bytes.Buffer) {
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	return &Process{Env: func(string) string { return "" }, Stdout: stdout, Stderr: stderr}, stdout, stderr
}

// testJob is the sample's job into out, with seed 1.
func testJob(out string) *Job {
	j := &Job{Output: out, Workers: 2, OnInvalid: "error", SplitMode: "hash", LogFormat: "auto",
		Store: storage.S3Config{Credentials: "default", GrantsDuration: time.Hour}}
	j.Seed.Set("1")
	return j
}

// TestRunLogLines: without a terminal, progress and the plan are JSON log
// lines on stderr, and the summary goes to stdout.
func TestRunLogLines(t *testing.T) {
	p, stdout, stderr := testProcess()
	out := filepath.Join(t.TempDir(), "out")
	if err := p.Run(context.Background(), testJob(out)); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !strings.HasPrefix(l, "{") {
			t.Errorf("stderr line is not JSON: %q", l)
		}
	}
	if !strings.Contains(stderr.String(), `"msg":"job planned"`) || !strings.Contains(stderr.String(), `"msg":"progress"`) {
		t.Errorf("stderr lacks the plan or progress lines:\n%s", stderr)
	}
	for _, w := range []string{"shardprep: writing to " + out, "shardprep: committed " + out, "rows read   4177 (1 object, ",
		"train", "validation", "rejected    0", "seed        1 (hash split)", "MB/s", "wall time"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "train", "_SUCCESS")); err != nil {
		t.Errorf("not committed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "_shardprep", "claim.json")); err == nil {
		t.Errorf("the output's claim outlived the job")
	}
}

// TestRunQuiet: with Quiet only errors are printed.
func TestRunQuiet(t *testing.T) {
	p, stdout, stderr := testProcess()
	j := testJob(filepath.Join(t.TempDir(), "out"))
	j.Quiet = true
	if err := p.Run(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if stdout.Len()+stderr.Len() != 0 {
		t.Errorf("a quiet job printed %q and %q", stdout, stderr)
	}
}

// TestJobRefusals: settings a job cannot run with are one-line usage
// errors naming the flag, refused before anything is written.
func TestJobRefusals(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "model.json")
	os.WriteFile(model, []byte(`{"version":1,"columns":{"nope":{"labels":[]}}}`), 0o644)
	for _, c := range []struct {
		name string
		edit func(j *Job)
		want string
	}{
		{"no workers", func(j *Job) { j.Workers = 0 }, "--workers must be at least 1"},
		{"tiny splits", func(j *Job) { j.SplitSize = 1000 }, "--split-size 1000 is below the minimum of 65536 (64KiB)"},
		{"split mode", func(j *Job) { j.SplitMode = "random" }, "random"},
		{"policy", func(j *Job) { j.OnInvalid = "ignore" }, "ignore"},
		{"missing spec", func(j *Job) { j.Spec = filepath.Join(dir, "none.json") }, "--spec " + filepath.Join(dir, "none.json") + ": no such file or directory"},
		{"unreadable model", func(j *Job) { j.Model = model }, "--model " + model + ": "},
		{"output not a location", func(j *Job) { j.Output = "s3://" }, "--output s3://: not a local folder or s3://bucket/prefix"},
		{"S3 settings", func(j *Job) { j.Store.Credentials = "magic" }, "magic"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, stdout, _ := testProcess()
			out := filepath.Join(dir, c.name)
			j := testJob(out)
			c.edit(j)
			err := p.Run(context.Background(), j)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, c.want)
			}
			var ue *cli.UsageError
			if !strings.HasPrefix(c.want, "--spec") && !strings.HasPrefix(c.want, "--model") && !errors.As(err, &ue) {
				t.Errorf("%v is not a usage error", err)
			}
			if _, err := os.Stat(out); err == nil || stdout.Len() > 0 {
				t.Errorf("a refused job wrote its output or printed %q", stdout)
			}
		})
	}
}

// TestInputInsideOutputRefused: an input under the output is left out of
// the listing, and one that reaches it through a symbolic link is refused.
func TestInputInsideOutputRefused(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.MkdirAll(filepath.Join(out, "in"), 0o755)
	os.WriteFile(filepath.Join(out, "in", "a.csv"), []byte("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n"), 0o644)
	os.Symlink(filepath.Join(out, "in"), filepath.Join(dir, "link"))
	for in, want := range map[string]string{filepath.Join(out, "in"): "no objects there", filepath.Join(dir, "link"): "is inside the output"} {
		p, _, _ := testProcess()
		j := testJob(out)
		j.Inputs = []string{in}
		if err := p.Run(context.Background(), j); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("input %s: %v, want an error containing %q", in, err, want)
		}
	}
}

// TestClusterRefusals: a coordinator or worker without a cluster secret,
// or with settings it cannot serve or work with, stops before it listens.
func TestClusterRefusals(t *testing.T) {
	secret := []byte("0123456789abcdef")
	for _, c := range []struct {
		name string
		run  func(p *Process) error
		want string
	}{
		{"coordinator secret", func(p *Process) error {
			return p.Coordinate(context.Background(), &Coordinator{Job: *testJob(t.TempDir()), Listen: "127.0.0.1:0", Lease: time.Second})
		}, "SHARDPREP_CLUSTER_SECRET must be set"},
		{"short lease", func(p *Process) error {
			return p.Coordinate(context.Background(), &Coordinator{Job: *testJob(t.TempDir()), Listen: "127.0.0.1:0", Lease: time.Millisecond, Secret: secret})
		}, "--lease must be at least 100ms"},
		{"worker without coordinator", func(p *Process) error {
			return p.Work(context.Background(), &Worker{Workers: 1, Timeout: time.Second, Secret: secret})
		}, "worker needs --coordinator"},
		{"worker secret", func(p *Process) error {
			return p.Work(context.Background(), &Worker{Coordinator: "127.0.0.1:1", Workers: 1, Timeout: time.Second})
		}, "SHARDPREP_CLUSTER_SECRET must be set"},
		{"worker slots", func(p *Process) error {
			return p.Work(context.Background(), &Worker{Coordinator: "127.0.0.1:1", Timeout: time.Second, Secret: secret})
		}, "--workers must be at least 1"},
	} {
		p, _, _ := testProcess()
		err := c.run(p)
		var ue *cli.UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a usage error containing %q", c.name, err, c.want)
		}
	}
}

// TestLogLines: each line written is one log record, also when a line
// arrives in pieces; blank lines are left out.
func TestLogLines(t *testing.T) {
	var buf bytes.Buffer
	w := &logLines{log: slog.New(slog.NewJSONHandler(&buf, nil))}
	w.Write([]byte("shardprep: writing to s3://b/out/\n\nshardprep: wor"))
	w.Write([]byte("ker algo-2 done\n"))
	var msgs []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, rec.Msg)
	}
	if strings.Join(msgs, "|") != "shardprep: writing to s3://b/out/|shardprep: worker algo-2 done" {
		t.Errorf("records %q", msgs)
	}
}

// TestHugeHeapBeforeTasks: a process that runs a job's tasks asks for
// huge pages for its heap once, before they start, when HugeHeap is set
// (a worker asks as it starts and joins meanwhile); a coordinator without
// local workers does not.
func TestHugeHeapBeforeTasks(t *testing.T) {
	var asked []int
	old := adviseHeap
	adviseHeap = func(n int) bool { asked = append(asked, n); return true }
	t.Cleanup(func() { adviseHeap, heapOnce, heapDone = old, sync.Once{}, make(chan struct{}) })
	secret := bytes.Repeat([]byte("k"), 32)
	for _, c := range []struct {
		name  string
		huge  bool
		job   func(p *Process) error
		want  int
		fails bool // the job is stopped or cannot join
	}{
		{"run", true, func(p *Process) error { return p.Run(context.Background(), testJob(filepath.Join(t.TempDir(), "out"))) }, 1, false},
		{"run without HugeHeap", false, func(p *Process) error {
			return p.Run(context.Background(), testJob(filepath.Join(t.TempDir(), "out")))
		}, 0, false},
		{"coordinator without workers", true, func(p *Process) error {
			// Stopped before it plans: no worker would ever come.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			j := testJob(t.TempDir())
			j.Workers = 0
			return p.Coordinate(ctx, &Coordinator{Job: *j, Listen: "127.0.0.1:0", Lease: time.Second, Secret: secret})
		}, 0, true},
		{"coordinator with workers", true, func(p *Process) error {
			return p.Coordinate(context.Background(), &Coordinator{Job: *testJob(t.TempDir()), Listen: "127.0.0.1:0", Lease: time.Second, Secret: secret})
		}, 1, false},
		{"worker that cannot join", true, func(p *Process) error {
			return p.Work(context.Background(), &Worker{Coordinator: "127.0.0.1:1", Workers: 1, Secret: secret, Timeout: 10 * time.Millisecond,
				Store: storage.S3Config{Credentials: "default", GrantsDuration: time.Hour}})
		}, 1, true},
		{"worker", true, func(p *Process) error {
			// Joined to a coordinator without workers of its own, in a
			// process that does not ask.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			addr := ln.Addr().String()
			ln.Close()
			coord, _, _ := testProcess()
			j := testJob(t.TempDir())
			j.Workers = 0
			done := make(chan error, 1)
			go func() {
				done <- coord.Coordinate(context.Background(), &Coordinator{Job: *j, Listen: addr, Lease: time.Second, Secret: secret})
			}()
			err = p.Work(context.Background(), &Worker{Coordinator: addr, Workers: 1, Secret: secret, Timeout: 10 * time.Second,
				Store: storage.S3Config{Credentials: "default", GrantsDuration: time.Hour}})
			return errors.Join(err, <-done)
		}, 1, false},
	} {
		asked, heapOnce, heapDone = nil, sync.Once{}, make(chan struct{})
		p, _, _ := testProcess()
		p.HugeHeap = c.huge
		if err := c.job(p); (err != nil) != c.fails {
			t.Errorf("%s: error %v, want one: %t", c.name, err, c.fails)
		}
		// An advice started in the background ends soon after.
		wait := 200 * time.Millisecond
		if c.want > 0 {
			wait = 10 * time.Second
		}
		select {
		case <-heapDone:
		case <-time.After(wait):
			if c.want > 0 {
				t.Fatalf("%s: the heap's advice did not end", c.name)
			}
		}
		if len(asked) != c.want || (c.want > 0 && asked[0] != pipeline.HugeHeapSize) {
			t.Errorf("%s: asked for huge pages %v, want %d time(s) for %d bytes", c.name, asked, c.want, pipeline.HugeHeapSize)
		}
	}
}
