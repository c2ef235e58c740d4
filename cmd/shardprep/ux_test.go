package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardprep/shardprep/cmd/shardprep/sample"
)

// The tests in this file run the built binary as a new user types it and
// check what it says: command-line mistakes, storage that cannot be used,
// outputs that are not split folders, headers that do not match.

// stderrLines splits standard error into its lines.
func stderrLines(stderr string) []string {
	return strings.Split(strings.TrimRight(stderr, "\n"), "\n")
}

// TestFlagMistakesBinary: a mistake in a command's flags prints one line
// naming the command and the flag (with the nearest flag for a misspelt
// one) and a pointer to the command's help, nothing else, and exits 2.
func TestFlagMistakesBinary(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--inptu", "x"}, "unknown flag --inptu (did you mean --input?)"},
		{[]string{"run", "--ouput", "x"}, "unknown flag --ouput (did you mean --output?)"},
		{[]string{"run", "--seed", "abc"}, `--seed "abc": not a whole number`},
		{[]string{"run", "--split-size", "0"}, `--split-size "0": not a positive size such as 1048576, 64KiB or 32MiB`},
		{[]string{"run", "--log-format", "yaml"}, `--log-format "yaml": want text, json or auto`},
		{[]string{"run", "--workers"}, "--workers needs a value"},
		{[]string{"run", "--quiet=maybe"}, `--quiet "maybe": not true or false`},
		{[]string{"coordinator", "--listn", "x"}, "unknown flag --listn (did you mean --listen?)"},
		{[]string{"coordinator", "--lease", "5"}, `--lease "5": not a duration such as 90s, 15m or 2h`},
		{[]string{"worker", "--coordinater", "x"}, "unknown flag --coordinater (did you mean --coordinator?)"},
		{[]string{"head", "-n", "x", "out"}, `-n "x": not a whole number`},
		{[]string{"gen", "--rws", "3"}, "unknown flag --rws (did you mean --rows?)"},
		{[]string{"clean", "--yse", "out"}, "unknown flag --yse (did you mean --yes?)"},
		{[]string{"submit", "--dry-runn"}, "unknown flag --dry-runn (did you mean --dry-run?)"},
		{[]string{"submit", "--max-runtime", "ten"}, `--max-runtime "ten": not a duration such as 90m, 12h or 9d`},
		{[]string{"run", "--zzz"}, "unknown flag --zzz"},
	} {
		_, stderr, code := runBin(t, baseEnv(), c.args...)
		want := []string{"shardprep " + c.args[0] + ": " + c.want, "run 'shardprep " + c.args[0] + " -h' for help"}
		if got := stderrLines(stderr); code != 2 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("shardprep %s: exit %d\n%s\nwant exit 2\n%s", strings.Join(c.args, " "), code, stderr, strings.Join(want, "\n"))
		}
	}
}

// TestSubmitMaxRuntimeDaysBinary: submit's --max-runtime takes days, as
// its help says a run may last up to 9 days: 2d12h is 216000 s in the
// request, and 10d is refused as over the limit (exit 2, one line).
func TestSubmitMaxRuntimeDaysBinary(t *testing.T) {
	args := []string{"submit", "--dry-run", "--image", "123456789012.dkr.ecr.us-east-1.amazonaws.com/shardprep:1.0",
		"--role", "arn:aws:iam::123456789012:role/R"}
	jobArgs := []string{"--", "--input", "s3://b/in/", "--output", "s3://b/out/"} // submit checks them too
	stdout, stderr, code := runBin(t, baseEnv(), append(append(args, "--max-runtime", "2d12h"), jobArgs...)...)
	var req struct {
		StoppingCondition struct{ MaxRuntimeInSeconds int }
	}
	if err := json.Unmarshal([]byte(stdout), &req); code != 0 || err != nil || req.StoppingCondition.MaxRuntimeInSeconds != 216000 {
		t.Errorf("--max-runtime 2d12h: exit %d, %v, %d s\n%s", code, err, req.StoppingCondition.MaxRuntimeInSeconds, stderr)
	}
	_, stderr, code = runBin(t, baseEnv(), append(append(args, "--max-runtime", "10d"), jobArgs...)...)
	if lines := stderrLines(stderr); code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "--max-runtime 10d: must be whole seconds from 1s to 9d (SageMaker's limit, 777600 seconds)") {
		t.Errorf("--max-runtime 10d: exit %d\n%s", code, stderr)
	}
}

