package sagemaker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/container"
)

// submitGolden is the CreateProcessingJob body for submitTwoHostRequest
// (and the flags of "shardprep submit" that make it), keys sorted.
var submitGolden = func() string {
	b, err := os.ReadFile("testdata/two-host-request.json")
	if err != nil {
		panic(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}()

func submitTwoHostRequest() container.ProcessingJobRequest {
	return container.ProcessingJobRequest{
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

func TestSubmitGoldenRequest(t *testing.T) {
	in, err := NewInput(submitTwoHostRequest())
	if err != nil {
		t.Fatal(err)
	}
	got, err := RequestJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != submitGolden {
		t.Errorf("request JSON:\n%s\nwant:\n%s", got, submitGolden)
	}
}

// submitHermetic keeps the SDK's default chain away from this machine's AWS
// files, profile and instance metadata.
func submitHermetic(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE":                        filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(dir, "credentials"),
		"AWS_PROFILE":                            "",
		"AWS_REGION":                             "",
		"AWS_DEFAULT_REGION":                     "",
		"AWS_ACCESS_KEY_ID":                      "",
		"AWS_SECRET_ACCESS_KEY":                  "",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_ENDPOINT_URL":                       "",
		"AWS_ENDPOINT_URL_SAGEMAKER":             "",
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
	} {
		t.Setenv(k, v)
	}
}

// submitRun submits submitTwoHostRequest with opts and env.
func submitRun(ctx context.Context, env map[string]string, opts *Options) (stdout string, err error) {
	in, err := NewInput(submitTwoHostRequest())
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = Submit(ctx, in, opts, func(k string) string { return env[k] }, &out)
	return out.String(), err
}

// TestSubmitValidation tests what the command adds to the request's
// validation (container.ProcessingJobRequest.Validate, tested with every
// limit in package container): its refusals are one-line usage errors, the
// instance types it knows are the API's, and what it accepts serializes.
func TestSubmitValidation(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	many := func(n int, f func(i int) string) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = f(i)
		}
		return s
	}
	type request = container.ProcessingJobRequest
	for _, tc := range []struct {
		name string
		edit func(*request)
		want string // "" means valid
	}{
		{"valid", func(s *request) {}, ""},
		{"name of 63", func(s *request) { s.JobName = long(63) }, ""},
		{"name with double hyphen", func(s *request) { s.JobName = "a--b" }, ""},
		{"role in China", func(s *request) { s.Role = "arn:aws-cn:iam::123456789012:role/service-role/R" }, ""},
		{"100 instances", func(s *request) { s.InstanceCount = 100 }, ""},
		{"instance type of the SDK", func(s *request) { s.InstanceType = "ml.c5.2xlarge" }, ""},
		{"runtime 9 days", func(s *request) { s.MaxRuntime = 777600 * time.Second }, ""},
		{"100 arguments of 256", func(s *request) { s.Args = many(100, func(int) string { return long(256) }) }, ""},
		{"argument of 256 runes", func(s *request) { s.Args = []string{strings.Repeat("é", 256)} }, ""},
		{"100 env entries", func(s *request) { s.Env = many(100, func(i int) string { return fmt.Sprintf("K%d=v", i) }) }, ""},
		{"env value of 256 with =", func(s *request) { s.Env = []string{"A=" + long(254) + "=b"} }, ""},
		{"env empty value", func(s *request) { s.Env = []string{"A="} }, ""},
		{"no network", func(s *request) { s.Subnets, s.SecurityGroups = nil, nil }, ""},
		{"name too long", func(s *request) { s.JobName = long(64) }, "submit: --job-name"},
		{"no image", func(s *request) { s.Image = "" }, "submit: --image is required"},
		{"101 instances", func(s *request) { s.InstanceCount = 101 }, "submit: --instance-count 101"},
		{"instance type", func(s *request) { s.InstanceType = "m5.large" }, `submit: --instance-type "m5.large"`},
		{"runtime fraction", func(s *request) { s.MaxRuntime = 1500 * time.Millisecond }, "submit: --max-runtime"},
		{"101 arguments", func(s *request) { s.Args = many(101, func(int) string { return "x" }) }, "submit: 101 job arguments"},
		{"env twice", func(s *request) { s.Env = []string{"A=1", "A=2"} }, "submit: --env A is given twice"},
		{"subnets alone", func(s *request) { s.SecurityGroups = nil }, "go together"},
		{"cluster secret in env", func(s *request) { s.Env = []string{"SHARDPREP_CLUSTER_SECRET=0123456789abcdef0123"} }, "anyone allowed to describe the job"},
		{"tags", func(s *request) { s.Tags = []string{"team=ml", "cost-center=42", "empty="} }, ""},
		{"tag without value", func(s *request) { s.Tags = []string{"team"} }, `--tags "team": want KEY=VALUE`},
		{"reserved tag", func(s *request) { s.Tags = []string{"aws:x=1"} }, "reserved"},
		{"tag twice", func(s *request) { s.Tags = []string{"a=1", "a=2"} }, "--tags a is given twice"},
		{"51 tags", func(s *request) { s.Tags = many(51, func(i int) string { return fmt.Sprintf("k%d=v", i) }) }, "51 --tags"},
		{"kms keys", func(s *request) {
			s.VolumeKMSKey, s.OutputKMSKey = "alias/prep", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab"
			s.Outputs = []string{"prepared=s3://b/out/"}
		}, ""},
		{"bad kms key", func(s *request) { s.VolumeKMSKey = "key with spaces" }, "--volume-kms-key"},
		{"output kms key without outputs", func(s *request) { s.OutputKMSKey = "alias/prep" }, "give --processing-output"},
		{"channels", func(s *request) { s.Inputs, s.Outputs = []string{"data=s3://b/in/"}, []string{"train=s3://b/t/"} }, ""},
		{"channel not s3", func(s *request) { s.Inputs = []string{"data=/tmp/in"} }, "--processing-input"},
		{"channel name", func(s *request) { s.Outputs = []string{"../x=s3://b/o/"} }, "--processing-output"},
		{"channel twice", func(s *request) { s.Outputs = []string{"o=s3://b/1/", "o=s3://b/2/"} }, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := submitTwoHostRequest()
			tc.edit(&spec)
			in, err := NewInput(spec)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				// What passes here serializes.
				if _, err := RequestJSON(in); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q", err, tc.want)
			}
			var ue *cli.UsageError
			if !errors.As(err, &ue) {
				t.Errorf("error %v is not a usage error", err)
			}
		})
	}
}

