package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var submitMinimal = []string{"submit", "--dry-run", "--image", "123456789012.dkr.ecr.us-east-1.amazonaws.com/shardprep:1",
	"--role", "arn:aws:iam::123456789012:role/R"}

// TestSubmitDryRunChecksJobArgs: submit parses the job arguments with the
// container's own parser before it sends anything, so what the container
// would refuse after SageMaker started (and billed) the instances is
// refused at once, in one line, with exit status 2.
func TestSubmitDryRunChecksJobArgs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		args  []string
		want  string
	}{
		{"misspelt flag", nil, []string{"--inptu", "s3://b/in/", "--output", "s3://b/out/"}, "job arguments after --: unknown flag --inptu (did you mean --input?)"},
		{"seed not a number", nil, []string{"--input", "s3://b/in/", "--output", "s3://b/out/", "--seed", "abc"}, `job arguments after --: --seed "abc": not a whole number`},
		{"local output on two instances", []string{"--instance-count", "2"}, []string{"--input", "s3://b/in/", "--output", "/opt/ml/processing/output"}, "a job on 2 instances needs an s3:// output"},
		{"cluster secret in the job's environment", []string{"--env", "SHARDPREP_CLUSTER_SECRET=0123456789abcdef0123"}, []string{"--input", "s3://b/in/", "--output", "s3://b/out/"}, "anyone allowed to describe the job"},
		{"no input", nil, []string{"--output", "s3://b/out/"}, "no input or output"},
		{"split mode", nil, []string{"--input", "s3://b/in/", "--output", "s3://b/out/", "--split-mode", "random"}, "random"},
		{"seed script twice", nil, []string{"--s3_input_bucket", "b", "--s3_input_bucket", "c", "--output", "s3://b/out/"}, "given twice"},
		{"S3 under network isolation", []string{"--network-isolation"}, []string{"--input", "s3://b/in/", "--output", "s3://b/out/"}, "network isolation"},
		{"one split output", []string{"--processing-input", "data=s3://b/in/", "--processing-output", "train=s3://b/train/", "--processing-output", "other=s3://b/o/"}, nil, "none for validation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append(append([]string{}, submitMinimal...), tc.flags...), "--")
			stdout, stderr, code := runBin(t, baseEnv(), append(args, tc.args...)...)
			if code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("a refused job printed its request:\n%s", stdout)
			}
			if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(stderr, tc.want) ||
				!strings.HasPrefix(stderr, "shardprep: submit: ") {
				t.Errorf("stderr %q: want one line from submit containing %q", stderr, tc.want)
			}
		})
	}
}