// TestHelpSpellsFlagsWithTwoDashesBinary: every command's help lists its
// flags as --name (one-letter ones as -n), as the README writes them, and
// both spellings parse to the same job.
func TestHelpSpellsFlagsWithTwoDashesBinary(t *testing.T) {
	flagLine := regexp.MustCompile(`^  (-+)([a-z0-9_-]+)`)
	for _, cmd := range []string{"run", "coordinator", "worker", "container", "submit", "clean", "head", "gen"} {
		_, stderr, code := runBin(t, baseEnv(), cmd, "-h")
		_, flags, _ := strings.Cut(stderr, "\nFlags:\n")
		n := 0
		for _, l := range strings.Split(flags, "\n") {
			m := flagLine.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			n++
			if want := map[bool]string{true: "-", false: "--"}[len(m[2]) == 1]; m[1] != want {
				t.Errorf("%s -h: %q", cmd, l)
			}
		}
		if code != 0 || n < 3 {
			t.Errorf("%s -h: exit %d, %d flags\n%s", cmd, code, n, stderr)
		}
	}
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	if _, stderr, code := runBin(t, baseEnv(), "run", "-seed", "3", "-output", one, "-quiet"); code != 0 {
		t.Fatalf("-flag spelling: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := runBin(t, baseEnv(), "run", "--seed=3", "--output", two, "--quiet"); code != 0 {
		t.Fatalf("--flag spelling: exit %d\n%s", code, stderr)
	}
	sameParts(t, partsOf(t, one), partsOf(t, two))
}

// TestQuietPrintsOnlyErrorsBinary: with --quiet a job that succeeds prints
// nothing at all (no summary, no logs, in either log format), and one
// that fails prints its error.
func TestQuietPrintsOnlyErrorsBinary(t *testing.T) {
	dir := t.TempDir()
	for _, format := range []string{"json", "text"} {
		stdout, stderr, code := runBin(t, baseEnv(), "run", "--seed", "1", "--output", filepath.Join(dir, format), "--quiet", "--log-format", format)
		if code != 0 || stdout != "" || stderr != "" {
			t.Errorf("--quiet --log-format %s: exit %d\nstdout:\n%s\nstderr:\n%s", format, code, stdout, stderr)
		}
	}
	stdout, stderr, code := runBin(t, baseEnv(), "run", "--input", filepath.Join(dir, "missing.csv"), "--output", filepath.Join(dir, "x"), "--quiet")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "missing.csv") {
		t.Errorf("a failing --quiet job: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// Without --quiet the summary is there.
	stdout, _, _ = runBin(t, baseEnv(), "run", "--seed", "1", "--output", filepath.Join(dir, "loud"))
	if !strings.Contains(stdout, "shardprep: committed") {
		t.Errorf("the summary is missing without --quiet:\n%s", stdout)
	}
}

// TestDefaultOutputUniqueBinary: jobs started together without --output
// or --job-name (in the same second) write to different folders, each
// named after its job, as its manifest records.
func TestDefaultOutputUniqueBinary(t *testing.T) {
	dir := t.TempDir()
	shardprepBin(t) // built before the goroutines use it
	const n = 4
	var wg sync.WaitGroup
	codes := make([]int, n)
	errs := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := []string{"run", "--seed", "1", "--quiet"}
			_, errs[i], codes[i] = runBinIn(t, dir, cmd...)
		}()
	}
	wg.Wait()
	for i := range n {
		if codes[i] != 0 {
			t.Errorf("job %d: exit %d\n%s", i, codes[i], errs[i])
		}
	}
	outs, _ := filepath.Glob(filepath.Join(dir, "shardprep-out", "*"))
	if len(outs) != n {
		t.Fatalf("%d outputs for %d jobs: %q", len(outs), n, outs)
	}
	name := regexp.MustCompile(`^shardprep-\d{8}-\d{6}-\d{3}-[0-9a-f]{4}$`)
	for _, o := range outs {
		m := readManifest(t, o)
		if base := filepath.Base(o); !name.MatchString(base) || m.Job != base {
			t.Errorf("output %s: manifest job %q", base, m.Job)
		}
	}
}