func TestSubmitInstanceTypes(t *testing.T) {
	for _, it := range processingInstanceTypes {
		spec := submitTwoHostRequest()
		spec.InstanceType = it
		if _, err := NewInput(spec); err != nil {
			t.Errorf("the API's instance type %s: %v", it, err)
		}
	}
}

// fakeSageMaker speaks the SageMaker JSON protocol (awsJson1_1) for
// CreateProcessingJob and DescribeProcessingJob.
type fakeSageMaker struct {
	t        *testing.T
	mu       sync.Mutex
	created  []byte   // canonical body of the CreateProcessingJob call
	describe []string // DescribeProcessingJob answers, the last repeats
	describs int
	createFn func(w http.ResponseWriter) bool // answers instead, if set and returns true
	logs     func(w http.ResponseWriter, target string, body []byte)
}

func (f *fakeSageMaker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.t
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("reading request: %v", err)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		t.Errorf("%s %s, want POST /", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		t.Errorf("Content-Type %q", ct)
	}
	auth := r.Header.Get("Authorization")
	service := "sagemaker"
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "Logs_") {
		service = "logs"
	}
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDSHARDPREPTEST/") || !strings.Contains(auth, "/eu-west-1/"+service+"/aws4_request") {
		t.Errorf("request not signed for %s in eu-west-1: %q", service, auth)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch target := r.Header.Get("X-Amz-Target"); target {
	case "SageMaker.CreateProcessingJob":
		if f.createFn != nil && f.createFn(w) {
			return
		}
		c, err := canonicalJSON(body)
		if err != nil {
			t.Errorf("CreateProcessingJob body: %v", err)
		}
		f.created = c
		fmt.Fprint(w, `{"ProcessingJobArn":"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/abalone-prep-2"}`)
	case "Logs_20140328.DescribeLogStreams", "Logs_20140328.GetLogEvents":
		if f.logs == nil { // a job with no log streams yet
			fmt.Fprint(w, `{"logStreams":[]}`)
		} else {
			f.logs(w, target, body)
		}
	case "SageMaker.DescribeProcessingJob":
		var req struct{ ProcessingJobName string }
		if err := json.Unmarshal(body, &req); err != nil || req.ProcessingJobName != "abalone-prep-2" {
			t.Errorf("DescribeProcessingJob body %s", body)
		}
		ans := f.describe[min(f.describs, len(f.describe)-1)]
		f.describs++
		fmt.Fprint(w, ans)
	default:
		t.Errorf("unexpected X-Amz-Target %q", target)
		w.WriteHeader(http.StatusBadRequest)
	}
}

