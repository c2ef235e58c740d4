// Package container holds the SageMaker Processing contract as data: it
// reads what the platform gives each instance
// (/opt/ml/config/resourceconfig.json, /opt/ml/config/processingjobconfig.json
// and the environment) into a plain Job, checks the CreateProcessingJob
// request that starts a job (ProcessingJobRequest), and holds the image
// recipe.
//
// The contract, as SageMaker Processing gives it to each instance:
//
//   - resourceconfig.json: {"current_host": "algo-2", "hosts": ["algo-1",
//     "algo-2"], ...}. Load makes Hosts[0] the coordinator.
//   - processingjobconfig.json: the CreateProcessingJob request plus
//     ProcessingJobArn: ProcessingJobName, AppSpecification
//     (ContainerArguments), Environment, ProcessingInputs (S3Input or
//     DatasetDefinition, each with a LocalPath under /opt/ml/processing/),
//     ProcessingOutputConfig.Outputs (S3Output or FeatureStoreOutput).
//   - /opt/ml/output/message: a failed container's reason, at most 1 KB,
//     shown as the job's ExitMessage (WriteFailure).
//   - Peer host names resolve only once the instances are up (ResolveHost,
//     which waits with Retry, the package's backoff helper).
//   - The exit code decides the job: all zero is Completed, else Failed.
//
// The request side: ProcessingJobRequest is what "shardprep submit" asks of
// CreateProcessingJob (job name, image, role, cluster, volume and its KMS
// key, run time, environment, container arguments, tags, ProcessingInputs
// and ProcessingOutputs with the output KMS key, VPC, network isolation,
// inter-container encryption). Validate checks it against the limits of
// the SageMaker API reference, with one-line errors naming the submit flag
// at fault; the caller maps the checked request to the AWS SDK and passes
// the SDK's list of instance types, so the package needs no SDK.
// ProcessingJobRequest.Job is the Job its first instance will load, on
// which submit runs the container's own argument checks before it sends
// the request; ConsoleURL is the job's page in the AWS console.
//
// Besides the platform's files, the package holds the container command's
// own argument rules (args.go: the seed script's flags translated by
// TranslateArgs, --sagemaker-root read before parsing, host name overrides
// and Job.SetHost, and Job.Complete, which fills a run's settings from the
// job: inputs and output from the channels' local paths, job name, region,
// grant credentials when an account id is given, platform paths resolved
// under the root; Job.OutputRoot maps ProcessingOutputs named like the
// splits to their splits; Job.CheckRun refuses what the job cannot run)
// and the cluster secret of a job on several instances
// (secret.go: the coordinator publishes a fresh secret under the job's S3
// output, the workers poll for it there, through a SecretStore that the
// caller's storage satisfies).
//
// The image (Dockerfile beside this file, built by scripts/image.sh) is a
// static shardprep on an empty base running as uid 65532, entrypoint
// ["/shardprep", "container"]; the job's ContainerArguments follow it.
// SageMaker may mount /opt/ml/output and /opt/ml/processing/* writable by
// root only, so a non-root container can fail to write there: WriteFailure
// then returns an error that callers should report and otherwise ignore.
//
// The package uses the standard library only.
package container