// runBinIn is runBin in the working directory dir.
func runBinIn(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCmd(t, dir, baseEnv(), args...)
}

// TestWorkerCoordinatorHostPortBinary: --coordinator HOST:PORT, without
// http://, joins the coordinator (the job commits with the worker's
// share), and a form that is not a URL is refused, saying what is wanted.
func TestWorkerCoordinatorHostPortBinary(t *testing.T) {
	in := testData(t)
	out := filepath.Join(t.TempDir(), "out")
	coord, url := startCoordinator(t, clusterEnv(), nil, "--input", in, "--output", out, "--seed", "5",
		"--split-size", "64KiB", "--workers", "0", "--lease", "5s", "--linger", "2s")
	w := startWorker(t, clusterEnv(), nil, strings.TrimPrefix(url, "http://"), "hostport")
	if code := w.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("worker: exit %d\n%s", code, lastLines(w.errText(), 5))
	}
	if code := coord.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("coordinator: exit %d\n%s", code, lastLines(coord.errText(), 5))
	}
	committed(t, out)
	_, stderr, code := runBin(t, clusterEnv(), "worker", "--coordinator", "ftp://10.0.0.1:7070")
	if code != 2 || !strings.Contains(stderr, `--coordinator "ftp://10.0.0.1:7070": want http://HOST:PORT or HOST:PORT`) {
		t.Errorf("ftp://: exit %d\n%s", code, stderr)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// noAWSEnv is an environment without AWS credentials anywhere: no keys, a
// HOME without ~/.aws, no instance metadata.
func noAWSEnv(t *testing.T, extra ...string) []string {
	return baseEnv(append([]string{"HOME=" + t.TempDir(), "AWS_EC2_METADATA_DISABLED=true"}, extra...)...)
}

// TestS3ErrorsBinary: against an S3 endpoint, no credentials at all is
// "no usable AWS credentials" naming where they are looked up (not access
// denied); an endpoint that refuses connections is "cannot reach"; grants
// credentials with a custom endpoint and no grants file say what is
// missing; STS that cannot be reached is one short line with what to do.
func TestS3ErrorsBinary(t *testing.T) {
	ep := "http://" + closedPort(t)
	out := filepath.Join(t.TempDir(), "out")
	run := []string{"run", "--input", "s3://bucket/in/", "--output", out, "--s3-endpoint", ep, "--quiet"}
	keys := []string{"AWS_ACCESS_KEY_ID=AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", "AWS_REGION=us-east-1"}
	check := func(name string, env []string, args []string, wantCode int, want ...string) {
		t.Helper()
		_, stderr, code := runBin(t, env, args...)
		lines := stderrLines(stderr)
		last := lines[len(lines)-1]
		ok := code == wantCode && len(lines) == 1 && len(last) < 400 && !strings.Contains(last, "access denied") &&
			!strings.Contains(last, "operation error")
		for _, w := range want {
			ok = ok && strings.Contains(last, w)
		}
		if !ok {
			t.Errorf("%s: exit %d\n%s\nwant exit %d, one line with %q", name, code, stderr, wantCode, want)
		}
	}
	check("no credentials", noAWSEnv(t), run, 1, "no usable AWS credentials", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "~/.aws/credentials")
	check("connection refused", noAWSEnv(t, keys...), append(run, "--s3-max-retries", "0"), 1,
		"cannot reach "+ep+" (connection refused) for s3://bucket/in/")
	check("grants without a grants file", noAWSEnv(t, keys...), append(run, "--credentials", "grants"), 2,
		"--credentials grants with the S3 endpoint "+ep+" needs --grants-file FILE", "--s3control-endpoint")
	check("grants without a grants file, endpoint from the environment", noAWSEnv(t, append(keys, "AWS_ENDPOINT_URL_S3="+ep)...),
		[]string{"run", "--input", "s3://bucket/in/", "--output", out, "--credentials", "grants", "--quiet"}, 1,
		"--credentials grants with the S3 endpoint "+ep+" needs --grants-file FILE")
	sts := "http://" + closedPort(t)
	check("STS unreachable", noAWSEnv(t, append(keys, "AWS_ENDPOINT_URL_STS="+sts, "AWS_MAX_ATTEMPTS=1")...),
		[]string{"run", "--input", "s3://bucket/in/", "--output", out, "--credentials", "grants", "--quiet"}, 1,
		"finding the caller's account (STS GetCallerIdentity): cannot reach "+sts+" (connection refused); pass --account-id")
}

// TestSpecAndModelErrorsBinary: an invalid spec, a missing one and a
// model that does not fit the spec are one line each that says so once,
// naming the flag and the file.
func TestSpecAndModelErrorsBinary(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "x.json")
	writeFiles(t, dir, map[string]string{
		"x.json":    `{"columns": []}`,
		"cars.json": `{"columns":[{"name":"make","type":"string"},{"name":"fuel","type":"double"}],"categorical":["make"],"numeric":[],"label":"fuel","splits":[{"name":"train","weight":1}]}`,
	})
	model := filepath.Join(dir, "abalone", "_shardprep", "model.json")
	if _, stderr, code := runBin(t, baseEnv(), "run", "--output", filepath.Join(dir, "abalone"), "--quiet"); code != 0 {
		t.Fatal(stderr)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--spec", spec}, 1, "shardprep: --spec " + spec + ": columns: at least one column is required"},
		{[]string{"--spec", filepath.Join(dir, "none.json")}, 1, "shardprep: --spec " + filepath.Join(dir, "none.json") + ": no such file or directory"},
		{[]string{"--spec", filepath.Join(dir, "cars.json"), "--model", model}, 2, "shardprep: --model " + model +
			` does not fit the spec: model categorical columns ["sex"], spec categorical ["make"]; leave out --model to fit a new model, or give the --spec it was fitted with`},
	} {
		_, stderr, code := runBin(t, baseEnv(), append([]string{"run", "--output", filepath.Join(dir, "out"), "--quiet"}, c.args...)...)
		if got := strings.TrimRight(stderr, "\n"); code != c.code || got != c.want {
			t.Errorf("run %q: exit %d\n%s\nwant exit %d\n%s", c.args, code, got, c.code, c.want)
		}
	}
}