func describeAnswer(status, extra string) string {
	return `{"ProcessingJobName":"abalone-prep-2","ProcessingJobArn":"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/abalone-prep-2",` +
		`"ProcessingJobStatus":"` + status + `","CreationTime":1767312000.5` + extra + `}`
}

func submitWireEnv(url string) map[string]string {
	return map[string]string{
		"AWS_REGION":                       "eu-west-1",
		"AWS_ACCESS_KEY_ID":                "AKIDSHARDPREPTEST",
		"AWS_SECRET_ACCESS_KEY":            "secret",
		"AWS_ENDPOINT_URL_SAGEMAKER":       url,
		"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": url,
	}
}

// fakeLogs answers DescribeLogStreams with one stream per host and
// GetLogEvents with lines[host] on the first call, nothing after.
func fakeLogs(t *testing.T, lines map[string][]string) func(w http.ResponseWriter, target string, body []byte) {
	served := map[string]bool{}
	return func(w http.ResponseWriter, target string, body []byte) {
		var req struct {
			LogGroupName, LogStreamNamePrefix, LogStreamName, NextToken string
			StartFromHead                                               bool
		}
		if err := json.Unmarshal(body, &req); err != nil || req.LogGroupName != "/aws/sagemaker/ProcessingJobs" {
			t.Errorf("%s body %s", target, body)
		}
		if target == "Logs_20140328.DescribeLogStreams" {
			if req.LogStreamNamePrefix != "abalone-prep-2/" {
				t.Errorf("stream prefix %q", req.LogStreamNamePrefix)
			}
			var streams []string
			for host := range lines {
				streams = append(streams, fmt.Sprintf(`{"logStreamName":"abalone-prep-2/%s-1767312000"}`, host))
			}
			fmt.Fprintf(w, `{"logStreams":[%s]}`, strings.Join(streams, ","))
			return
		}
		host := strings.TrimSuffix(strings.TrimPrefix(req.LogStreamName, "abalone-prep-2/"), "-1767312000")
		var events []string
		if !served[host] {
			served[host] = true
			for i, l := range lines[host] {
				msg, _ := json.Marshal(l + "\n")
				events = append(events, fmt.Sprintf(`{"timestamp":%d,"message":%s}`, 1767312000000+i, msg))
			}
		}
		fmt.Fprintf(w, `{"events":[%s],"nextForwardToken":"f/%s/1","nextBackwardToken":"b/1"}`, strings.Join(events, ","), host)
	}
}

