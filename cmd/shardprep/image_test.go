package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file run the real image, built once by
// scripts/image.sh, with podman as SageMaker runs it: the platform's files
// in a fake /opt/ml tree mounted at /opt/ml, the job's ContainerArguments
// as the arguments. podman runs it with the runc runtime and a
// containers.conf without default ulimits, which is what works on this
// project's machines; .ci/run installs podman and runc.

var (
	imageOnce sync.Once
	imageTag  string
	imageEnv  []string // podman's environment
	imageErr  error
)

// testImage builds the image on first use and returns podman's path. It
// skips without podman and runc, but fails under CI=true.
func testImage(t *testing.T) string {
	t.Helper()
	podman, err := exec.LookPath("podman")
	if _, serr := os.Stat("/usr/sbin/runc"); err == nil && serr != nil {
		_, err = exec.LookPath("runc")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v: CI must install podman and runc (.ci/run does)", err)
		}
		t.Skipf("the image tests need podman and runc: %v", err)
	}
	imageOnce.Do(func() {
		conf := filepath.Join(binDir, "containers.conf")
		if imageErr = os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); imageErr != nil {
			return
		}
		imageEnv = append(os.Environ(), "CONTAINERS_CONF="+conf)
		var b [6]byte
		rand.Read(b[:])
		tag := "localhost/shardprep-cmdtest:" + hex.EncodeToString(b[:])
		cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "image.sh"))
		cmd.Env = append(imageEnv, "IMAGE="+tag, "ENGINE="+podman, "GO="+filepath.Join(runtime.GOROOT(), "bin", "go"))
		if out, err := cmd.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("scripts/image.sh: %v\n%s", err, out)
			return
		}
		imageTag = tag
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return podman
}

// removeTestImage removes the image testImage built, if any.
func removeTestImage() {
	if imageTag != "" {
		cmd := exec.Command("podman", "rmi", "--force", imageTag)
		cmd.Env = imageEnv
		cmd.Run()
	}
}

// podmanRun starts "podman --runtime runc run --rm --name NAME ARGS..." as
// a process; the container is removed at the end of the test.
func podmanRun(t *testing.T, podman, name string, args ...string) *ctrProc {
	t.Helper()
	p := &ctrProc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(podman, append([]string{"--runtime", "runc", "run", "--rm", "--name", name}, args...)...)
	p.cmd.Env = imageEnv
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.exitedAt = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		rm := exec.Command(podman, "rm", "--force", "--time", "0", name)
		rm.Env = imageEnv
		rm.Run()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// openTree lets the image's non-root user (65532) write the fake tree, as
// SageMaker's channel and output folders are writable by the container.
func openTree(t *testing.T, root string) {
	t.Helper()
	err := filepath.Walk(filepath.Join(root, "opt"), func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chmod(p, info.Mode().Perm()|0o666|map[bool]os.FileMode{true: 0o111}[info.IsDir()])
	})
	if err != nil {
		t.Fatal(err)
	}
}

// localChannelsTree is the local-channels job with input in
// opt/ml/processing/input/abalone/abalone.csv (the name is part of the hash
// split's draw).
func localChannelsTree(t *testing.T, input []byte) (root, out string) {
	t.Helper()
	root = smTree(t, "local-channels", map[string]string{"JOB": ctrName("image-")})
	in := filepath.Join(root, "opt/ml/processing/input/abalone")
	out = filepath.Join(root, "opt/ml/processing/output/prepared")
	for _, d := range []string{in, out, filepath.Join(root, "opt/ml/output")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(in, "abalone.csv"), input, 0o644); err != nil {
		t.Fatal(err)
	}
	openTree(t, root)
	return root, out
}

// TestImageLocalChannels runs the image on one instance whose input and
// output are ProcessingInput and ProcessingOutput folders:
//
//	podman --runtime runc run --rm -v ROOT/opt/ml:/opt/ml IMAGE --seed 42 --split-size 64KiB
//
// and compares its parts byte for byte with shardprep run's. The image also
// tells the commit it was built from.
func TestImageLocalChannels(t *testing.T) {
	podman := testImage(t)
	abalone, err := os.ReadFile("sample/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	ref := ctrReference(t, "sample/abalone.csv", "--seed", "42", "--split-size", "64KiB")
	root, out := localChannelsTree(t, abalone)
	p := podmanRun(t, podman, ctrName("shardprep-local-"),
		append([]string{"-v", filepath.Join(root, "opt/ml") + ":/opt/ml", imageTag}, platformArgs(t, root)...)...)
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit status %d\n%s", code, p.tail())
	}
	ctrCompareParts(t, partsOf(t, ref), partsOf(t, out))
	committed(t, out)
	ctrNoFailureMessage(t, root)
	checkSummaryEvent(t, p.stdout.String())

	v := podmanRun(t, podman, ctrName("shardprep-version-"), "--entrypoint", "/shardprep", imageTag, "version")
	if code := v.wait(t, time.Minute); code != 0 {
		t.Fatalf("version: exit status %d\n%s", code, v.tail())
	}
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		if rev := strings.TrimSpace(string(head)); !strings.Contains(v.stdout.String(), "commit "+rev) {
			t.Errorf("the image's version %q does not name commit %s", v.stdout.String(), rev)
		}
	}
}

