package container

import (
	"strings"
	"testing"
)

func TestOutputRoot(t *testing.T) {
	out := func(name, p string) Channel { return Channel{Name: name, LocalPath: p, S3URI: "s3://b/" + name + "/"} }
	splits := []string{"train", "validation"}
	for _, tc := range []struct {
		name   string
		job    Job
		splits []string
		want   string // root, or "error: TEXT"
	}{
		{"none", Job{}, splits, ""},
		{"one", Job{Outputs: []Channel{out("prepared", "/opt/ml/processing/output/prepared")}}, splits, "/opt/ml/processing/output/prepared"},
		{"one named like a split", Job{Outputs: []Channel{out("train", "/opt/ml/processing/output/train")}}, splits, "error: none for validation"},
		{"split siblings", Job{Outputs: []Channel{out("validation", "/opt/ml/processing/out/validation/"), out("train", "/opt/ml/processing/out/train")}}, splits, "/opt/ml/processing/out"},
		{"split folders misnamed", Job{Outputs: []Channel{out("train", "/opt/ml/processing/out/a"), out("validation", "/opt/ml/processing/out/validation")}}, splits, "error: must be sibling folders"},
		{"split folders apart", Job{Outputs: []Channel{out("train", "/opt/ml/processing/a/train"), out("validation", "/opt/ml/processing/b/validation")}}, splits, "error: must be sibling folders"},
		{"input among split outputs", Job{Inputs: []Channel{{Name: "data", LocalPath: "/opt/ml/processing/data"}},
			Outputs: []Channel{out("train", "/opt/ml/processing/train"), out("validation", "/opt/ml/processing/validation")}}, splits, `error: ProcessingInput "data"`},
		{"ambiguous", Job{Outputs: []Channel{out("a", "/opt/ml/processing/output/a"), out("b", "/opt/ml/processing/output/b")}}, splits, "error: none is named like a split"},
		{"unknown splits", Job{Outputs: []Channel{out("a", "/opt/ml/processing/output/a"), out("b", "/opt/ml/processing/output/b")}}, nil, "/opt/ml/processing/output"},
		{"feature store output ignored", Job{Outputs: []Channel{{Name: "fs"}, out("prepared", "/opt/ml/processing/output/prepared")}}, splits, "/opt/ml/processing/output/prepared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.job.OutputRoot(tc.splits)
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("root %q, error %v; want an error containing %q", got, err, want)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("root %q, error %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestCheckRun(t *testing.T) {
	two := Job{Hosts: []string{"algo-1", "algo-2"}, Environment: map[string]string{}}
	secret := two
	secret.Environment = map[string]string{ClusterSecretEnv: "x"}
	isolated := Job{Hosts: []string{"algo-1"}, NetworkIsolation: true}
	for _, tc := range []struct {
		name string
		job  Job
		s    RunSettings
		want string
	}{
		{"one instance, local", Job{Hosts: []string{"algo-1"}}, RunSettings{Inputs: []string{"/opt/ml/processing/input/a"}, Output: "/opt/ml/processing/output/b"}, ""},
		{"two instances, S3", two, RunSettings{Inputs: []string{"s3://b/in/"}, Output: "s3://b/out/"}, ""},
		{"two instances, local output", two, RunSettings{Inputs: []string{"s3://b/in/"}, Output: "/opt/ml/processing/output"}, "needs an s3:// output"},
		{"secret in the job", secret, RunSettings{Inputs: []string{"s3://b/in/"}, Output: "s3://b/out/"}, "anyone allowed to describe the job"},
		{"isolated, local", isolated, RunSettings{Inputs: []string{"/opt/ml/processing/input/a"}, Output: "/opt/ml/processing/output/b"}, ""},
		{"isolated, S3 input", isolated, RunSettings{Inputs: []string{"s3://b/in/"}, Output: "/opt/ml/processing/output/b"}, "network isolation"},
	} {
		err := tc.job.CheckRun(tc.s)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestRequestJob(t *testing.T) {
	r := ProcessingJobRequest{JobName: "j", InstanceCount: 3, Env: []string{"AWS_REGION=eu-west-1"}, Args: []string{"--seed", "1"},
		Inputs: []string{"data=s3://b/in/"}, Outputs: []string{"train=s3://b/t/"}, NetworkIsolation: true}
	j := r.Job()
	if strings.Join(j.Hosts, ",") != "algo-1,algo-2,algo-3" || j.CurrentHost != "algo-1" || !j.IsCoordinator || j.Region != "eu-west-1" ||
		!j.NetworkIsolation || j.JobName != "j" || len(j.Arguments) != 2 {
		t.Errorf("job %+v", j)
	}
	if len(j.Inputs) != 1 || j.Inputs[0].LocalPath != "/opt/ml/processing/input/data" || j.Outputs[0].LocalPath != "/opt/ml/processing/output/train" {
		t.Errorf("channels %+v %+v", j.Inputs, j.Outputs)
	}
}

func TestConsoleURL(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/abalone-2": "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/processing-jobs/abalone-2",
		"arn:aws-cn:sagemaker:cn-north-1:123456789012:processing-job/j":     "https://cn-north-1.console.amazonaws.cn/sagemaker/home?region=cn-north-1#/processing-jobs/j",
		"arn:aws:sagemaker:eu-west-1:123456789012:training-job/x":           "",
		"abalone-2": "",
		"arn:aws-iso:sagemaker:us-iso-east-1:123456789012:processing-job/j": "",
	} {
		if got := ConsoleURL(arn); got != want {
			t.Errorf("ConsoleURL(%q) = %q, want %q", arn, got, want)
		}
	}
}
