package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/shardprep/shardprep/cmd/internal/cli"
)

// submitTwoHostFlags are the flags of the request whose body is
// ../internal/sagemaker/testdata/two-host-request.json.
var submitTwoHostFlags = []string{
	"--job-name", "abalone-prep-2",
	"--image", "123456789012.dkr.ecr.us-east-1.amazonaws.com/shardprep:1.0",
	"--role=arn:aws:iam::123456789012:role/SageMakerProcessing",
	"--instance-count", "2", "--instance-type", "ml.m5.xlarge", "--volume-size-gb", "50",
	"--max-runtime", "2h",
	"--subnets", "subnet-0a1b2c3d, subnet-4e5f6a7b", "--security-groups", "sg-0123456789abcdef0",
	"--env", "SHARDPREP_LOG=debug", "--env", "GOMAXPROCS=4",
	"--",
	"--input", "s3://abalone-data/input/", "--output", "s3://abalone-data/output/", "--credentials", "grants",
}

func submitRun(ctx context.Context, env map[string]string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = runSubmit(ctx, args, func(k string) string { return env[k] }, &out, &errb)
	return out.String(), errb.String(), err
}

func TestSubmitDryRun(t *testing.T) {
	golden, err := os.ReadFile("../internal/sagemaker/testdata/two-host-request.json")
	if err != nil {
		t.Fatal(err)
	}
	submitGolden := strings.TrimSuffix(string(golden), "\n")
	out, errOut, err := submitRun(context.Background(), nil, append([]string{"--dry-run"}, submitTwoHostFlags...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if out != submitGolden+"\n" {
		t.Errorf("dry run printed:\n%s\nwant:\n%s", out, submitGolden)
	}

	// Defaults: a timestamped name, one ml.m5.large, 30 GB, one hour, no
	// VPC, no environment, no arguments.
	out, errOut, err = submitRun(context.Background(), nil, "--dry-run",
		"--image", "img", "--role", "arn:aws:iam::123456789012:role/R", "--", "--input", "s3://b/in/", "--output", "s3://b/out/")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var req struct {
		ProcessingJobName   string
		AppSpecification    map[string]any
		ProcessingResources struct{ ClusterConfig map[string]any }
		StoppingCondition   struct{ MaxRuntimeInSeconds int }
		Environment         map[string]string
		NetworkConfig       any
	}
	if err := json.Unmarshal([]byte(out), &req); err != nil {
		t.Fatalf("dry run output is not JSON: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`^shardprep-\d{8}-\d{6}-\d{3}$`).MatchString(req.ProcessingJobName) {
		t.Errorf("default job name %q", req.ProcessingJobName)
	}
	cc := req.ProcessingResources.ClusterConfig
	if cc["InstanceCount"] != 1.0 || cc["InstanceType"] != "ml.m5.large" || cc["VolumeSizeInGB"] != 30.0 {
		t.Errorf("default cluster %v", cc)
	}
	if req.StoppingCondition.MaxRuntimeInSeconds != 3600 {
		t.Errorf("default max runtime %d", req.StoppingCondition.MaxRuntimeInSeconds)
	}
	if args := fmt.Sprint(req.AppSpecification["ContainerArguments"]); args != "[--input s3://b/in/ --output s3://b/out/]" || req.Environment != nil || req.NetworkConfig != nil {
		t.Errorf("defaults sent other arguments, an environment or a network: %s", out)
	}
}

func TestSubmitFlags(t *testing.T) {
	_, stderr, err := submitRun(context.Background(), nil, "-h")
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	for _, s := range []string{"Usage: shardprep submit", "Examples:", "-- --input s3://", "--s3_input_bucket",
		"-image", "-role", "-instance-count", "-instance-type", "-volume-size-gb", "-max-runtime", "-subnets",
		"-security-groups", "-env", "-wait", "-dry-run", "-region", "-job-name", "-endpoint-url", "-poll-interval",
		"(default 1h0m0s)", `(default "ml.m5.large")`} {
		if !strings.Contains(stderr, s) {
			t.Errorf("-h output lacks %q", s)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--image", "i", "--role", "arn:aws:iam::123456789012:role/R", "--input", "x"}, "unknown flag --input"},
		{[]string{"--image", "i", "--role", "arn:aws:iam::123456789012:role/R", "stray"}, `unexpected argument "stray"; job arguments go after --`},
		{[]string{"--instance-count", "two"}, `--instance-count "two": not a whole number`},
		{[]string{"--image", "i", "--role", "arn:aws:iam::123456789012:role/R", "--poll-interval", "0s"}, "--poll-interval"},
		{[]string{"--role", "arn:aws:iam::123456789012:role/R"}, "--image is required"},
	} {
		_, _, err := submitRun(context.Background(), nil, tc.args...)
		var ue *cli.UsageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ue) {
			t.Errorf("submit %q: error %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}