func TestSubmitWireCompleted(t *testing.T) {
	submitHermetic(t)
	fake := &fakeSageMaker{t: t, describe: []string{
		describeAnswer("InProgress", ""), describeAnswer("InProgress", ""), describeAnswer("Completed", ""),
	}, logs: fakeLogs(t, map[string][]string{"algo-1": {`{"level":"INFO","msg":"job committed"}`}})}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	out, err := submitRun(context.Background(), submitWireEnv(srv.URL), &Options{Wait: true, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if string(fake.created) != submitGolden {
		t.Errorf("wire request:\n%s\nwant:\n%s", fake.created, submitGolden)
	}
	want := `created processing job abalone-prep-2
  arn:     arn:aws:sagemaker:eu-west-1:123456789012:processing-job/abalone-prep-2
  console: https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/processing-jobs/abalone-prep-2
  logs:    CloudWatch log group /aws/sagemaker/ProcessingJobs, streams abalone-prep-2/algo-*
status: InProgress
algo-1: {"level":"INFO","msg":"job committed"}
status: Completed
`
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if fake.describs != 3 {
		t.Errorf("%d DescribeProcessingJob calls, want 3", fake.describs)
	}
}

// TestSubmitWireLogsDenied: a caller who may not read the job's logs
// gets its status changes and one line saying why there are no logs.
func TestSubmitWireLogsDenied(t *testing.T) {
	submitHermetic(t)
	fake := &fakeSageMaker{t: t, describe: []string{describeAnswer("InProgress", ""), describeAnswer("Completed", "")},
		logs: func(w http.ResponseWriter, target string, body []byte) {
			w.Header().Set("X-Amzn-Errortype", "AccessDeniedException")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"__type":"AccessDeniedException","message":"not authorized to perform logs:DescribeLogStreams"}`)
		}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	out, err := submitRun(context.Background(), submitWireEnv(srv.URL), &Options{Wait: true, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := "status: InProgress\nlogs: not shown (AccessDeniedException: not authorized to perform logs:DescribeLogStreams); the job's status only\nstatus: Completed\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("stdout:\n%s\nwant it to end:\n%s", out, want)
	}
}

func TestSubmitWireFailed(t *testing.T) {
	submitHermetic(t)
	fake := &fakeSageMaker{t: t, describe: []string{
		describeAnswer("InProgress", ""),
		describeAnswer("Failed", `,"FailureReason":"AlgorithmError: see job logs","ExitMessage":"abalone.csv line 7: column rings: \"x\" is not a number"`),
	}}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	out, err := submitRun(context.Background(), submitWireEnv(srv.URL), &Options{Wait: true, PollInterval: 5 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "ended Failed: AlgorithmError: see job logs") {
		t.Fatalf("error %v, want the failure reason", err)
	}
	for _, s := range []string{"status: Failed\n", "failure reason: AlgorithmError: see job logs\n", `exit message: abalone.csv line 7: column rings: "x" is not a number`} {
		if !strings.Contains(out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, out)
		}
	}
}

func TestSubmitWireRejected(t *testing.T) {
	submitHermetic(t)
	fake := &fakeSageMaker{t: t, createFn: func(w http.ResponseWriter) bool {
		w.Header().Set("X-Amzn-Errortype", "ResourceInUse")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"ResourceInUse","Message":"Job name must be unique within an AWS account and region"}`)
		return true
	}}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	out, err := submitRun(context.Background(), submitWireEnv(srv.URL), &Options{})
	if err == nil || !strings.Contains(err.Error(), "ResourceInUse") || !strings.Contains(err.Error(), "must be unique") {
		t.Fatalf("error %v, want the API error", err)
	}
	if out != "" {
		t.Errorf("a rejected job printed %q", out)
	}
}

