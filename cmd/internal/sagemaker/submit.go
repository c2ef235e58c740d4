// Package sagemaker launches shardprep as a SageMaker Processing job
// through the AWS SDK and follows it. NewInput turns the request, which
// package container checks against the CreateProcessingJob limits, into
// the SDK's input; RequestJSON is the JSON body the SDK would send for it,
// with no credentials or network needed; Submit creates the job and, if
// asked, polls it to its end, printing its status changes and the lines
// of its CloudWatch log streams (/aws/sagemaker/ProcessingJobs).
//
// Errors are one line. A request the limits refuse, or a missing region,
// is a command-line error (cli.UsageError) naming the flag at fault.
package sagemaker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	sm "github.com/aws/aws-sdk-go-v2/service/sagemaker"
	"github.com/aws/aws-sdk-go-v2/service/sagemaker/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/container"
)

// NewInput checks r against the CreateProcessingJob limits and returns
// the SDK's request. Errors are one-line usage errors naming the flag at
// fault.
func NewInput(r container.ProcessingJobRequest) (*sm.CreateProcessingJobInput, error) {
	if err := r.Validate(instanceTypes()); err != nil {
		return nil, usagef("%v", err)
	}
	in := &sm.CreateProcessingJobInput{
		ProcessingJobName: aws.String(r.JobName),
		RoleArn:           aws.String(r.Role),
		AppSpecification:  &types.AppSpecification{ImageUri: aws.String(r.Image)},
		ProcessingResources: &types.ProcessingResources{ClusterConfig: &types.ProcessingClusterConfig{
			InstanceCount:  aws.Int32(int32(r.InstanceCount)),
			InstanceType:   types.ProcessingInstanceType(r.InstanceType),
			VolumeSizeInGB: aws.Int32(int32(r.VolumeSizeGB)),
			VolumeKmsKeyId: optional(r.VolumeKMSKey),
		}},
		StoppingCondition: &types.ProcessingStoppingCondition{
			MaxRuntimeInSeconds: aws.Int32(int32(r.MaxRuntime / time.Second)),
		},
		Environment:   r.Environment(),
		NetworkConfig: network(r),
	}
	if len(r.Args) > 0 { // the API wants at least one item when the list is present
		in.AppSpecification.ContainerArguments = slices.Clone(r.Args)
	}
	for _, kv := range r.Tags {
		k, v, _ := strings.Cut(kv, "=")
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	channels(r, in)
	return in, nil
}

// network is the request's NetworkConfig, nil when it asks for
// nothing.
func network(r container.ProcessingJobRequest) *types.NetworkConfig {
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

// channels adds the request's ProcessingInputs (S3 prefixes copied
// to every instance before the job starts) and ProcessingOutputs (uploaded
// when it ends) to in.
func channels(r container.ProcessingJobRequest, in *sm.CreateProcessingJobInput) {
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
	in.ProcessingOutputConfig = &types.ProcessingOutputConfig{KmsKeyId: optional(r.OutputKMSKey)}
	for _, c := range outs {
		in.ProcessingOutputConfig.Outputs = append(in.ProcessingOutputConfig.Outputs, types.ProcessingOutput{OutputName: aws.String(c.Name),
			S3Output: &types.ProcessingS3Output{S3Uri: aws.String(c.S3URI), LocalPath: aws.String(c.LocalPath),
				S3UploadMode: types.ProcessingS3UploadModeEndOfJob}})
	}
}

// optional is nil for "", else a pointer to s.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// instanceTypes lists the Processing instance types the SDK knows.
func instanceTypes() []string {
	var names []string
	for _, t := range types.ProcessingInstanceType("").Values() {
		names = append(names, string(t))
	}
	return names
}

// usagef is cli.Usagef with the command's name in front.
func usagef(format string, args ...any) error {
	return cli.Usagef("submit: "+format, args...)
}

// Options are the settings of Submit.
type Options struct {
	// Region is the AWS region; "": $AWS_REGION, $AWS_DEFAULT_REGION, the
	// profile's.
	Region string
	// Endpoint is the SageMaker API endpoint URL; "":
	// $AWS_ENDPOINT_URL_SAGEMAKER, $AWS_ENDPOINT_URL, AWS.
	Endpoint string
	// Wait follows the job to its end, every PollInterval, and fails unless
	// it Completed.
	Wait         bool
	PollInterval time.Duration
}

// Submit creates the processing job of in with the credentials of the
// SDK's default chain (static ones from env's AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY first) and prints where to find it and, with
// opts.Wait, its status changes and log lines to stdout.
func Submit(ctx context.Context, in *sm.CreateProcessingJobInput, opts *Options, env func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(ctx, opts.Region, env)
	if err != nil {
		return err
	}
	client := sm.NewFromConfig(cfg, func(o *sm.Options) {
		if ep := endpoint(env, opts.Endpoint, "AWS_ENDPOINT_URL_SAGEMAKER"); ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	})
	name := aws.ToString(in.ProcessingJobName)
	out, err := client.CreateProcessingJob(ctx, in)
	if err != nil {
		return fmt.Errorf("submit: creating processing job %s in %s: %w", name, cfg.Region, err)
	}
	arn := aws.ToString(out.ProcessingJobArn)
	fmt.Fprintf(stdout, "created processing job %s\n", name)
	fmt.Fprintf(stdout, "  arn:     %s\n", arn)
	if u := container.ConsoleURL(arn); u != "" {
		fmt.Fprintf(stdout, "  console: %s\n", u)
	}
	fmt.Fprintf(stdout, "  logs:    CloudWatch log group %s, streams %s/algo-*\n", logGroup, name)
	if !opts.Wait {
		return nil
	}
	logs := newLogFollower(cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) {
		if ep := endpoint(env, "", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"); ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	}), name, stdout)
	return wait(ctx, client, logs, opts.PollInterval, stdout)
}

// endpoint is the endpoint URL given, else the first of the
// service's variable and AWS_ENDPOINT_URL that env sets; "" for AWS's.
func endpoint(env func(string) string, given, serviceVar string) string {
	for _, k := range []string{serviceVar, "AWS_ENDPOINT_URL"} {
		if given == "" {
			given = env(k)
		}
	}
	return given
}

// loadConfig loads the SDK's default chain, with the region (region, else
// env's) and static credentials that env names, and checks that it has a
// region and usable credentials.
func loadConfig(ctx context.Context, region string, env func(string) string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
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
		return cfg, usagef("no AWS region: pass --region or set AWS_REGION")
	}
	if cfg.Credentials == nil {
		return cfg, errors.New("submit: no AWS credential source configured")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return cfg, fmt.Errorf("submit: no usable AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): %w", err)
	}
	return cfg, nil
}

// wait polls DescribeProcessingJob until the job ends, printing each
// status change and the log lines that logs finds. It fails unless the job
// Completed.
func wait(ctx context.Context, client *sm.Client, logs *logFollower, every time.Duration, stdout io.Writer) error {
	name := logs.job
	var last types.ProcessingJobStatus
	poll := container.Backoff{First: every, Max: every, Timeout: math.MaxInt64}
	err := container.Retry(ctx, poll, func() (bool, error) {
		d, err := client.DescribeProcessingJob(ctx, &sm.DescribeProcessingJobInput{ProcessingJobName: aws.String(name)})
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
			return true, failed(d, name, stdout)
		}
		return false, fmt.Errorf("processing job %s is %s", name, status)
	})
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return stopped(ctx, name)
	}
	return err
}

// failed prints why the job name, described by d, ended Failed or
// Stopped and returns the command's error.
func failed(d *sm.DescribeProcessingJobOutput, name string, stdout io.Writer) error {
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

func stopped(ctx context.Context, name string) error {
	return fmt.Errorf("submit: stopped waiting; processing job %s keeps running (stop it with: aws sagemaker stop-processing-job --processing-job-name %s): %w",
		name, name, ctx.Err())
}

// errCaptured ends a CreateProcessingJob call once its body is built.
var errCaptured = errors.New("request body captured")

// RequestJSON returns the JSON body the SDK would send for in, with
// object keys sorted and indented: the SDK serializes the request, and a
// middleware takes the body before it is signed or sent. No credentials or
// network are needed.
func RequestJSON(ctx context.Context, in *sm.CreateProcessingJobInput) ([]byte, error) {
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
		return middleware.BuildOutput{}, middleware.Metadata{}, errCaptured
	})
	client := sm.New(sm.Options{Region: "us-east-1"})
	_, err := client.CreateProcessingJob(ctx, in, func(o *sm.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Build.Add(capture, middleware.After)
		})
	})
	if !errors.Is(err, errCaptured) {
		if err == nil {
			err = errors.New("the request was not captured")
		}
		return nil, fmt.Errorf("serializing the request: %w", err)
	}
	return canonicalJSON(body)
}

// canonicalJSON re-encodes a JSON document indented, with object keys
// sorted, numbers as written.
func canonicalJSON(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("request body is not JSON: %w", err)
	}
	return json.MarshalIndent(v, "", "  ")
}