// TestHeadOutputRootBinary: head on an output's root, rather than one of
// its split folders, names the split folders and suggests the first.
func TestHeadOutputRootBinary(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "abalone")
	if _, stderr, code := runBin(t, baseEnv(), "run", "--output", out, "--quiet"); code != 0 {
		t.Fatal(stderr)
	}
	for _, arg := range []string{out, out + "/"} {
		_, stderr, code := runBin(t, baseEnv(), "head", arg)
		want := "shardprep: " + arg + ": no part files there; it is an output with the split folders train, validation: did you mean " + out + "/train?\n"
		if code != 1 || stderr != want {
			t.Errorf("head %s: exit %d\n%s\nwant exit 1\n%s", arg, code, stderr, want)
		}
	}
	if stdout, stderr, code := runBin(t, baseEnv(), "head", "-n", "2", out+"/train"); code != 0 || len(lines([]byte(stdout))) != 2 {
		t.Errorf("head -n 2 %s/train: exit %d\n%s%s", out, code, stdout, stderr)
	}
}

// TestHeaderMismatchBinary: with --header, a header whose names are the
// spec's columns in another order is refused under either policy, naming
// both orders; the same file with the header in the spec's order runs.
func TestHeaderMismatchBinary(t *testing.T) {
	dir := t.TempDir()
	rows := "1.5,ford\n2.5,audi\n3,vw\n"
	writeFiles(t, dir, map[string]string{
		"spec.json": `{"columns":[{"name":"make","type":"string"},{"name":"fuel","type":"double"}],"categorical":["make"],"numeric":[],"label":"fuel","splits":[{"name":"train","weight":1}]}`,
		"bad.csv":   "fuel,make\n" + rows,
		"good.csv":  "make,fuel\nford,1.5\naudi,2.5\nvw,3\n",
	})
	for _, policy := range []string{"error", "skip"} {
		bad := filepath.Join(dir, "bad.csv")
		_, stderr, code := runBin(t, baseEnv(), "run", "--input", bad, "--spec", filepath.Join(dir, "spec.json"), "--header",
			"--on-invalid", policy, "--output", filepath.Join(dir, "out-"+policy), "--quiet")
		want := "shardprep: " + bad + ": line 1: the header row names the columns fuel,make, but the spec's columns are make,fuel, in that order"
		if code != 1 || !strings.HasPrefix(errorLine(t, stderr), want) {
			t.Errorf("--on-invalid %s: exit %d\n%s\nwant exit 1 and\n%s", policy, code, stderr, want)
		}
		if files := committedFiles(t, filepath.Join(dir, "out-"+policy)); len(files) > 0 {
			t.Errorf("the refused job left %q", files)
		}
	}
	_, stderr, code := runBin(t, baseEnv(), "run", "--input", filepath.Join(dir, "good.csv"), "--spec", filepath.Join(dir, "spec.json"),
		"--header", "--output", filepath.Join(dir, "good"), "--quiet")
	if code != 0 {
		t.Errorf("the header in the spec's order: exit %d\n%s", code, stderr)
	}
}

