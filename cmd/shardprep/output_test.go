package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardprep/shardprep/pipeline"
)

// The tests in this file run the built binary against outputs that hold
// more than a job's own files: symbolic links into the inputs, a user's
// files, a running or killed job's leftovers.

// runBin runs the binary to its end and returns its output and exit status.
func runBin(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCmd(t, "", env, args...)
}

// runCmd is runBin in the working directory dir ("" for this one).
func runCmd(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(shardprepBin(t), args...)
	cmd.Dir, cmd.Env = dir, env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// tree maps every file under dir, hidden ones included, to its content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return files
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOverwriteThroughSymlinkSparesInput: an --output that is a symbolic
// link to the input's folder, or to a folder above it, is refused with
// --overwrite, and the input stays as it was.
func TestOverwriteThroughSymlinkSparesInput(t *testing.T) {
	dir := t.TempDir()
	sample, err := os.ReadFile("sample/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"sl/data/a.csv": string(sample)})
	for name, target := range map[string]string{"to-data": "sl/data", "to-parent": "sl"} {
		t.Run(name, func(t *testing.T) {
			link := filepath.Join(dir, name)
			if err := os.Symlink(filepath.Join(dir, target), link); err != nil {
				t.Fatal(err)
			}
			before := tree(t, filepath.Join(dir, "sl"))
			_, stderr, code := runBin(t, baseEnv(), "run", "--input", filepath.Join(dir, "sl", "data"),
				"--output", link, "--overwrite", "--seed", "1", "--quiet")
			if code == 0 || !strings.Contains(stderr, "is inside the output") {
				t.Errorf("exit %d, want a refusal saying the input is inside the output:\n%s", code, stderr)
			}
			if after := tree(t, filepath.Join(dir, "sl")); !maps.Equal(before, after) {
				t.Errorf("the input folder changed: %d files before, %d after", len(before), len(after))
			}
		})
	}
}

// TestOverwriteRefusesForeignFiles: --overwrite over a committed output
// that also holds a user's files is refused, naming them, and deletes
// nothing; without them it deletes exactly the earlier job's files (a
// file merely named like a staging file stays).
func TestOverwriteRefusesForeignFiles(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	run := func(args ...string) (string, int) {
		_, stderr, code := runBin(t, baseEnv(), append([]string{"run", "--output", out, "--quiet"}, args...)...)
		return stderr, code
	}
	if stderr, code := run("--seed", "1", "--split-size", "64KiB"); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, stderr)
	}
	first := tree(t, out)
	foreign := map[string]string{"notes.txt": "mine", "sub/keep.dat": "mine", ".hidden": "mine", "_private": "mine", ".cfg.tmp-1": "mine"}
	writeFiles(t, out, foreign)
	before := tree(t, out)
	stderr, code := run("--seed", "2", "--overwrite")
	if code == 0 {
		t.Fatal("--overwrite over a user's files succeeded")
	}
	for _, k := range []string{"notes.txt", "sub/keep.dat", ".hidden", "_private", "shardprep did not write"} {
		if !strings.Contains(stderr, k) {
			t.Errorf("the refusal does not name %s:\n%s", k, stderr)
		}
	}
	if after := tree(t, out); !maps.Equal(before, after) {
		t.Errorf("a refused --overwrite changed the output: %v", slices.Sorted(maps.Keys(after)))
	}

	for _, k := range []string{"notes.txt", "sub/keep.dat", ".hidden", "_private"} {
		os.Remove(filepath.Join(out, k))
	}
	if stderr, code := run("--seed", "2", "--overwrite"); code != 0 {
		t.Fatalf("--overwrite of a shardprep output: exit %d\n%s", code, stderr)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	if _, stderr, code := runBin(t, baseEnv(), "run", "--output", fresh, "--quiet", "--seed", "2"); code != 0 {
		t.Fatal(stderr)
	}
	want := slices.Sorted(maps.Keys(tree(t, fresh)))
	want = append(want, ".cfg.tmp-1")
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(tree(t, out))); !slices.Equal(got, want) {
		t.Errorf("after --overwrite the output holds %q, want a fresh run's files and .cfg.tmp-1: %q (the first run had %d files)", got, want, len(first))
	}
	if m := readManifest(t, out); m.Seed != 2 {
		t.Errorf("the manifest has seed %d, want 2", m.Seed)
	}
}

