package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/sagemaker"
	"github.com/shardprep/shardprep/container"
)

// submitUsagef is cli.Usagef with the command's name in front.
func submitUsagef(format string, args ...any) error {
	return cli.Usagef("submit: "+format, args...)
}

// submitCheckJob parses the job arguments of r as the container will on
// the job's first instance (parseContainerJob, on the job that r
// describes), so that what the container would refuse is refused before
// the job starts and bills.
func submitCheckJob(r container.ProcessingJobRequest) error {
	sm := r.Job()
	if _, err := parseContainerJob(sm, container.RootFromArgs(r.Args), r.Args, io.Discard); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return submitUsagef("job arguments: -h asks the container for its help; see shardprep container -h")
		}
		return submitUsagef("job arguments after --: %v", err)
	}
	return nil
}

// submitFlags are the command line of "shardprep submit".
type submitFlags struct {
	req     container.ProcessingJobRequest
	subnets string
	groups  string
	env     cli.StringList
	tags    cli.StringList
	inputs  cli.StringList
	outputs cli.StringList
	opts    sagemaker.Options
	dryRun  bool
}

func submitParseFlags(args []string, now time.Time, stderr io.Writer) (*submitFlags, error) {
	f := &submitFlags{}
	fs := cli.NewFlagSet("submit", submitUsage, stderr)
	fs.StringVar(&f.req.JobName, "job-name", "", "processing job `name`, unique in the account and region (default shardprep-<UTC time>)")
	fs.StringVar(&f.req.Image, "image", "", "shardprep image `URI` in ECR (required)")
	fs.StringVar(&f.req.Role, "role", "", "execution role `ARN` the instances run as (required)")
	fs.IntVar(&f.req.InstanceCount, "instance-count", 1, "number of instances; the first coordinates")
	fs.StringVar(&f.req.InstanceType, "instance-type", "ml.m5.large", "instance `type`")
	fs.IntVar(&f.req.VolumeSizeGB, "volume-size-gb", 30, "storage volume per instance, in `GB`")
	f.req.MaxRuntime = time.Hour
	fs.Var((*cli.Days)(&f.req.MaxRuntime), "max-runtime", "SageMaker stops the job after this `duration` (90m, 12h, 9d)")
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
	fs.BoolVar(&f.opts.Wait, "wait", false, "wait for the job to end, printing status changes and, where allowed, its CloudWatch log lines; fail unless it Completed")
	fs.DurationVar(&f.opts.PollInterval, "poll-interval", 30*time.Second, "with --wait, time between status checks")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the CreateProcessingJob request as JSON (as aws sagemaker create-processing-job --cli-input-json takes it) and exit without calling AWS")
	fs.StringVar(&f.opts.Region, "region", "", "AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's)")
	fs.StringVar(&f.opts.Endpoint, "endpoint-url", "", "SageMaker API endpoint `URL` (default: $AWS_ENDPOINT_URL_SAGEMAKER, $AWS_ENDPOINT_URL, AWS)")

	flagArgs, jobArgs := args, []string(nil)
	if i := slices.Index(args, "--"); i >= 0 {
		flagArgs, jobArgs = args[:i], args[i+1:]
	}
	if err := cli.Parse(fs, flagArgs); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, submitUsagef("unexpected argument %q; job arguments go after --", fs.Arg(0))
	}
	if f.opts.PollInterval <= 0 {
		return nil, submitUsagef("--poll-interval %s: must be positive", f.opts.PollInterval)
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
	in, err := sagemaker.NewInput(f.req)
	if err != nil {
		return err
	}
	if err := submitCheckJob(f.req); err != nil {
		return err
	}
	if f.dryRun {
		body, err := sagemaker.RequestJSON(in)
		if err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", body)
		return err
	}
	return sagemaker.Submit(ctx, in, &f.opts, env, stdout)
}
