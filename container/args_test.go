package container

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestTranslateArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"seed script, space form",
			[]string{"--account_id", "123456789012", "--s3_input_bucket", "abalone-data", "--s3_input_key_prefix", "input/abalone",
				"--s3_output_bucket", "abalone-out", "--s3_output_key_prefix", "output/run-1"},
			[]string{"--account-id", "123456789012", "--input", "s3://abalone-data/input/abalone/", "--output", "s3://abalone-out/output/run-1/"}},
		{"equals form and slashes",
			[]string{"--s3_output_key_prefix=/out/", "--s3_output_bucket=b", "--s3_input_bucket=b", "--s3_input_key_prefix=in", "--account_id=000000000001"},
			[]string{"--account-id", "000000000001", "--input", "s3://b/in/", "--output", "s3://b/out/"}},
		{"bucket root",
			[]string{"--s3_input_bucket", "b", "--s3_output_bucket", "o", "--s3_output_key_prefix", "/"},
			[]string{"--input", "s3://b/", "--output", "s3://o/"}},
		{"others pass through in order",
			[]string{"--workers", "4", "--s3_input_bucket", "b", "-v", "--s3_input_key_prefix", "p", "--seed=7", "--output", "/tmp/out"},
			[]string{"--input", "s3://b/p/", "--workers", "4", "-v", "--seed=7", "--output", "/tmp/out"}},
		{"single dash",
			[]string{"-account_id", "123456789012", "-s3_input_bucket=b"},
			[]string{"--account-id", "123456789012", "--input", "s3://b/"}},
		{"nothing to translate",
			[]string{"--input", "s3://b/p/", "--credentials", "grants"},
			[]string{"--input", "s3://b/p/", "--credentials", "grants"}},
		{"after --",
			[]string{"--s3_input_bucket", "b", "--", "--s3_output_bucket", "x"},
			[]string{"--input", "s3://b/", "--", "--s3_output_bucket", "x"}},
		{"empty", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TranslateArgs(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("TranslateArgs(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTranslateArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"--s3_input_bucket"}, "--s3_input_bucket needs a value"},
		{[]string{"--account_id"}, "needs a value"},
		{[]string{"--s3_input_bucket", "a", "--s3_input_bucket=b"}, "--s3_input_bucket is given twice"},
		{[]string{"--s3_input_key_prefix", "p"}, "--s3_input_key_prefix is given without --s3_input_bucket"},
		{[]string{"--s3_output_key_prefix", "p"}, "--s3_output_key_prefix is given without --s3_output_bucket"},
		{[]string{"--s3_input_bucket", "s3://b"}, "is not a bucket name"},
		{[]string{"--s3_output_bucket="}, "is not a bucket name"},
		{[]string{"--account_id", "12345"}, "not a 12-digit AWS account id"},
		{[]string{"--account_id", "12345678901x"}, "not a 12-digit AWS account id"},
		{[]string{"--s3_input_bucket", "b", "--input", "s3://c/"}, "both --s3_input_bucket and --input"},
		{[]string{"--output=s3://c/", "--s3_output_bucket", "b"}, "both --s3_output_bucket and --output"},
		{[]string{"--account-id", "123456789012", "--account_id", "123456789012"}, "both --account_id and --account-id"},
	} {
		got, err := TranslateArgs(tc.in)
		if err == nil {
			t.Errorf("TranslateArgs(%q) = %q, want an error", tc.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TranslateArgs(%q) error %q, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

// TestPlatformPaths checks which paths are resolved under
// --sagemaker-root.
func TestPlatformPaths(t *testing.T) {
	for _, c := range []struct{ root, in, want string }{
		{"/", "/opt/ml/processing/input", "/opt/ml/processing/input"},
		{"/tmp/r", "/opt/ml/processing/input", "/tmp/r/opt/ml/processing/input"},
		{"/tmp/r", "/opt/ml/processing/input/spec.json", "/tmp/r/opt/ml/processing/input/spec.json"},
		{"/tmp/r", "/data/in.csv", "/data/in.csv"},
		{"/tmp/r", "/opt/mlx/in.csv", "/opt/mlx/in.csv"},
		{"/tmp/r", "s3://bucket/opt/ml/", "s3://bucket/opt/ml/"},
		{"/tmp/r", "", ""},
	} {
		if got := platformPath(c.root, c.in); got != c.want {
			t.Errorf("root %s: platformPath(%q) = %q, want %q", c.root, c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		args []string
		root string
		job  bool
	}{
		{[]string{"--sagemaker-root", "/r", "--cluster-port", "1"}, "/r", false},
		{[]string{"-sagemaker-root=/r", "--host-address=a=b"}, "/r", false},
		{[]string{"--sagemaker-root", "/r", "--seed", "1"}, "/r", true},
		{[]string{"--s3_input_bucket", "b"}, "/", true},
		{[]string{"--input", "x", "--", "--sagemaker-root", "/r"}, "/", true},
		{nil, "/", false},
	} {
		if got := RootFromArgs(c.args); got != c.root {
			t.Errorf("RootFromArgs(%q) = %q, want %q", c.args, got, c.root)
		}
		if got := HasJobArgs(c.args); got != c.job {
			t.Errorf("HasJobArgs(%q) = %t, want %t", c.args, got, c.job)
		}
	}
}

func TestHostLookup(t *testing.T) {
	lookup, err := HostLookup([]string{"algo-1=127.0.0.1", "algo-2=10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := lookup(context.Background(), "algo-2"); err != nil || !reflect.DeepEqual(got, []string{"10.0.0.2"}) {
		t.Errorf("lookup(algo-2) = %q, %v; want [10.0.0.2]", got, err)
	}
	if got, err := lookup(context.Background(), "localhost"); err != nil || len(got) == 0 {
		t.Errorf("lookup(localhost) = %q, %v; want the resolver's addresses", got, err)
	}
	for _, bad := range []string{"algo-1", "=10.0.0.1", "algo-1="} {
		if _, err := HostLookup([]string{bad}); err == nil || !strings.Contains(err.Error(), "want NAME=ADDR") {
			t.Errorf("HostLookup(%q): error %v, want one saying NAME=ADDR", bad, err)
		}
	}
}

func TestComplete(t *testing.T) {
	job := &Job{JobName: "abalone-1", Region: "eu-west-1",
		Inputs:  []Channel{{Name: "athena"}, {Name: "in", LocalPath: "/opt/ml/processing/input"}},
		Outputs: []Channel{{Name: "fs"}, {Name: "out", LocalPath: "/opt/ml/processing/output"}}}

	s := RunSettings{AccountID: "123456789012", Credentials: "default", Spec: "/opt/ml/processing/spec/spec.json", Model: "/m.json"}
	if err := job.Complete("/tmp/r", &s); err != nil {
		t.Fatal(err)
	}
	want := RunSettings{Inputs: []string{"/tmp/r/opt/ml/processing/input"}, Output: "/tmp/r/opt/ml/processing/output",
		JobName: "abalone-1", Region: "eu-west-1", Spec: "/tmp/r/opt/ml/processing/spec/spec.json", Model: "/m.json",
		AccountID: "123456789012", Credentials: "grants"}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Complete from the job:\n got %+v\nwant %+v", s, want)
	}

	given := RunSettings{Inputs: []string{"s3://b/in/", "/opt/ml/processing/extra"}, Output: "s3://b/out/", JobName: "mine",
		Region: "us-west-2", GrantsFile: "/opt/ml/processing/grants.json", AccountID: "123456789012", Credentials: "default", CredentialsGiven: true}
	s = given
	s.Inputs = append([]string(nil), given.Inputs...)
	if err := job.Complete("/", &s); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, given) {
		t.Errorf("Complete changed what the command line gave (root /):\n got %+v\nwant %+v", s, given)
	}

	if err := (&Job{}).Complete("/", &RunSettings{Inputs: []string{"in.csv"}}); err == nil || !strings.Contains(err.Error(), "no input or output") {
		t.Errorf("Complete without an output: %v", err)
	}
}

func TestSetHost(t *testing.T) {
	j := &Job{CurrentHost: "algo-1", Hosts: []string{"algo-1", "algo-2"}, Coordinator: "algo-1", IsCoordinator: true}
	if err := j.SetHost("algo-2"); err != nil || j.CurrentHost != "algo-2" || j.IsCoordinator {
		t.Errorf("SetHost(algo-2): %v; host %s, coordinator %t", err, j.CurrentHost, j.IsCoordinator)
	}
	if err := j.SetHost("algo-1"); err != nil || j.CurrentHost != "algo-1" || !j.IsCoordinator {
		t.Errorf("SetHost(algo-1): %v; host %s, coordinator %t", err, j.CurrentHost, j.IsCoordinator)
	}
	want := `--host "algo-3" is not one of the job's hosts ["algo-1" "algo-2"]`
	if err := j.SetHost("algo-3"); err == nil || err.Error() != want || j.CurrentHost != "algo-1" {
		t.Errorf("SetHost(algo-3): %v, host %s; want %s", err, j.CurrentHost, want)
	}
}
