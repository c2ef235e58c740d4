package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/shardprep/shardprep/container"
)

// submitBuildRequest checks r against the CreateProcessingJob limits and
// returns the SDK's request. Errors are one line and name the flag at fault.
func submitBuildRequest(r container.ProcessingJobRequest) (*sagemaker.CreateProcessingJobInput, error) {
	if err := r.Validate(submitInstanceTypes()); err != nil {
		return nil, submitUsagef("%v", err)
	}
	in := &sagemaker.CreateProcessingJobInput{
		ProcessingJobName: aws.String(r.JobName),
		RoleArn:           aws.String(r.Role),
		AppSpecification:  &types.AppSpecification{ImageUri: aws.String(r.Image)},
		ProcessingResources: &types.ProcessingResources{ClusterConfig: &types.ProcessingClusterConfig{
			InstanceCount:  aws.Int32(int32(r.InstanceCount)),
			InstanceType:   types.ProcessingInstanceType(r.InstanceType),
			VolumeSizeInGB: aws.Int32(int32(r.VolumeSizeGB)),
			VolumeKmsKeyId: submitOptional(r.VolumeKMSKey),
		}},
		StoppingCondition: &types.ProcessingStoppingCondition{
			MaxRuntimeInSeconds: aws.Int32(int32(r.MaxRuntime / time.Second)),
		},
		Environment:   r.Environment(),
		NetworkConfig: submitNetwork(r),
	}
	if len(r.Args) > 0 { // the API wants at least one item when the list is present
		in.AppSpecification.ContainerArguments = slices.Clone(r.Args)
	}
	for _, kv := range r.Tags {
		k, v, _ := strings.Cut(kv, "=")
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	submitChannels(r, in)
	return in, nil
}

// submitNetwork is the request's NetworkConfig, nil when it asks for
// nothing.
func submitNetwork(r container.ProcessingJobRequest) *types.NetworkConfig {
	if len(r.Subnets) == 0 && !r.NetworkIsolation && !r.InterContainerEncryption {
		return nil
	}
	nc := &types.NetworkConfig{}
	if r.NetworkIsolation {
		nc.EnableNetworkIsolation = aws.Bool(true)
	}
	if r.InterContainerEncryption {
		nc.EnableInterContainerTrafficEncryption = aws.Bool(true)
	}
	if len(r.Subnets) > 0 { // Validate saw security groups too
		nc.VpcConfig = &types.VpcConfig{
			Subnets:          slices.Clone(r.Subnets),
			SecurityGroupIds: slices.Clone(r.SecurityGroups),
		}
	}
	return nc
}

// submitChannels adds the request's ProcessingInputs (S3 prefixes copied
// to every instance before the job starts) and ProcessingOutputs (uploaded
// when it ends) to in.
func submitChannels(r container.ProcessingJobRequest, in *sagemaker.CreateProcessingJobInput) {
	for _, c := range r.InputChannels() {
		in.ProcessingInputs = append(in.ProcessingInputs, types.ProcessingInput{InputName: aws.String(c.Name),
			S3Input: &types.ProcessingS3Input{S3Uri: aws.String(c.S3URI), LocalPath: aws.String(c.LocalPath),
				S3DataType: types.ProcessingS3DataTypeS3Prefix, S3InputMode: types.ProcessingS3InputModeFile,
				S3DataDistributionType: types.ProcessingS3DataDistributionTypeFullyreplicated}})
	}
	outs := r.OutputChannels()
	if len(outs) == 0 {
		return
	}
	in.ProcessingOutputConfig = &types.ProcessingOutputConfig{KmsKeyId: submitOptional(r.OutputKMSKey)}
	for _, c := range outs {
		in.ProcessingOutputConfig.Outputs = append(in.ProcessingOutputConfig.Outputs, types.ProcessingOutput{OutputName: aws.String(c.Name),
			S3Output: &types.ProcessingS3Output{S3Uri: aws.String(c.S3URI), LocalPath: aws.String(c.LocalPath),
				S3UploadMode: types.ProcessingS3UploadModeEndOfJob}})
	}
}

// submitOptional is nil for "", else a pointer to s.
func submitOptional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// submitCheckJob parses the job arguments of r as the container will on
// the job's first instance (parseContainerJob, on the job that r
// describes), so that what the container would refuse is refused before
// the job starts and bills.
func submitCheckJob(r container.ProcessingJobRequest) error {
	sm := r.Job()
	env := func(k string) string { return sm.Environment[k] }
	if _, err := parseContainerJob(sm, container.RootFromArgs(r.Args), r.Args, env, io.Discard); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return submitUsagef("job arguments: -h asks the container for its help; see shardprep container -h")
		}
		return submitUsagef("job arguments after --: %v", err)
	}
	return nil
}

