// Package sagemaker launches shardprep as a SageMaker Processing job
// and follows it, speaking the SageMaker and CloudWatch Logs JSON APIs
// itself (see jsonClient) with the credentials and region of the AWS SDK's
// default chain. NewInput turns the request, which package container
// checks against the CreateProcessingJob limits, into the API's request;
// RequestJSON is the JSON body sent for it, with no credentials or network
// needed; Submit creates the job and, if asked, polls it to its end,
// printing its status changes and the lines of its CloudWatch log streams
// (/aws/sagemaker/ProcessingJobs).
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

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/container"
)

// Input is the body of a CreateProcessingJob request, in the API's
// member names; nil and empty members are left out, as the API wants.
type Input struct {
	ProcessingJobName      string
	RoleArn                string
	AppSpecification       appSpecification
	ProcessingResources    processingResources
	StoppingCondition      stoppingCondition
	Environment            map[string]string       `json:",omitempty"`
	NetworkConfig          *networkConfig          `json:",omitempty"`
	ProcessingInputs       []processingInput       `json:",omitempty"`
	ProcessingOutputConfig *processingOutputConfig `json:",omitempty"`
	Tags                   []tag                   `json:",omitempty"`
}

type appSpecification struct {
	ImageUri           string
	ContainerArguments []string `json:",omitempty"` // the API wants at least one item when the list is present
}

type processingResources struct {
	ClusterConfig clusterConfig
}

type clusterConfig struct {
	InstanceCount  int
	InstanceType   string
	VolumeSizeInGB int
	VolumeKmsKeyId string `json:",omitempty"`
}

type stoppingCondition struct {
	MaxRuntimeInSeconds int64
}

type networkConfig struct {
	EnableNetworkIsolation                bool       `json:",omitempty"`
	EnableInterContainerTrafficEncryption bool       `json:",omitempty"`
	VpcConfig                             *vpcConfig `json:",omitempty"`
}

type vpcConfig struct {
	SecurityGroupIds []string
	Subnets          []string
}

type processingInput struct {
	InputName string
	S3Input   processingS3Input
}

type processingS3Input struct {
	S3Uri                  string
	LocalPath              string
	S3DataType             string
	S3InputMode            string
	S3DataDistributionType string
}

type processingOutputConfig struct {
	KmsKeyId string `json:",omitempty"`
	Outputs  []processingOutput
}

type processingOutput struct {
	OutputName string
	S3Output   processingS3Output
}

type processingS3Output struct {
	S3Uri        string
	LocalPath    string
	S3UploadMode string
}

type tag struct {
	Key, Value string
}

// NewInput checks r against the CreateProcessingJob limits and returns
// the API's request. Errors are one-line usage errors naming the flag at
// fault.
func NewInput(r container.ProcessingJobRequest) (*Input, error) {
	if err := r.Validate(processingInstanceTypes); err != nil {
		return nil, usagef("%v", err)
	}
	in := &Input{
		ProcessingJobName: r.JobName,
		RoleArn:           r.Role,
		AppSpecification:  appSpecification{ImageUri: r.Image, ContainerArguments: slices.Clone(r.Args)},
		ProcessingResources: processingResources{ClusterConfig: clusterConfig{
			InstanceCount: r.InstanceCount, InstanceType: r.InstanceType,
			VolumeSizeInGB: r.VolumeSizeGB, VolumeKmsKeyId: r.VolumeKMSKey,
		}},
		StoppingCondition: stoppingCondition{MaxRuntimeInSeconds: int64(r.MaxRuntime / time.Second)},
		Environment:       r.Environment(),
		NetworkConfig:     network(r),
	}
	for _, kv := range r.Tags {
		k, v, _ := strings.Cut(kv, "=")
		in.Tags = append(in.Tags, tag{Key: k, Value: v})
	}
	channels(r, in)
	return in, nil
}

// network is the request's NetworkConfig, nil when it asks for
// nothing.
func network(r container.ProcessingJobRequest) *networkConfig {
	if len(r.Subnets) == 0 && !r.NetworkIsolation && !r.InterContainerEncryption {
		return nil
	}
	nc := &networkConfig{EnableNetworkIsolation: r.NetworkIsolation, EnableInterContainerTrafficEncryption: r.InterContainerEncryption}
	if len(r.Subnets) > 0 { // Validate saw security groups too
		nc.VpcConfig = &vpcConfig{Subnets: slices.Clone(r.Subnets), SecurityGroupIds: slices.Clone(r.SecurityGroups)}
	}
	return nc
}