func TestSubmitWaitInterrupted(t *testing.T) {
	submitHermetic(t)
	fake := &fakeSageMaker{t: t, describe: []string{describeAnswer("InProgress", "")}}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := submitRun(ctx, submitWireEnv(srv.URL), &Options{Wait: true, PollInterval: 20 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "keeps running") {
		t.Fatalf("error %v, want a stopped wait that says the job keeps running", err)
	}
}

func TestSubmitNoRegion(t *testing.T) {
	submitHermetic(t)
	env := submitWireEnv("http://127.0.0.1:1")
	delete(env, "AWS_REGION")
	_, err := submitRun(context.Background(), env, &Options{})
	var ue *cli.UsageError
	if err == nil || !strings.Contains(err.Error(), "no AWS region") || !errors.As(err, &ue) {
		t.Fatalf("error %v, want a usage error about the region", err)
	}
}

func TestSubmitNoCredentials(t *testing.T) {
	submitHermetic(t)
	fake := &fakeSageMaker{t: t}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	env := submitWireEnv(srv.URL)
	delete(env, "AWS_ACCESS_KEY_ID")
	delete(env, "AWS_SECRET_ACCESS_KEY")
	out, err := submitRun(context.Background(), env, &Options{})
	if err == nil || !strings.Contains(err.Error(), "no usable AWS credentials") {
		t.Fatalf("error %v, want one about credentials", err)
	}
	if out != "" || fake.created != nil {
		t.Errorf("without credentials a request was sent or a job reported: %q", out)
	}
}

// TestSubmitWireRetries: throttling and 5xx answers are tried again, as
// the SDK's standard retryer does, up to AWS_MAX_ATTEMPTS attempts in all;
// other errors are not.
func TestSubmitWireRetries(t *testing.T) {
	for _, tc := range []struct {
		name, attempts string
		status         int
		code           string
		failures       int // answers with the error before the job is created
		wantCalls      int
		wantErr        string
	}{
		{"throttled once", "", http.StatusBadRequest, "ThrottlingException", 1, 2, ""},
		{"unavailable", "2", http.StatusServiceUnavailable, "ServiceUnavailable", 5, 2, "exceeded maximum number of attempts, 2"},
		{"refused", "", http.StatusBadRequest, "ValidationException", 5, 1, "ValidationException: bad request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			submitHermetic(t)
			t.Setenv("AWS_MAX_ATTEMPTS", tc.attempts)
			calls := 0
			fake := &fakeSageMaker{t: t, createFn: func(w http.ResponseWriter) bool {
				calls++
				if calls > tc.failures {
					return false
				}
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, `{"__type":"com.amazon.coral.service#%s","message":"bad request"}`, tc.code)
				return true
			}}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			out, err := submitRun(context.Background(), submitWireEnv(srv.URL), &Options{})
			if calls != tc.wantCalls {
				t.Errorf("%d CreateProcessingJob calls, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == "" {
				if err != nil || !strings.HasPrefix(out, "created processing job abalone-prep-2\n") {
					t.Fatalf("error %v, stdout %q", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.code+": bad request") ||
				strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v: want one line with %q and the API error", err, tc.wantErr)
			}
		})
	}
}

// TestEndpoints: AWS's endpoints of each service in the region, unless
// the configuration names another.
func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		cfg   aws.Config
		svc   service
		given string
		want  string
	}{
		{aws.Config{Region: "eu-west-1"}, sageMakerAPI, "", "https://api.sagemaker.eu-west-1.amazonaws.com"},
		{aws.Config{Region: "eu-west-1"}, logsAPI, "", "https://logs.eu-west-1.amazonaws.com"},
		{aws.Config{Region: "cn-north-1"}, sageMakerAPI, "", "https://api.sagemaker.cn-north-1.amazonaws.com.cn"},
		{aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String("http://localhost:4566")}, logsAPI, "", "http://localhost:4566"},
		{aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String("http://localhost:4566")}, sageMakerAPI, "http://h:1", "http://h:1"},
	} {
		if got := newClient(tc.cfg, tc.svc, tc.given).endpoint; got != tc.want {
			t.Errorf("%s in %s: endpoint %s, want %s", tc.svc.title, tc.cfg.Region, got, tc.want)
		}
	}
}