// claimOf waits until the claim of the output folder out appears.
func claimOf(t *testing.T, p *proc, out string) {
	t.Helper()
	claim := filepath.Join(out, filepath.FromSlash(pipeline.ClaimKey))
	if !p.await(time.Minute, func() bool { _, err := os.Stat(claim); return err == nil }) {
		t.Fatalf("%s never claimed %s\n%s", p.name, out, p.errText())
	}
}

// TestConcurrentRunsOneOutput: of two runs to one output at once, the
// second is refused naming the first, which commits exactly its output.
func TestConcurrentRunsOneOutput(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "3", "256KiB")
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"run", "--input", in, "--output", out, "--seed", "3", "--split-size", "256KiB", "--workers", "1", "--log-format", "json"}
	first := start(t, "first", baseEnv(), append([]string{shardprepBin(t)}, append(args, "--job-name", "first-job")...)...)
	claimOf(t, first, out)
	first.signal(t, syscall.SIGSTOP) // hold the first job mid-way, deterministically
	_, stderr, code := runBin(t, baseEnv(), append(args, "--job-name", "second-job")...)
	first.signal(t, syscall.SIGCONT)
	if code == 0 {
		t.Error("the second run to a claimed output exited 0")
	}
	if !strings.Contains(stderr, "in use by job first-job (run ") || !strings.Contains(stderr, fmt.Sprintf("pid %d", first.cmd.Process.Pid)) || !strings.Contains(stderr, "shardprep clean") {
		t.Errorf("the refusal does not name the holder and pid %d:\n%s", first.cmd.Process.Pid, stderr)
	}
	if code := first.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("the first run: exit %d\n%s", code, lastLines(first.errText(), 5))
	}
	committed(t, out)
	sameParts(t, partsOf(t, ref), partsOf(t, out))
	if m := readManifest(t, out); m.Job != "first-job" {
		t.Errorf("the manifest names job %s", m.Job)
	}
	if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(pipeline.ClaimKey))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the claim outlived the job: %v", err)
	}
}

// TestUncommittedOutputUnderInputIsLeftOut: an input folder holding a
// killed job's output (a claim, perhaps parts, no _SUCCESS) and an old
// uncommitted layout (parts beside _rejected/) is read without them, and
// the log says so.
func TestUncommittedOutputUnderInputIsLeftOut(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	sample, err := os.ReadFile("sample/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, data, map[string]string{"a.csv": string(sample),
		"old/train/part-00000": "1.0,2.0\n", "old/_rejected/part-00000": "x\n"})
	killed := start(t, "killed", baseEnv(), shardprepBin(t), "run", "--input", testData(t), "--output", filepath.Join(data, "out"),
		"--seed", "3", "--split-size", "256KiB", "--workers", "1", "--log-format", "json")
	claimOf(t, killed, filepath.Join(data, "out"))
	// Kill it while it writes: its parts are staged, not yet published.
	if !killed.await(time.Minute, func() bool {
		staged, _ := filepath.Glob(filepath.Join(data, "out", "train", ".part-*.stage-*"))
		return len(staged) > 0
	}) {
		t.Fatalf("the job staged no part\n%s", killed.errText())
	}
	killed.signal(t, syscall.SIGKILL)
	killed.wait(t, time.Minute)
	noSuccess(t, filepath.Join(data, "out"))

	out := filepath.Join(t.TempDir(), "out")
	stdout, stderr, code := runBin(t, baseEnv(), "run", "--input", data, "--output", out, "--seed", "1", "--log-format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	m := readManifest(t, out)
	if len(m.Inputs) != 1 || m.Inputs[0].Name != "a.csv" || !strings.Contains(stdout, "rows read   4177") {
		t.Errorf("read %+v, want only a.csv (4177 rows):\n%s", m.Inputs, stdout)
	}
	if !strings.Contains(stderr, "leaving out earlier shardprep outputs") || !strings.Contains(stderr, `"out/"`) || !strings.Contains(stderr, `"old/"`) {
		t.Errorf("the log does not name the outputs left out:\n%s", stderr)
	}
}