// TestFirstBadLineBinary: with --on-invalid error, the line reported is
// the first invalid one of the file, although the fit pass, which reads
// only the categorical columns, meets a later one first (an empty
// category on line 8, after a bad number on line 6).
func TestFirstBadLineBinary(t *testing.T) {
	dir := t.TempDir()
	good := strings.Join(lines(sample.CSV)[:5], "\n") + "\n"
	in := filepath.Join(dir, "bad.csv")
	writeFiles(t, dir, map[string]string{"bad.csv": good +
		"M,0.4,0.3,0.1o5,0.5,0.2,0.1,0.15,9\n" +
		"M,0.4,0.3,0.1,0.5,0.2,0.1,0.15,9\n" +
		",0.4,0.3,0.1,0.5,0.2,0.1,0.15,9\n"})
	_, stderr, code := runBin(t, baseEnv(), "run", "--input", in, "--output", filepath.Join(dir, "out"), "--quiet")
	want := "shardprep: " + in + `: line 6, column "height": not a number: "0.1o5"`
	if code != 1 || !strings.HasPrefix(errorLine(t, stderr), want) {
		t.Errorf("exit %d\n%s\nwant exit 1 and\n%s", code, stderr, want)
	}
}

// TestGenHelpPercentBinary: gen -h says "about 2%", not "2%%".
func TestGenHelpPercentBinary(t *testing.T) {
	_, stderr, _ := runBin(t, baseEnv(), "gen", "-h")
	if !strings.Contains(stderr, "by about 2%\n") || strings.Contains(stderr, "%%") {
		t.Errorf("gen -h:\n%s", stderr)
	}
}