// submitInstanceTypes lists the Processing instance types the SDK knows.
func submitInstanceTypes() []string {
	var names []string
	for _, t := range types.ProcessingInstanceType("").Values() {
		names = append(names, string(t))
	}
	return names
}

// submitUsagef is usagef with the command's name in front.
func submitUsagef(format string, args ...any) error {
	return usagef("submit: "+format, args...)
}

// submitFlags are the command line of "shardprep submit".
type submitFlags struct {
	req          container.ProcessingJobRequest
	subnets      string
	groups       string
	env          stringList
	tags         stringList
	inputs       stringList
	outputs      stringList
	wait         bool
	pollInterval time.Duration
	dryRun       bool
	region       string
	endpoint     string
}

func submitParseFlags(args []string, now time.Time, stderr io.Writer) (*submitFlags, error) {
	f := &submitFlags{}
	fs := newFlagSet("submit", submitUsage, stderr)
	fs.StringVar(&f.req.JobName, "job-name", "", "processing job `name`, unique in the account and region (default shardprep-<UTC time>)")
	fs.StringVar(&f.req.Image, "image", "", "shardprep image `URI` in ECR (required)")
	fs.StringVar(&f.req.Role, "role", "", "execution role `ARN` the instances run as (required)")
	fs.IntVar(&f.req.InstanceCount, "instance-count", 1, "number of instances; the first coordinates")
	fs.StringVar(&f.req.InstanceType, "instance-type", "ml.m5.large", "instance `type`")
	fs.IntVar(&f.req.VolumeSizeGB, "volume-size-gb", 30, "storage volume per instance, in `GB`")
	f.req.MaxRuntime = time.Hour
	fs.Var((*days)(&f.req.MaxRuntime), "max-runtime", "SageMaker stops the job after this `duration` (90m, 12h, 9d)")
	fs.StringVar(&f.subnets, "subnets", "", "comma-separated subnet `IDs` to run in (with --security-groups)")
	fs.StringVar(&f.groups, "security-groups", "", "comma-separated security group `IDs` (with --subnets)")
	fs.Var(&f.env, "env", "environment variable `KEY=VALUE` for the containers (repeatable)")
	fs.Var(&f.tags, "tags", "job tags, comma-separated `KEY=VALUE` pairs (repeatable)")
	fs.StringVar(&f.req.VolumeKMSKey, "volume-kms-key", "", "KMS `key` (id, alias or ARN) that encrypts the instances' storage volumes")
	fs.StringVar(&f.req.OutputKMSKey, "output-kms-key", "", "KMS `key` that encrypts what SageMaker uploads from the --processing-output folders")
	fs.BoolVar(&f.req.NetworkIsolation, "network-isolation", false, "run the containers without network access (S3 only through --processing-input/--processing-output)")
	fs.BoolVar(&f.req.InterContainerEncryption, "inter-container-encryption", false, "encrypt the traffic between the instances (EnableInterContainerTrafficEncryption)")
	fs.Var(&f.inputs, "processing-input", "`NAME=S3URI` ProcessingInput: SageMaker copies the prefix to /opt/ml/processing/input/NAME on every instance (repeatable)")
	fs.Var(&f.outputs, "processing-output", "`NAME=S3URI` ProcessingOutput: SageMaker uploads /opt/ml/processing/output/NAME there when the job ends (repeatable; outputs named like the splits each get their split)")
	fs.BoolVar(&f.wait, "wait", false, "wait for the job to end, printing status changes and, where allowed, its CloudWatch log lines; fail unless it Completed")
	fs.DurationVar(&f.pollInterval, "poll-interval", 30*time.Second, "with --wait, time between status checks")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the CreateProcessingJob request as JSON (as aws sagemaker create-processing-job --cli-input-json takes it) and exit without calling AWS")
	fs.StringVar(&f.region, "region", "", "AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's)")
	fs.StringVar(&f.endpoint, "endpoint-url", "", "SageMaker API endpoint `URL` (default: $AWS_ENDPOINT_URL_SAGEMAKER, $AWS_ENDPOINT_URL, AWS)")

	flagArgs, jobArgs := args, []string(nil)
	if i := slices.Index(args, "--"); i >= 0 {
		flagArgs, jobArgs = args[:i], args[i+1:]
	}
	if err := parseFlagSet(fs, flagArgs); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, submitUsagef("unexpected argument %q; job arguments go after --", fs.Arg(0))
	}
	if f.pollInterval <= 0 {
		return nil, submitUsagef("--poll-interval %s: must be positive", f.pollInterval)
	}
	if f.req.JobName == "" {
		now = now.UTC()
		f.req.JobName = now.Format("shardprep-20060102-150405") + fmt.Sprintf("-%03d", now.Nanosecond()/1e6)
	}
	f.req.Args = jobArgs
	f.req.Env = f.env
	for _, t := range f.tags {
		f.req.Tags = append(f.req.Tags, submitSplitList(t)...)
	}
	f.req.Inputs, f.req.Outputs = f.inputs, f.outputs
	f.req.Subnets = submitSplitList(f.subnets)
	f.req.SecurityGroups = submitSplitList(f.groups)
	return f, nil
}

func submitSplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// runSubmit is "shardprep submit": it creates a SageMaker Processing job
// running the shardprep image and, with --wait, follows it to its end.
func runSubmit(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	f, err := submitParseFlags(args, time.Now(), stderr)
	if err != nil {
		return err
	}
	in, err := submitBuildRequest(f.req)
	if err != nil {
		return err
	}
	if err := submitCheckJob(f.req); err != nil {
		return err
	}
	if f.dryRun {
		body, err := submitRequestJSON(ctx, in)
		if err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", body)
		return err
	}

	cfg, err := submitConfig(ctx, f, env)
	if err != nil {
		return err
	}
	client := sagemaker.NewFromConfig(cfg, func(o *sagemaker.Options) {
		if ep := submitEndpoint(env, f.endpoint, "AWS_ENDPOINT_URL_SAGEMAKER"); ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	})
	out, err := client.CreateProcessingJob(ctx, in)
	if err != nil {
		return fmt.Errorf("submit: creating processing job %s in %s: %w", f.req.JobName, cfg.Region, err)
	}
	arn := aws.ToString(out.ProcessingJobArn)
	fmt.Fprintf(stdout, "created processing job %s\n", f.req.JobName)
	fmt.Fprintf(stdout, "  arn:     %s\n", arn)
	if u := container.ConsoleURL(arn); u != "" {
		fmt.Fprintf(stdout, "  console: %s\n", u)
	}
	fmt.Fprintf(stdout, "  logs:    CloudWatch log group %s, streams %s/algo-*\n", submitLogGroup, f.req.JobName)
	if !f.wait {
		return nil
	}
	logs := newSubmitLogs(cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) {
		if ep := submitEndpoint(env, "", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"); ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	}), f.req.JobName, stdout)
	return submitWait(ctx, client, logs, f.pollInterval, stdout)
}

// submitEndpoint is the endpoint URL given, else the first of the
// service's variable and AWS_ENDPOINT_URL that env sets; "" for AWS's.
func submitEndpoint(env func(string) string, given, serviceVar string) string {
	for _, k := range []string{serviceVar, "AWS_ENDPOINT_URL"} {
		if given == "" {
			given = env(k)
		}
	}
	return given
}

// submitConfig loads the SDK's default chain, with the region and static
// credentials that env (and the flags) name, and checks that it has a
// region and usable credentials.
func submitConfig(ctx context.Context, f *submitFlags, env func(string) string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	region := f.region
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if region == "" {
			region = env(k)
		}
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if p := env("AWS_PROFILE"); p != "" {
		opts = append(opts, config.WithSharedConfigProfile(p))
	}
	if id, secret := env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(id, secret, env("AWS_SESSION_TOKEN"))))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("submit: loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return cfg, submitUsagef("no AWS region: pass --region or set AWS_REGION")
	}
	if cfg.Credentials == nil {
		return cfg, errors.New("submit: no AWS credential source configured")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return cfg, fmt.Errorf("submit: no usable AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): %w", err)
	}
	return cfg, nil
}

