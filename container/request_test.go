package container

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

// requestInstanceTypes stands for the SDK's list of Processing instance
// types.
var requestInstanceTypes = []string{"ml.m5.large", "ml.m5.xlarge", "ml.c5.2xlarge"}

func twoHostRequest() ProcessingJobRequest {
	return ProcessingJobRequest{
		JobName:        "abalone-prep-2",
		Image:          "123456789012.dkr.ecr.us-east-1.amazonaws.com/shardprep:1.0",
		Role:           "arn:aws:iam::123456789012:role/SageMakerProcessing",
		InstanceCount:  2,
		InstanceType:   "ml.m5.xlarge",
		VolumeSizeGB:   50,
		MaxRuntime:     2 * time.Hour,
		Subnets:        []string{"subnet-0a1b2c3d", "subnet-4e5f6a7b"},
		SecurityGroups: []string{"sg-0123456789abcdef0"},
		Env:            []string{"SHARDPREP_LOG=debug", "GOMAXPROCS=4"},
		Args:           []string{"--input", "s3://abalone-data/input/", "--output", "s3://abalone-data/output/", "--credentials", "grants"},
	}
}

func TestProcessingJobRequestValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	many := func(n int, f func(i int) string) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = f(i)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		edit func(*ProcessingJobRequest)
		want string // "" means valid
	}{
		{"valid", func(s *ProcessingJobRequest) {}, ""},
		{"name too long", func(s *ProcessingJobRequest) { s.JobName = long(64) }, "--job-name"},
		{"name of 63", func(s *ProcessingJobRequest) { s.JobName = long(63) }, ""},
		{"name with underscore", func(s *ProcessingJobRequest) { s.JobName = "abalone_prep" }, "--job-name"},
		{"name starts with hyphen", func(s *ProcessingJobRequest) { s.JobName = "-abalone" }, "--job-name"},
		{"name ends with hyphen", func(s *ProcessingJobRequest) { s.JobName = "abalone-" }, "--job-name"},
		{"name with double hyphen", func(s *ProcessingJobRequest) { s.JobName = "a--b" }, ""},
		{"empty name", func(s *ProcessingJobRequest) { s.JobName = "" }, "--job-name"},
		{"no image", func(s *ProcessingJobRequest) { s.Image = "" }, "--image is required"},
		{"image too long", func(s *ProcessingJobRequest) { s.Image = long(256) }, "--image is 256 characters"},
		{"no role", func(s *ProcessingJobRequest) { s.Role = "" }, "--role is required"},
		{"role is a user", func(s *ProcessingJobRequest) { s.Role = "arn:aws:iam::123456789012:user/me" }, "not an IAM role ARN"},
		{"role short account", func(s *ProcessingJobRequest) { s.Role = "arn:aws:iam::1234:role/R" }, "not an IAM role ARN"},
		{"role in China", func(s *ProcessingJobRequest) { s.Role = "arn:aws-cn:iam::123456789012:role/service-role/R" }, ""},
		{"no instances", func(s *ProcessingJobRequest) { s.InstanceCount = 0 }, "--instance-count 0"},
		{"101 instances", func(s *ProcessingJobRequest) { s.InstanceCount = 101 }, "--instance-count 101"},
		{"100 instances", func(s *ProcessingJobRequest) { s.InstanceCount = 100 }, ""},
		{"instance type", func(s *ProcessingJobRequest) { s.InstanceType = "m5.large" }, `--instance-type "m5.large"`},
		{"instance type unknown", func(s *ProcessingJobRequest) { s.InstanceType = "ml.m5.huge" }, `--instance-type "ml.m5.huge"`},
		{"volume 0", func(s *ProcessingJobRequest) { s.VolumeSizeGB = 0 }, "--volume-size-gb 0"},
		{"volume too big", func(s *ProcessingJobRequest) { s.VolumeSizeGB = 16385 }, "--volume-size-gb 16385"},
		{"runtime 0", func(s *ProcessingJobRequest) { s.MaxRuntime = 0 }, "--max-runtime"},
		{"runtime fraction", func(s *ProcessingJobRequest) { s.MaxRuntime = 1500 * time.Millisecond }, "--max-runtime"},
		{"runtime too long", func(s *ProcessingJobRequest) { s.MaxRuntime = 777601 * time.Second }, "--max-runtime"},
		{"runtime 9 days", func(s *ProcessingJobRequest) { s.MaxRuntime = 777600 * time.Second }, ""},
		{"101 arguments", func(s *ProcessingJobRequest) { s.Args = many(101, func(int) string { return "x" }) }, "101 job arguments"},
		{"100 arguments of 256", func(s *ProcessingJobRequest) { s.Args = many(100, func(int) string { return long(256) }) }, ""},
		{"argument of 257", func(s *ProcessingJobRequest) { s.Args = []string{"--input", long(257)} }, "job argument 2"},
		{"argument of 256 runes", func(s *ProcessingJobRequest) { s.Args = []string{strings.Repeat("é", 256)} }, ""},
		{"101 env entries", func(s *ProcessingJobRequest) {
			s.Env = many(101, func(i int) string { return fmt.Sprintf("K%d=v", i) })
		}, "101 --env entries"},
		{"100 env entries", func(s *ProcessingJobRequest) {
			s.Env = many(100, func(i int) string { return fmt.Sprintf("K%d=v", i) })
		}, ""},
		{"env without =", func(s *ProcessingJobRequest) { s.Env = []string{"SHARDPREP_LOG"} }, "want KEY=VALUE"},
		{"env key starts with digit", func(s *ProcessingJobRequest) { s.Env = []string{"1A=x"} }, "[a-zA-Z_][a-zA-Z0-9_]*"},
		{"env key with hyphen", func(s *ProcessingJobRequest) { s.Env = []string{"A-B=x"} }, "[a-zA-Z_][a-zA-Z0-9_]*"},
		{"env empty key", func(s *ProcessingJobRequest) { s.Env = []string{"=x"} }, "[a-zA-Z_][a-zA-Z0-9_]*"},
		{"env key of 257", func(s *ProcessingJobRequest) { s.Env = []string{long(257) + "=x"} }, "257 characters"},
		{"env value of 257", func(s *ProcessingJobRequest) { s.Env = []string{"A=" + long(257)} }, "--env A: the value is 257 characters"},
		{"env value of 256 with =", func(s *ProcessingJobRequest) { s.Env = []string{"A=" + long(254) + "=b"} }, ""},
		{"env empty value", func(s *ProcessingJobRequest) { s.Env = []string{"A="} }, ""},
		{"env twice", func(s *ProcessingJobRequest) { s.Env = []string{"A=1", "A=2"} }, "--env A is given twice"},
		{"subnets alone", func(s *ProcessingJobRequest) { s.SecurityGroups = nil }, "go together"},
		{"groups alone", func(s *ProcessingJobRequest) { s.Subnets = nil }, "go together"},
		{"no network", func(s *ProcessingJobRequest) { s.Subnets, s.SecurityGroups = nil, nil }, ""},
		{"17 subnets", func(s *ProcessingJobRequest) {
			s.Subnets = many(17, func(i int) string { return fmt.Sprintf("subnet-%d", i) })
		}, "--subnets lists 17"},
		{"6 groups", func(s *ProcessingJobRequest) {
			s.SecurityGroups = many(6, func(i int) string { return fmt.Sprintf("sg-%d", i) })
		}, "--security-groups lists 6"},
		{"bad subnet", func(s *ProcessingJobRequest) { s.Subnets = []string{"subnet_1"} }, `"subnet_1" is not a VPC resource ID`},
		{"long group", func(s *ProcessingJobRequest) { s.SecurityGroups = []string{"sg-" + long(30)} }, "is not a VPC resource ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := twoHostRequest()
			tc.edit(&r)
			err := r.Validate(requestInstanceTypes)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid request refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q", err, tc.want)
			}
		})
	}
}