// TestFirstBadLineAcrossSplitsBinary: with --on-invalid error and many
// splits, the line reported is the first invalid line of the input,
// whichever split and pass meets an invalid line first.
func TestFirstBadLineAcrossSplitsBinary(t *testing.T) {
	base := lines(sample.CSV)
	base = append(append(append([]string{}, base...), base...), base...) // about 9 splits of 64KiB
	badNumber := func(l string) string { f := strings.Split(l, ","); f[3] = "0.1o5"; return strings.Join(f, ",") }
	noCategory := func(l string) string { return l[strings.IndexByte(l, ','):] }
	for _, tc := range []struct {
		name string
		bad  map[int]func(string) string // by line number, from 1
		want int
	}{
		{"number in the first split, category in the last", map[int]func(string) string{10: badNumber, 12000: noCategory}, 10},
		{"number in a middle split, categories after it", map[int]func(string) string{6000: badNumber, 6001: noCategory, 9000: noCategory}, 6000},
		{"two numbers, the later one in an earlier pass order", map[int]func(string) string{1500: badNumber, 11000: badNumber, 11001: noCategory}, 1500},
		{"category only", map[int]func(string) string{7000: noCategory, 12400: noCategory}, 7000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rows := append([]string{}, base...)
			for n, f := range tc.bad {
				rows[n-1] = f(rows[n-1])
			}
			in := filepath.Join(dir, "bad.csv")
			writeFiles(t, dir, map[string]string{"bad.csv": strings.Join(rows, "\n") + "\n"})
			for _, workers := range []string{"1", "2", "3"} {
				out := filepath.Join(dir, "out"+workers)
				_, stderr, code := runBin(t, baseEnv(), "run", "--input", in, "--output", out,
					"--workers", workers, "--split-size", "64KiB", "--quiet")
				want := fmt.Sprintf("shardprep: %s: line %d, column ", in, tc.want)
				if code != 1 || !strings.HasPrefix(errorLine(t, stderr), want) {
					t.Errorf("--workers %s: exit %d\n%s\nwant exit 1 and\n%s", workers, code, stderr, want)
				}
				if _, err := os.Stat(filepath.Join(out, "_SUCCESS")); err == nil {
					t.Errorf("--workers %s: a failed job committed", workers)
				}
			}
		})
	}
}

// TestFirstBadLineClusterBinary: the same in a cluster, where the fit
// tasks that check every column of the splits before a bad category go
// to worker processes: the bad number before it is the line reported.
func TestFirstBadLineClusterBinary(t *testing.T) {
	base := lines(sample.CSV)
	rows := append(append(append([]string{}, base...), base...), base...)
	f := strings.Split(rows[99], ",")
	f[3] = "0.1o5"
	rows[99] = strings.Join(f, ",")                                 // a bad number on line 100
	rows[11999] = rows[11999][strings.IndexByte(rows[11999], ','):] // no category on line 12000
	dir := t.TempDir()
	in := filepath.Join(dir, "bad.csv")
	writeFiles(t, dir, map[string]string{"bad.csv": strings.Join(rows, "\n") + "\n"})
	out := filepath.Join(dir, "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--split-size", "64KiB", "--workers", "0", "--lease", "5s")
	for i := 1; i <= 2; i++ {
		startWorker(t, clusterEnv(), nil, "http://"+addr, fmt.Sprintf("w%d", i))
	}
	code := coord.wait(t, 2*time.Minute)
	want := fmt.Sprintf("%s: line 100, column \"height\": not a number: \"0.1o5\"", in)
	if code != 1 || !strings.Contains(coord.errText(), want) || strings.Contains(lastLines(coord.errText(), 1), "line 12000") {
		t.Errorf("coordinator exit %d, want 1 and %s\n%s", code, want, lastLines(coord.errText(), 5))
	}
	noSuccess(t, out)
}