// submitWait polls DescribeProcessingJob until the job ends, printing each
// status change and the log lines that logs finds. It fails unless the job
// Completed.
func submitWait(ctx context.Context, client *sagemaker.Client, logs *submitLogs, every time.Duration, stdout io.Writer) error {
	name := logs.job
	var last types.ProcessingJobStatus
	poll := container.Backoff{First: every, Max: every, Timeout: math.MaxInt64}
	err := container.Retry(ctx, poll, func() (bool, error) {
		d, err := client.DescribeProcessingJob(ctx, &sagemaker.DescribeProcessingJobInput{ProcessingJobName: aws.String(name)})
		if err != nil {
			if ctx.Err() != nil {
				return false, err // Retry reports the stop
			}
			return true, fmt.Errorf("submit: waiting for processing job %s: %w", name, err)
		}
		status := d.ProcessingJobStatus
		if status != last {
			fmt.Fprintf(stdout, "status: %s\n", status)
			last = status
		}
		logs.follow(ctx)
		switch status {
		case types.ProcessingJobStatusCompleted:
			return true, nil
		case types.ProcessingJobStatusFailed, types.ProcessingJobStatusStopped:
			return true, submitFailed(d, name, stdout)
		}
		return false, fmt.Errorf("processing job %s is %s", name, status)
	})
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return submitStopped(ctx, name)
	}
	return err
}

// submitFailed prints why the job name, described by d, ended Failed or
// Stopped and returns the command's error.
func submitFailed(d *sagemaker.DescribeProcessingJobOutput, name string, stdout io.Writer) error {
	reason := aws.ToString(d.FailureReason)
	if reason == "" {
		reason = "no failure reason given"
	}
	fmt.Fprintf(stdout, "failure reason: %s\n", reason)
	if m := aws.ToString(d.ExitMessage); m != "" {
		fmt.Fprintf(stdout, "exit message: %s\n", m)
	}
	return fmt.Errorf("submit: processing job %s ended %s: %s", name, d.ProcessingJobStatus, reason)
}

func submitStopped(ctx context.Context, name string) error {
	return fmt.Errorf("submit: stopped waiting; processing job %s keeps running (stop it with: aws sagemaker stop-processing-job --processing-job-name %s): %w",
		name, name, ctx.Err())
}

// errSubmitCaptured ends a CreateProcessingJob call once its body is built.
var errSubmitCaptured = errors.New("request body captured")

// submitRequestJSON returns the JSON body the SDK would send for in, with
// object keys sorted and indented: the SDK serializes the request, and a
// middleware takes the body before it is signed or sent. No credentials or
// network are needed.
func submitRequestJSON(ctx context.Context, in *sagemaker.CreateProcessingJobInput) ([]byte, error) {
	var body []byte
	capture := middleware.BuildMiddlewareFunc("shardprepCaptureBody", func(ctx context.Context, bin middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
		req, ok := bin.Request.(*smithyhttp.Request)
		if !ok {
			return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("unexpected request type %T", bin.Request)
		}
		if s := req.GetStream(); s != nil {
			b, err := io.ReadAll(s)
			if err != nil {
				return middleware.BuildOutput{}, middleware.Metadata{}, err
			}
			body = b
		}
		return middleware.BuildOutput{}, middleware.Metadata{}, errSubmitCaptured
	})
	client := sagemaker.New(sagemaker.Options{Region: "us-east-1"})
	_, err := client.CreateProcessingJob(ctx, in, func(o *sagemaker.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Build.Add(capture, middleware.After)
		})
	})
	if !errors.Is(err, errSubmitCaptured) {
		if err == nil {
			err = errors.New("the request was not captured")
		}
		return nil, fmt.Errorf("serializing the request: %w", err)
	}
	return submitCanonicalJSON(body)
}

// submitCanonicalJSON re-encodes a JSON document indented, with object keys
// sorted, numbers as written.
func submitCanonicalJSON(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("request body is not JSON: %w", err)
	}
	return json.MarshalIndent(v, "", "  ")
}