// TestImageTwoInstances runs a two-instance job as SageMaker starts it: the
// image twice, on the host's network with algo-1 and algo-2 resolving to
// it, each with its own /opt/ml, against the tests' MinIO; the parts must
// equal shardprep run's byte for byte.
func TestImageTwoInstances(t *testing.T) {
	podman := testImage(t)
	a := newCtrArea(t)
	inDir, inFile := ctrGenInput(t, 100_000)
	a.upload(t, "input/data.csv", inFile)
	ref := ctrReference(t, inDir, "--seed", "7", "--split-size", "1MiB")
	_, roots := ctrSeedJob(t, a, 2, "output")
	port := strconv.Itoa(ctrFreePort(t))
	var procs []*ctrProc
	for i, root := range roots {
		openTree(t, root)
		args := []string{"--network", "host", "--add-host", "algo-1:127.0.0.1", "--add-host", "algo-2:127.0.0.1",
			"-v", filepath.Join(root, "opt/ml") + ":/opt/ml",
			"-e", "AWS_ACCESS_KEY_ID=" + a.e.RootUser, "-e", "AWS_SECRET_ACCESS_KEY=" + a.e.RootPassword,
			"-e", "AWS_REGION=us-east-1", "-e", "AWS_ENDPOINT_URL_S3=" + a.e.Endpoint,
			imageTag, "--cluster-port", port, "--credentials", "default", "--seed", "7", "--split-size", "1MiB", "--workers", "2"}
		procs = append(procs, podmanRun(t, podman, ctrName(fmt.Sprintf("shardprep-algo-%d-", i+1)), append(args, platformArgs(t, root)...)...))
	}
	for i, p := range procs {
		if code := p.wait(t, 3*time.Minute); code != 0 {
			t.Errorf("algo-%d: exit status %d\n%s", i+1, code, p.tail())
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	got := map[string][]byte{}
	for _, k := range a.keys(t, "output/") {
		if strings.Contains(k, "/part-") {
			got[k], _ = a.get(t, "output/"+k)
		}
	}
	ctrCompareParts(t, partsOf(t, ref), got)
	// Every interface by default (Go reports the wildcard as [::]).
	if want := `"msg":"coordinator listening","addr":"[::]:` + port + `"`; !strings.Contains(procs[0].stderr.String(), want) {
		t.Errorf("algo-1 did not log %s\n%s", want, procs[0].tail())
	}
}

// TestImageStopped stops a running image the way StopProcessingJob does,
// with SIGTERM (podman stop): the container exits 130, writes why to
// /opt/ml/output/message and commits nothing.
func TestImageStopped(t *testing.T) {
	podman := testImage(t)
	_, inFile := ctrGenInput(t, 2_000_000)
	data, err := os.ReadFile(inFile)
	if err != nil {
		t.Fatal(err)
	}
	root, out := localChannelsTree(t, data)
	name := ctrName("shardprep-stop-")
	p := podmanRun(t, podman, name, "-v", filepath.Join(root, "opt/ml")+":/opt/ml", imageTag,
		"--seed", "1", "--split-size", "1MiB", "--workers", "1")
	for deadline := time.Now().Add(time.Minute); !strings.Contains(p.stderr.String(), `"msg":"job planned"`); time.Sleep(20 * time.Millisecond) {
		if !p.running() || time.Now().After(deadline) {
			t.Fatalf("the job did not start\n%s", p.tail())
		}
	}
	stop := exec.Command(podman, "stop", "--time", "20", name)
	stop.Env = imageEnv
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	if code := p.wait(t, time.Minute); code != 130 {
		t.Errorf("exit status %d after SIGTERM, want 130\n%s", code, p.tail())
	}
	if msg := ctrFailureMessage(t, root); !strings.Contains(msg, "interrupted") {
		t.Errorf("failure message %q does not say the job was interrupted", msg)
	}
	noSuccess(t, out)
	if files := committedFiles(t, out); len(files) > 0 {
		t.Errorf("a stopped job left %q", files)
	}
}