// channels adds the request's ProcessingInputs (S3 prefixes copied
// to every instance before the job starts) and ProcessingOutputs (uploaded
// when it ends) to in.
func channels(r container.ProcessingJobRequest, in *Input) {
	for _, c := range r.InputChannels() {
		in.ProcessingInputs = append(in.ProcessingInputs, processingInput{InputName: c.Name,
			S3Input: processingS3Input{S3Uri: c.S3URI, LocalPath: c.LocalPath,
				S3DataType: "S3Prefix", S3InputMode: "File", S3DataDistributionType: "FullyReplicated"}})
	}
	outs := r.OutputChannels()
	if len(outs) == 0 {
		return
	}
	in.ProcessingOutputConfig = &processingOutputConfig{KmsKeyId: r.OutputKMSKey}
	for _, c := range outs {
		in.ProcessingOutputConfig.Outputs = append(in.ProcessingOutputConfig.Outputs, processingOutput{OutputName: c.Name,
			S3Output: processingS3Output{S3Uri: c.S3URI, LocalPath: c.LocalPath, S3UploadMode: "EndOfJob"}})
	}
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
func Submit(ctx context.Context, in *Input, opts *Options, env func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(ctx, opts.Region, env)
	if err != nil {
		return err
	}
	client := newClient(cfg, sageMakerAPI, endpoint(env, opts.Endpoint, sageMakerAPI.envVar))
	name := in.ProcessingJobName
	var out struct{ ProcessingJobArn string }
	if err := client.call(ctx, "CreateProcessingJob", in, &out); err != nil {
		return fmt.Errorf("submit: creating processing job %s in %s: %w", name, cfg.Region, err)
	}
	arn := out.ProcessingJobArn
	fmt.Fprintf(stdout, "created processing job %s\n", name)
	fmt.Fprintf(stdout, "  arn:     %s\n", arn)
	if u := container.ConsoleURL(arn); u != "" {
		fmt.Fprintf(stdout, "  console: %s\n", u)
	}
	fmt.Fprintf(stdout, "  logs:    CloudWatch log group %s, streams %s/algo-*\n", logGroup, name)
	if !opts.Wait {
		return nil
	}
	logs := newLogFollower(newClient(cfg, logsAPI, endpoint(env, "", logsAPI.envVar)), name, stdout)
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

// describeOutput is the part of a DescribeProcessingJob answer that
// Submit reads.
type describeOutput struct {
	ProcessingJobStatus string
	FailureReason       string
	ExitMessage         string
}

// wait polls DescribeProcessingJob until the job ends, printing each
// status change and the log lines that logs finds. It fails unless the job
// Completed.
func wait(ctx context.Context, client *jsonClient, logs *logFollower, every time.Duration, stdout io.Writer) error {
	name := logs.job
	var last string
	poll := container.Backoff{First: every, Max: every, Timeout: math.MaxInt64}
	err := container.Retry(ctx, poll, func() (bool, error) {
		var d describeOutput
		err := client.call(ctx, "DescribeProcessingJob", struct{ ProcessingJobName string }{name}, &d)
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
		case "Completed":
			return true, nil
		case "Failed", "Stopped":
			return true, failed(&d, name, stdout)
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
func failed(d *describeOutput, name string, stdout io.Writer) error {
	reason := d.FailureReason
	if reason == "" {
		reason = "no failure reason given"
	}
	fmt.Fprintf(stdout, "failure reason: %s\n", reason)
	if m := d.ExitMessage; m != "" {
		fmt.Fprintf(stdout, "exit message: %s\n", m)
	}
	return fmt.Errorf("submit: processing job %s ended %s: %s", name, d.ProcessingJobStatus, reason)
}

func stopped(ctx context.Context, name string) error {
	return fmt.Errorf("submit: stopped waiting; processing job %s keeps running (stop it with: aws sagemaker stop-processing-job --processing-job-name %s): %w",
		name, name, ctx.Err())
}

// RequestJSON returns the JSON body that Submit sends for in, with object
// keys sorted and indented. No credentials or network are needed.
func RequestJSON(in *Input) ([]byte, error) {
	body, err := json.Marshal(in)
	if err != nil {
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