// TestCleanLocal: after a killed run, clean without --yes lists the
// leftovers and deletes nothing; with --yes it removes them, leaving a
// user's file, and the output can be used again. A committed output is
// refused.
func TestCleanLocal(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	killed := start(t, "killed", baseEnv(), shardprepBin(t), "run", "--input", testData(t), "--output", out,
		"--seed", "3", "--split-size", "256KiB", "--workers", "1", "--log-format", "json")
	claimOf(t, killed, out)
	// Kill it while it writes: its parts are staged, not yet published.
	staged := func() bool { s, _ := filepath.Glob(filepath.Join(out, "train", ".part-*.stage-*")); return len(s) > 0 }
	if !killed.await(time.Minute, staged) {
		t.Fatalf("the job staged no part\n%s", killed.errText())
	}
	killed.signal(t, syscall.SIGKILL)
	killed.wait(t, time.Minute)
	writeFiles(t, out, map[string]string{"notes.txt": "mine", ".cfg.tmp-1": "mine"})
	before := tree(t, out)

	stdout, stderr, code := runBin(t, baseEnv(), "clean", out)
	if code != 0 || !strings.Contains(stdout, "claimed by job") || !strings.Contains(stdout, pipeline.ClaimKey) || !strings.Contains(stdout, "dry run") {
		t.Errorf("dry run: exit %d\n%s%s", code, stdout, stderr)
	}
	if after := tree(t, out); !maps.Equal(before, after) {
		t.Errorf("the dry run changed the output")
	}
	stdout, stderr, code = runBin(t, baseEnv(), "clean", "--yes", out)
	if code != 0 || !strings.Contains(stdout, "removed") {
		t.Fatalf("clean --yes: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := slices.Sorted(maps.Keys(tree(t, out))); !slices.Equal(got, []string{".cfg.tmp-1", "notes.txt"}) {
		t.Errorf("after clean --yes the output holds %q, want only the user's files", got)
	}

	os.Remove(filepath.Join(out, "notes.txt"))
	os.Remove(filepath.Join(out, ".cfg.tmp-1"))
	if _, stderr, code := runBin(t, baseEnv(), "run", "--output", out, "--seed", "1", "--quiet"); code != 0 {
		t.Fatalf("a run after clean: exit %d\n%s", code, stderr)
	}
	before = tree(t, out)
	_, stderr, code = runBin(t, baseEnv(), "clean", "--yes", out)
	if code == 0 || !strings.Contains(stderr, "committed output") || !strings.Contains(stderr, "--overwrite") {
		t.Errorf("clean of a committed output: exit %d\n%s", code, stderr)
	}
	if after := tree(t, out); !maps.Equal(before, after) {
		t.Errorf("clean changed a committed output")
	}
}

// awaitObject waits until the object at key of the area exists.
func (a *ctrArea) awaitObject(t *testing.T, p *proc, key string) {
	t.Helper()
	if !p.await(time.Minute, func() bool { _, err := a.get(t, key); return err == nil }) {
		t.Fatalf("%s never wrote %s\n%s", p.name, key, p.errText())
	}
}

// TestConcurrentRunsOneOutputMinIO: TestConcurrentRunsOneOutput on MinIO,
// where the claim is a conditional PUT.
func TestConcurrentRunsOneOutputMinIO(t *testing.T) {
	a := newCtrArea(t)
	in := testData(t)
	ref := reference(t, in, "3", "256KiB")
	a.upload(t, "in/"+filepath.Base(in), in) // the name seeds the split
	root := "s3://" + a.e.Bucket + "/" + a.prefix
	env := ctrMinIOEnv(a.e)
	args := []string{"run", "--input", root + "in/" + filepath.Base(in), "--output", root + "out/", "--s3-endpoint", a.e.Endpoint,
		"--seed", "3", "--split-size", "256KiB", "--workers", "1", "--log-format", "json"}
	first := start(t, "first", env, append([]string{shardprepBin(t)}, append(args, "--job-name", "first-job")...)...)
	a.awaitObject(t, first, "out/"+pipeline.ClaimKey)
	first.signal(t, syscall.SIGSTOP)
	_, stderr, code := runBin(t, env, append(args, "--job-name", "second-job")...)
	first.signal(t, syscall.SIGCONT)
	if code == 0 || !strings.Contains(stderr, "in use by job first-job (run ") || !strings.Contains(stderr, fmt.Sprintf("pid %d", first.cmd.Process.Pid)) {
		t.Errorf("the second run: exit %d, want a refusal naming first-job and its pid:\n%s", code, stderr)
	}
	if code := first.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("the first run: exit %d\n%s", code, lastLines(first.errText(), 5))
	}
	got := map[string][]byte{}
	keys := a.keys(t, "out/")
	for _, k := range keys {
		if strings.Contains(k, "/part-") {
			got[k], _ = a.get(t, "out/"+k)
		}
	}
	sameParts(t, partsOf(t, ref), got)
	for _, k := range []string{"train/_SUCCESS", "validation/_SUCCESS"} {
		if !slices.Contains(keys, k) {
			t.Errorf("no %s", k)
		}
	}
	if slices.Contains(keys, pipeline.ClaimKey) {
		t.Error("the claim outlived the job")
	}
}