func TestProcessingJobRequestNoInstanceTypes(t *testing.T) {
	r := twoHostRequest()
	if err := r.Validate(nil); err == nil || !strings.Contains(err.Error(), `--instance-type "ml.m5.xlarge"`) {
		t.Errorf("with no known instance types: %v", err)
	}
}

func TestProcessingJobRequestEnvironment(t *testing.T) {
	r := twoHostRequest()
	if got, want := r.Environment(), map[string]string{"SHARDPREP_LOG": "debug", "GOMAXPROCS": "4"}; !maps.Equal(got, want) {
		t.Errorf("Environment() = %v, want %v", got, want)
	}
	r.Env = []string{"A=x=y", "B="}
	if got, want := r.Environment(), map[string]string{"A": "x=y", "B": ""}; !maps.Equal(got, want) {
		t.Errorf("Environment() = %v, want %v", got, want)
	}
	r.Env = nil
	if got := r.Environment(); got != nil {
		t.Errorf("no --env: Environment() = %v, want nil", got)
	}
}

func TestSpellDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90 * time.Minute:        "1h30m0s",
		24 * time.Hour:          "1d",
		9 * 24 * time.Hour:      "9d",
		36 * time.Hour:          "1d12h0m0s",
		9*24*time.Hour + 1e9:    "9d1s",
		1500 * time.Millisecond: "1.5s",
	} {
		if got := spellDuration(d); got != want {
			t.Errorf("spellDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
