package container

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadOneHost(t *testing.T) {
	j, err := Load(os.DirFS("testdata/one-host"), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &Job{
		CurrentHost:   "algo-1",
		Hosts:         []string{"algo-1"},
		Coordinator:   "algo-1",
		IsCoordinator: true,
		JobName:       "abalone-prep-2026-01-02",
		JobARN:        "arn:aws:sagemaker:eu-west-1:123456789012:processing-job/abalone-prep-2026-01-02",
		Region:        "eu-west-1",
		Inputs: []Channel{
			{Name: "input-1", LocalPath: "/opt/ml/processing/input/data", S3URI: "s3://abalone-data/input/abalone/"},
		},
		Outputs: []Channel{
			{Name: "train", LocalPath: "/opt/ml/processing/output/train", S3URI: "s3://abalone-data/output/train"},
			{Name: "validation", LocalPath: "/opt/ml/processing/output/validation", S3URI: "s3://abalone-data/output/validation"},
		},
		Environment: map[string]string{},
		Arguments: []string{
			"--account_id", "123456789012",
			"--s3_input_bucket", "abalone-data",
			"--s3_input_key_prefix", "input/abalone",
			"--s3_output_bucket=abalone-data",
			"--s3_output_key_prefix=output/",
		},
	}
	if !reflect.DeepEqual(j, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", j, want)
	}
	if c, ok := j.Output("validation"); !ok || c.LocalPath != "/opt/ml/processing/output/validation" {
		t.Errorf("Output(validation) = %+v, %v", c, ok)
	}
	if _, ok := j.Input("code"); ok {
		t.Errorf("Input(code) found a channel the job does not have")
	}
}

func TestLoadTwoHosts(t *testing.T) {
	env := envOf(map[string]string{"AWS_REGION": "us-west-2"})
	for _, tc := range []struct {
		host        string
		coordinator bool
	}{{"algo-1", true}, {"algo-2", false}} {
		t.Run(tc.host, func(t *testing.T) {
			j, err := Load(os.DirFS("testdata/two-hosts/"+tc.host), env)
			if err != nil {
				t.Fatal(err)
			}
			if j.CurrentHost != tc.host || j.IsCoordinator != tc.coordinator || j.Coordinator != "algo-1" {
				t.Errorf("host %q coordinator %q is %v; want %q, algo-1, %v",
					j.CurrentHost, j.Coordinator, j.IsCoordinator, tc.host, tc.coordinator)
			}
			if !reflect.DeepEqual(j.Hosts, []string{"algo-1", "algo-2"}) {
				t.Errorf("Hosts = %q", j.Hosts)
			}
			// The environment wins over the ARN.
			if j.Region != "us-west-2" {
				t.Errorf("Region = %q, want us-west-2 from AWS_REGION", j.Region)
			}
			wantIn := []Channel{
				{Name: "code", LocalPath: "/opt/ml/processing/input/code", S3URI: "s3://abalone-data/code/settings.json"},
				{Name: "athena", LocalPath: "/opt/ml/processing/input/athena"},
			}
			if !reflect.DeepEqual(j.Inputs, wantIn) {
				t.Errorf("Inputs = %+v\nwant %+v", j.Inputs, wantIn)
			}
			wantOut := []Channel{
				{Name: "manifest", LocalPath: "/opt/ml/processing/output/manifest", S3URI: "s3://abalone-data/output/manifest"},
				{Name: "features"},
			}
			if !reflect.DeepEqual(j.Outputs, wantOut) {
				t.Errorf("Outputs = %+v\nwant %+v", j.Outputs, wantOut)
			}
			if !reflect.DeepEqual(j.Environment, map[string]string{"SHARDPREP_LOG": "debug", "GOMAXPROCS": "4"}) {
				t.Errorf("Environment = %v", j.Environment)
			}
			if !reflect.DeepEqual(j.Arguments, []string{"--input", "s3://abalone-data/input/", "--output", "s3://abalone-data/output/", "--credentials", "grants"}) {
				t.Errorf("Arguments = %q", j.Arguments)
			}
		})
	}
}

const minimalJob = `{"ProcessingJobName": "j", "ProcessingJobArn": "arn:aws:sagemaker:ap-south-1:123456789012:processing-job/j"}`

func fakeTree(resource, job string) fstest.MapFS {
	m := fstest.MapFS{}
	if resource != "" {
		m[ResourceConfigPath] = &fstest.MapFile{Data: []byte(resource)}
	}
	if job != "" {
		m[JobConfigPath] = &fstest.MapFile{Data: []byte(job)}
	}
	return m
}

func TestLoadRegion(t *testing.T) {
	rc := `{"current_host":"algo-1","hosts":["algo-1"]}`
	for _, tc := range []struct {
		name, arn string
		env       map[string]string
		want      string
	}{
		{"from ARN", "arn:aws:sagemaker:ap-south-1:123456789012:processing-job/j", nil, "ap-south-1"},
		{"AWS_REGION wins", "arn:aws:sagemaker:ap-south-1:123456789012:processing-job/j", map[string]string{"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "us-east-2"}, "eu-north-1"},
		{"AWS_DEFAULT_REGION", "arn:aws-cn:sagemaker:cn-north-1:123456789012:processing-job/j", map[string]string{"AWS_DEFAULT_REGION": "us-east-2"}, "us-east-2"},
		{"China partition", "arn:aws-cn:sagemaker:cn-north-1:123456789012:processing-job/j", nil, "cn-north-1"},
		{"local run: no ARN", "j", nil, ""},
		{"no ARN at all", "", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jc := `{"ProcessingJobName":"j","ProcessingJobArn":"` + tc.arn + `"}`
			j, err := Load(fakeTree(rc, jc), envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if j.Region != tc.want {
				t.Errorf("Region = %q, want %q", j.Region, tc.want)
			}
		})
	}
	// A nil env is allowed.
	if j, err := Load(fakeTree(rc, minimalJob), nil); err != nil || j.Region != "ap-south-1" || j.Environment == nil || j.Inputs != nil {
		t.Errorf("Load with nil env = %+v, %v", j, err)
	}
}

func TestLoadErrors(t *testing.T) {
	rc := `{"current_host":"algo-1","hosts":["algo-1","algo-2"]}`
	for _, tc := range []struct {
		name     string
		fsys     fs.FS
		wantErr  []string // substrings, all required
		notExist bool
	}{
		{"empty tree", fstest.MapFS{}, []string{"read opt/ml/config/resourceconfig.json"}, true},
		{"no job config", fakeTree(rc, ""), []string{"read opt/ml/config/processingjobconfig.json"}, true},
		{"resource config bad JSON", fakeTree("{\n  \"current_host\": \"algo-1\",\n  \"hosts\": [\"algo-1\",]\n}", minimalJob),
			[]string{"resourceconfig.json:3:", "invalid JSON"}, false},
		{"job config bad JSON", fakeTree(rc, `{"ProcessingJobName": "j"`), []string{"processingjobconfig.json:1:", "invalid JSON"}, false},
		{"job config trailing data", fakeTree(rc, minimalJob+"}"), []string{"processingjobconfig.json", "invalid JSON"}, false},
		{"resource config is a list", fakeTree(`["algo-1"]`, minimalJob), []string{"resourceconfig.json: the file holds a JSON array, not an object"}, false},
		{"hosts wrong type", fakeTree(`{"current_host":"algo-1","hosts":"algo-1"}`, minimalJob), []string{"resourceconfig.json: field hosts", "string"}, false},
		{"no current_host", fakeTree(`{"hosts":["algo-1"]}`, minimalJob), []string{"resourceconfig.json", "current_host is missing"}, false},
		{"empty current_host", fakeTree(`{"current_host":"","hosts":["algo-1"]}`, minimalJob), []string{"current_host is empty"}, false},
		{"no hosts", fakeTree(`{"current_host":"algo-1"}`, minimalJob), []string{"resourceconfig.json", "field hosts is missing"}, false},
		{"current host not listed", fakeTree(`{"current_host":"algo-3","hosts":["algo-1","algo-2"]}`, minimalJob), []string{`current_host "algo-3" is not in hosts`}, false},
		{"duplicate host", fakeTree(`{"current_host":"algo-1","hosts":["algo-1","algo-1"]}`, minimalJob), []string{"hosts[1]", "twice"}, false},
		{"no job name", fakeTree(rc, `{"ProcessingJobArn":"x"}`), []string{"processingjobconfig.json", "ProcessingJobName is missing"}, false},
		{"malformed ARN", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingJobArn":"arn:aws:sagemaker"}`), []string{"ProcessingJobArn", "not an ARN"}, false},
		{"input without name", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingInputs":[{"S3Input":{"S3Uri":"s3://b/k","LocalPath":"/opt/ml/processing/in"}}]}`),
			[]string{"ProcessingInputs[0].InputName is missing"}, false},
		{"input outside /opt/ml/processing", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingInputs":[{"InputName":"a","S3Input":{"S3Uri":"s3://b/k","LocalPath":"/tmp/in"}}]}`),
			[]string{"processingjobconfig.json", "ProcessingInputs[0].S3Input.LocalPath", `"/tmp/in"`}, false},
		{"input escaping with ..", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingInputs":[{"InputName":"a","S3Input":{"S3Uri":"s3://b/k","LocalPath":"/opt/ml/processing/../config"}}]}`),
			[]string{"ProcessingInputs[0].S3Input.LocalPath"}, false},
		{"input at the processing root", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingInputs":[{"InputName":"a","S3Input":{"S3Uri":"s3://b/k","LocalPath":"/opt/ml/processing"}}]}`),
			[]string{"ProcessingInputs[0].S3Input.LocalPath"}, false},
		{"input without S3Uri", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingInputs":[{"InputName":"a","S3Input":{"LocalPath":"/opt/ml/processing/a"}}]}`),
			[]string{"ProcessingInputs[0].S3Input.S3Uri is missing"}, false},
		{"input without source", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingInputs":[{"InputName":"a"}]}`),
			[]string{"ProcessingInputs[0]", "neither S3Input nor DatasetDefinition"}, false},
		{"dataset without local path", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingInputs":[{"InputName":"a","DatasetDefinition":{}}]}`),
			[]string{"ProcessingInputs[0].DatasetDefinition.LocalPath: missing"}, false},
		{"duplicate input", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingInputs":[
			{"InputName":"a","S3Input":{"S3Uri":"s3://b/k","LocalPath":"/opt/ml/processing/a"}},
			{"InputName":"a","S3Input":{"S3Uri":"s3://b/k","LocalPath":"/opt/ml/processing/b"}}]}`),
			[]string{"ProcessingInputs[1].InputName", "twice"}, false},
		{"output outside /opt/ml/processing", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingOutputConfig":{"Outputs":[{"OutputName":"o","S3Output":{"S3Uri":"s3://b/o","LocalPath":"/opt/ml/output"}}]}}`),
			[]string{"ProcessingOutputConfig.Outputs[0].S3Output.LocalPath"}, false},
		{"output without name", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingOutputConfig":{"Outputs":[{"S3Output":{"S3Uri":"s3://b/o","LocalPath":"/opt/ml/processing/o"}}]}}`),
			[]string{"Outputs[0].OutputName is missing"}, false},
		{"output without target", fakeTree(rc, `{"ProcessingJobName":"j","ProcessingOutputConfig":{"Outputs":[{"OutputName":"o"}]}}`),
			[]string{"Outputs[0]", "neither S3Output nor FeatureStoreOutput"}, false},
		{"arguments wrong type", fakeTree(rc, `{"ProcessingJobName":"j","AppSpecification":{"ContainerArguments":"--input"}}`),
			[]string{"processingjobconfig.json: field AppSpecification.ContainerArguments"}, false},
		{"environment wrong type", fakeTree(rc, `{"ProcessingJobName":"j","Environment":{"A":1}}`),
			[]string{"processingjobconfig.json: field Environment"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := Load(tc.fsys, nil)
			if err == nil {
				t.Fatalf("Load = %+v, want an error", j)
			}
			t.Log(err)
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tc.notExist {
				t.Errorf("errors.Is(%v, fs.ErrNotExist) = %v, want %v", err, got, tc.notExist)
			}
		})
	}
}