// TestCleanAfterKilledContainerMinIO: a two-instance container job
// SIGKILLed while parts are being uploaded leaves a claim, a cluster
// secret and open multipart uploads; clean lists them and removes
// nothing, clean --yes removes them all.
func TestCleanAfterKilledContainerMinIO(t *testing.T) {
	a := newCtrArea(t)
	_, inFile := ctrGenInput(t, 600_000)
	a.upload(t, "input/data.csv", inFile)
	const out = "output/"
	job, roots := ctrSeedJob(t, a, 2, strings.TrimSuffix(out, "/"))
	port := strconv.Itoa(ctrFreePort(t))
	env := append(ctrMinIOEnv(a.e), "AWS_ENDPOINT_URL_S3="+a.e.Endpoint)
	var procs []*ctrProc
	for i, root := range roots {
		args := []string{"container", "--sagemaker-root", root, "--cluster-port", port,
			"--host-address", "algo-1=127.0.0.1", "--credentials", "default",
			"--split-size", "8MiB", "--s3-part-size", "5MiB", "--workers", "2"}
		procs = append(procs, startCtr(t, fmt.Sprintf("algo-%d", i+1), env, append(args, platformArgs(t, root)...)...))
	}
	keys := ctrPartKeys(out, 8)
	for deadline := time.Now().Add(2 * time.Minute); len(a.openUploads(t, keys)) == 0; time.Sleep(50 * time.Millisecond) {
		if !procs[0].running() || time.Now().After(deadline) {
			t.Fatalf("no multipart upload began before the coordinator ended\n%s", procs[0].tail())
		}
	}
	for _, p := range procs {
		p.cmd.Process.Kill()
		p.wait(t, time.Minute)
	}
	left := a.keys(t, out)
	secret := "_shardprep/cluster-secret-" + job
	if !slices.Contains(left, pipeline.ClaimKey) || !slices.Contains(left, secret) {
		t.Fatalf("the killed job left %q, want its claim and secret", left)
	}
	target := "s3://" + a.e.Bucket + "/" + a.prefix + out
	stdout, stderr, code := runBin(t, env, "clean", target)
	if code != 0 || !strings.Contains(stdout, secret) || !strings.Contains(stdout, "dry run") {
		t.Errorf("dry run: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := a.keys(t, out); !slices.Equal(got, left) || len(a.openUploads(t, keys)) == 0 {
		t.Errorf("the dry run removed something: %q", got)
	}
	stdout, stderr, code = runBin(t, env, "clean", "--yes", target)
	if code != 0 {
		t.Fatalf("clean --yes: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Log(strings.TrimSpace(stdout))
	if got := a.keys(t, out); len(got) != 0 {
		t.Errorf("after clean --yes the output holds %q", got)
	}
	if open := a.openUploads(t, keys); len(open) != 0 {
		t.Errorf("multipart uploads left open: %q", open)
	}
}