// TestSubmitParityFlags: the request settings SageMaker users pass through
// the Python SDK reach the CreateProcessingJob request, and a job of
// split-named ProcessingOutputs under network isolation passes the
// container's checks.
func TestSubmitParityFlags(t *testing.T) {
	args := append(append([]string{}, submitMinimal...),
		"--tags", "team=ml,cost-center=42", "--tags", "stage=dev",
		"--volume-kms-key", "alias/volumes", "--output-kms-key", "arn:aws:kms:us-east-1:123456789012:key/1234abcd",
		"--network-isolation", "--inter-container-encryption",
		"--processing-input", "abalone=s3://b/in/",
		"--processing-output", "train=s3://b/train/", "--processing-output", "validation=s3://b/validation/",
		"--", "--seed", "7")
	stdout, stderr, code := runBin(t, baseEnv(), args...)
	if code != 0 {
		t.Fatalf("exit status %d\n%s", code, stderr)
	}
	var req struct {
		Tags                []struct{ Key, Value string }
		ProcessingResources struct {
			ClusterConfig struct{ VolumeKmsKeyId string }
		}
		NetworkConfig    struct{ EnableNetworkIsolation, EnableInterContainerTrafficEncryption bool }
		ProcessingInputs []struct {
			InputName string
			S3Input   map[string]string
		}
		ProcessingOutputConfig struct {
			KmsKeyId string
			Outputs  []struct {
				OutputName string
				S3Output   map[string]string
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &req); err != nil {
		t.Fatalf("dry run output: %v\n%s", err, stdout)
	}
	tags, _ := json.Marshal(req.Tags)
	if string(tags) != `[{"Key":"team","Value":"ml"},{"Key":"cost-center","Value":"42"},{"Key":"stage","Value":"dev"}]` {
		t.Errorf("tags %s", tags)
	}
	if req.ProcessingResources.ClusterConfig.VolumeKmsKeyId != "alias/volumes" ||
		req.ProcessingOutputConfig.KmsKeyId != "arn:aws:kms:us-east-1:123456789012:key/1234abcd" {
		t.Errorf("KMS keys: %s", stdout)
	}
	if !req.NetworkConfig.EnableNetworkIsolation || !req.NetworkConfig.EnableInterContainerTrafficEncryption {
		t.Errorf("network config: %+v", req.NetworkConfig)
	}
	if len(req.ProcessingInputs) != 1 || req.ProcessingInputs[0].S3Input["LocalPath"] != "/opt/ml/processing/input/abalone" ||
		req.ProcessingInputs[0].S3Input["S3DataDistributionType"] != "FullyReplicated" {
		t.Errorf("inputs %+v", req.ProcessingInputs)
	}
	outs := req.ProcessingOutputConfig.Outputs
	if len(outs) != 2 || outs[0].OutputName != "train" || outs[0].S3Output["LocalPath"] != "/opt/ml/processing/output/train" ||
		outs[1].S3Output["S3Uri"] != "s3://b/validation/" || outs[1].S3Output["S3UploadMode"] != "EndOfJob" {
		t.Errorf("outputs %+v", outs)
	}
}

// splitTree makes a one-instance job over the Abalone sample whose
// ProcessingOutputs are named "train" and second, at the given paths.
func splitTree(t *testing.T, second, input, train, validation string) (root, job string) {
	t.Helper()
	job = ctrName("split-")
	root = smTree(t, "split-outputs", map[string]string{"JOB": job, "SECOND": second,
		"INPUT": input, "TRAIN": train, "VALIDATION": validation})
	abalone, err := os.ReadFile("sample/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{input, train, validation} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, input, "abalone.csv"), abalone, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, job
}

// TestContainerSplitOutputs: ProcessingOutputs named like the splits (the
// PySparkProcessor layout) each receive their split; a layout that cannot
// be mapped is refused with its reason. The committed run also logs its
// summary as one structured event.
func TestContainerSplitOutputs(t *testing.T) {
	ref := ctrReference(t, "sample/abalone.csv", "--seed", "42", "--split-size", "64KiB")
	t.Run("train and validation", func(t *testing.T) {
		root, _ := splitTree(t, "validation", "/opt/ml/processing/input/abalone",
			"/opt/ml/processing/output/train", "/opt/ml/processing/output/validation")
		stdout, stderr, code := runBin(t, baseEnv(), "container", "--sagemaker-root", root)
		if code != 0 {
			t.Fatalf("exit status %d\n%s", code, stderr)
		}
		out := filepath.Join(root, "opt/ml/processing/output")
		ctrCompareParts(t, partsOf(t, ref), partsOf(t, out))
		committed(t, out)
		if _, err := os.Stat(filepath.Join(out, "train", "train")); err == nil {
			t.Error("the train output holds a train folder")
		}
		checkSummaryEvent(t, stdout)
	})
	for _, tc := range []struct {
		name, second, input, train, validation, want string
	}{
		{"only train named like a split", "other", "/opt/ml/processing/input/abalone", "/opt/ml/processing/output/train",
			"/opt/ml/processing/output/other", "ProcessingOutputs named like the splits train, but none for validation"},
		{"not siblings", "validation", "/opt/ml/processing/input/abalone", "/opt/ml/processing/output/train",
			"/opt/ml/processing/other/validation", "must be sibling folders named after them"},
		{"input among the outputs", "validation", "/opt/ml/processing/input", "/opt/ml/processing/train",
			"/opt/ml/processing/validation", `ProcessingInput "abalone" (/opt/ml/processing/input) is inside /opt/ml/processing`},
		{"two outputs, no split names", "second", "/opt/ml/processing/input/abalone", "/opt/ml/processing/output/first",
			"/opt/ml/processing/output/second", "none is named like a split"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := splitTree(t, tc.second, tc.input, tc.train, tc.validation)
			if tc.name == "two outputs, no split names" { // rename the "train" output too
				p := filepath.Join(root, "opt/ml/config/processingjobconfig.json")
				b, _ := os.ReadFile(p)
				os.WriteFile(p, []byte(strings.Replace(string(b), `"OutputName": "train"`, `"OutputName": "first"`, 1)), 0o644)
			}
			_, stderr, code := runBin(t, baseEnv(), "container", "--sagemaker-root", root)
			if code != 2 {
				t.Errorf("exit status %d, want 2\n%s", code, stderr)
			}
			if msg := ctrFailureMessage(t, root); !strings.Contains(msg, tc.want) {
				t.Errorf("failure message %q lacks %q", msg, tc.want)
			}
		})
	}
}

// checkSummaryEvent fails unless the container's stdout holds exactly one
// "job summary" event with the summary's fields, and no line of the
// text summary.
func checkSummaryEvent(t *testing.T, stdout string) {
	t.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var rec struct {
			Msg                       string
			RowsRead                  int64            `json:"rows_read"`
			RowsOut                   map[string]int64 `json:"rows_out"`
			Seed                      int64
			Output, SplitMode         string
			Rejected, Objects, Splits *int64
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stdout line is not JSON: %q", line)
			continue
		}
		if regexp.MustCompile(`^(train|validation|rows read|rejected|seed|wall time)\s`).MatchString(rec.Msg) {
			t.Errorf("a line of the text summary logged on its own: %q", line)
		}
		if rec.Msg != "job summary" {
			continue
		}
		n++
		if rec.RowsRead != 4177 || rec.RowsOut["train"]+rec.RowsOut["validation"] != 4177 || rec.RowsOut["train"] == 0 ||
			rec.Seed != 42 || rec.Output == "" || rec.Rejected == nil || rec.Objects == nil || rec.Splits == nil {
			t.Errorf("summary event lacks fields: %s", line)
		}
	}
	if n != 1 {
		t.Errorf("%d \"job summary\" events, want 1:\n%s", n, stdout)
	}
}

// TestVersion: "shardprep version" names the commit the binary was built
// from; scripts/image.sh passes it with -X main.commit when the toolchain
// does not record it.
func TestVersion(t *testing.T) {
	stdout, _, code := runBin(t, baseEnv(), "version")
	if code != 0 || !regexp.MustCompile(`^shardprep \S+ \(commit ([0-9a-f]{40}(, modified)?|unknown)\)\n$`).MatchString(stdout) {
		t.Errorf("version printed %q (exit %d)", stdout, code)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no git checkout: %v", err)
	}
	rev := strings.TrimSpace(string(head))
	bin := filepath.Join(t.TempDir(), "shardprep")
	ctx := exec.Command("go", "build", "-ldflags", "-X main.commit="+rev, "-o", bin, ".")
	ctx.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := ctx.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.Contains(string(out), "(commit "+rev+")") {
		t.Errorf("version printed %q (%v), want commit %s", out, err, rev)
	}
}
