package container

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ProcessingJobRequest is the CreateProcessingJob request that starts a job
// running the shardprep image, as plain data: the fields shardprep sets,
// each named after the flag of "shardprep submit" that gives it.
type ProcessingJobRequest struct {
	JobName        string        // --job-name: ProcessingJobName
	Image          string        // --image: AppSpecification.ImageUri
	Role           string        // --role: RoleArn
	InstanceCount  int           // --instance-count: ClusterConfig.InstanceCount
	InstanceType   string        // --instance-type: ClusterConfig.InstanceType
	VolumeSizeGB   int           // --volume-size-gb: ClusterConfig.VolumeSizeInGB
	MaxRuntime     time.Duration // --max-runtime: StoppingCondition.MaxRuntimeInSeconds
	Subnets        []string      // --subnets: NetworkConfig.VpcConfig.Subnets
	SecurityGroups []string      // --security-groups: NetworkConfig.VpcConfig.SecurityGroupIds
	Env            []string      // --env: Environment, as KEY=VALUE entries in flag order
	Args           []string      // the arguments after --: AppSpecification.ContainerArguments

	Tags             []string // --tags: Tags, as KEY=VALUE entries in flag order
	VolumeKMSKey     string   // --volume-kms-key: ClusterConfig.VolumeKmsKeyId
	OutputKMSKey     string   // --output-kms-key: ProcessingOutputConfig.KmsKeyId
	NetworkIsolation bool     // --network-isolation: NetworkConfig.EnableNetworkIsolation
	// --inter-container-encryption:
	// NetworkConfig.EnableInterContainerTrafficEncryption.
	InterContainerEncryption bool
	// --processing-input and --processing-output, NAME=S3URI each:
	// ProcessingInputs and ProcessingOutputConfig.Outputs, with the
	// LocalPath InputDir+NAME or OutputDir+NAME (see InputChannels).
	Inputs, Outputs []string
}

// Local folders of the channels that ProcessingJobRequest asks for.
const (
	InputDir  = "/opt/ml/processing/input/"
	OutputDir = "/opt/ml/processing/output/"
)

// ClusterSecretEnv is the environment variable that may hold the secret of
// a job on several instances, in the container's own environment only.
const ClusterSecretEnv = "SHARDPREP_CLUSTER_SECRET"

// Limits of CreateProcessingJob, from the SageMaker API reference
// (API_CreateProcessingJob, API_AppSpecification, API_ProcessingClusterConfig,
// API_ProcessingStoppingCondition, API_VpcConfig):
//   - AppSpecification.ContainerArguments: 1-100 items, each 0-256 long.
//   - AppSpecification.ImageUri: 0-255 long.
//   - Environment: 0-100 entries; key 0-256 long matching
//     [a-zA-Z_][a-zA-Z0-9_]*; value 0-256 long.
//   - ProcessingJobName: 1-63 long, ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}.
//   - RoleArn: 20-2048 long, ^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$.
//   - ClusterConfig.InstanceCount 1-100, VolumeSizeInGB 1-16384.
//   - StoppingCondition.MaxRuntimeInSeconds 1-777600.
//   - VpcConfig: 1-16 Subnets, 1-5 SecurityGroupIds, each 0-32 long, [-0-9a-zA-Z]+.
//   - Tags: 0-50; key 1-128 long, value 0-256 long, both
//     [\p{L}\p{Z}\p{N}_.:/=+\-@]*; keys starting with "aws:" are reserved.
//   - VolumeKmsKeyId, ProcessingOutputConfig.KmsKeyId: 0-2048 long, [a-zA-Z0-9:/_-]*.
//   - ProcessingInputs, ProcessingOutputConfig.Outputs: 0-10 each; S3Uri
//     0-1024 long.
//
// Lengths are counted in characters (Unicode code points).
const (
	maxArgs       = 100
	maxArgLen     = 256
	maxImageLen   = 255
	maxEnv        = 100
	maxEnvLen     = 256
	maxInstances  = 100
	maxVolumeGB   = 16384
	maxRuntime    = 777600 * time.Second
	maxSubnets    = 16
	maxSecGroups  = 5
	maxVPCIDLen   = 32
	minRoleARNLen = 20
	maxRoleARNLen = 2048
	maxTags       = 50
	maxTagKeyLen  = 128
	maxTagValLen  = 256
	maxKMSKeyLen  = 2048
	maxChannels   = 10
	maxS3URILen   = 1024
)

// The patterns compile at first use, not at every start of the binary
// (tagRE's Unicode classes alone took milliseconds).
var (
	jobNameRE = lazyRegexp(`^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`)
	envKeyRE  = lazyRegexp(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	roleRE    = lazyRegexp(`^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)
	vpcIDRE   = lazyRegexp(`^[-0-9a-zA-Z]+$`)
	tagRE     = lazyRegexp(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	kmsKeyRE  = lazyRegexp(`^[a-zA-Z0-9:/_-]*$`)
	// A channel's name is also the last element of its LocalPath.
	channelRE = lazyRegexp(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)
)

// lazyRegexp returns a function that compiles expr once, when first called.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// Validate checks r against the limits of CreateProcessingJob, so that a
// request it accepts is not refused for its form. instanceTypes lists the
// Processing instance types SageMaker knows (the AWS SDK's
// ProcessingInstanceType values); InstanceType must be one of them.
//
// The error is one line that names the flag at fault (e.g. "--max-runtime
// 1.5s: must be whole seconds from 1s to 216h0m0s"), the first one found.
func (r *ProcessingJobRequest) Validate(instanceTypes []string) error {
	if err := r.checkIdentity(); err != nil {
		return err
	}
	if err := r.checkResources(instanceTypes); err != nil {
		return err
	}
	if err := checkEnv(r.Env); err != nil {
		return err
	}
	if err := r.checkSecurity(); err != nil {
		return err
	}
	if len(r.Args) > maxArgs {
		return fmt.Errorf("%d job arguments after --; SageMaker allows at most %d", len(r.Args), maxArgs)
	}
	for i, a := range r.Args {
		if n := utf8.RuneCountInString(a); n > maxArgLen {
			return fmt.Errorf("job argument %d (%.20q...) is %d characters long; SageMaker allows at most %d", i+1, a, n, maxArgLen)
		}
	}
	return checkNetwork(r.Subnets, r.SecurityGroups)
}

// Environment returns Env as the request's Environment map, nil when Env
// is empty. It is meant for a request that Validate accepted.
func (r *ProcessingJobRequest) Environment() map[string]string {
	if len(r.Env) == 0 {
		return nil
	}
	env := make(map[string]string, len(r.Env))
	for _, kv := range r.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// checkIdentity checks the job name, the image and the role.
func (r *ProcessingJobRequest) checkIdentity() error {
	if !jobNameRE().MatchString(r.JobName) {
		return fmt.Errorf("--job-name %q: must be 1-63 letters, digits and hyphens, starting and ending with a letter or digit", r.JobName)
	}
	if r.Image == "" {
		return errors.New("--image is required (the shardprep image's ECR URI)")
	}
	if n := utf8.RuneCountInString(r.Image); n > maxImageLen {
		return fmt.Errorf("--image is %d characters long; SageMaker allows at most %d", n, maxImageLen)
	}
	if r.Role == "" {
		return errors.New("--role is required (the ARN of the job's execution role)")
	}
	if n := len(r.Role); n < minRoleARNLen || n > maxRoleARNLen || !roleRE().MatchString(r.Role) {
		return fmt.Errorf("--role %q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", r.Role)
	}
	return nil
}

// checkResources checks the cluster and the stopping condition.
func (r *ProcessingJobRequest) checkResources(instanceTypes []string) error {
	if r.InstanceCount < 1 || r.InstanceCount > maxInstances {
		return fmt.Errorf("--instance-count %d: must be 1 to %d", r.InstanceCount, maxInstances)
	}
	if !slices.Contains(instanceTypes, r.InstanceType) {
		return fmt.Errorf("--instance-type %q is not a SageMaker Processing instance type (e.g. ml.m5.large, ml.c5.2xlarge)", r.InstanceType)
	}
	if r.VolumeSizeGB < 1 || r.VolumeSizeGB > maxVolumeGB {
		return fmt.Errorf("--volume-size-gb %d: must be 1 to %d", r.VolumeSizeGB, maxVolumeGB)
	}
	if r.MaxRuntime < time.Second || r.MaxRuntime > maxRuntime || r.MaxRuntime%time.Second != 0 {
		return fmt.Errorf("--max-runtime %s: must be whole seconds from 1s to %s (SageMaker's limit, %d seconds)",
			spellDuration(r.MaxRuntime), spellDuration(maxRuntime), maxRuntime/time.Second)
	}
	return nil
}

// checkEnv checks the KEY=VALUE entries of --env.
func checkEnv(kvs []string) error {
	if len(kvs) > maxEnv {
		return fmt.Errorf("%d --env entries; SageMaker allows at most %d", len(kvs), maxEnv)
	}
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
		if !envKeyRE().MatchString(k) {
			return fmt.Errorf("--env %q: the name must match [a-zA-Z_][a-zA-Z0-9_]*", kv)
		}
		if n := utf8.RuneCountInString(k); n > maxEnvLen {
			return fmt.Errorf("--env name %.20q... is %d characters long; SageMaker allows at most %d", k, n, maxEnvLen)
		}
		if n := utf8.RuneCountInString(v); n > maxEnvLen {
			return fmt.Errorf("--env %s: the value is %d characters long; SageMaker allows at most %d", k, n, maxEnvLen)
		}
		if seen[k] {
			return fmt.Errorf("--env %s is given twice", k)
		}
		if k == ClusterSecretEnv {
			return fmt.Errorf("--env %s: the job's Environment is visible to anyone allowed to describe the job; leave it out (a job on several instances shares a fresh secret through its S3 output)", k)
		}
		seen[k] = true
	}
	return nil
}

// checkNetwork checks the VPC configuration: none, or both subnets and
// security groups.
func checkNetwork(subnets, groups []string) error {
	if len(subnets) == 0 && len(groups) == 0 {
		return nil
	}
	if len(subnets) == 0 || len(groups) == 0 {
		return errors.New("--subnets and --security-groups go together (a VPC configuration needs both)")
	}
	if err := checkVPCIDs("--subnets", subnets, maxSubnets); err != nil {
		return err
	}
	return checkVPCIDs("--security-groups", groups, maxSecGroups)
}

func checkVPCIDs(flagName string, ids []string, most int) error {
	if len(ids) > most {
		return fmt.Errorf("%s lists %d IDs; SageMaker allows at most %d", flagName, len(ids), most)
	}
	for _, id := range ids {
		if len(id) > maxVPCIDLen || !vpcIDRE().MatchString(id) {
			return fmt.Errorf("%s: %q is not a VPC resource ID", flagName, id)
		}
	}
	return nil
}

// checkSecurity checks the tags, the KMS keys and the channels.
func (r *ProcessingJobRequest) checkSecurity() error {
	if err := checkTags(r.Tags); err != nil {
		return err
	}
	for _, k := range []struct{ flag, key string }{{"--volume-kms-key", r.VolumeKMSKey}, {"--output-kms-key", r.OutputKMSKey}} {
		if len(k.key) > maxKMSKeyLen || !kmsKeyRE().MatchString(k.key) {
			return fmt.Errorf("%s %q is not a KMS key id, alias or ARN", k.flag, k.key)
		}
	}
	if _, err := channels("--processing-input", r.Inputs, InputDir); err != nil {
		return err
	}
	if _, err := channels("--processing-output", r.Outputs, OutputDir); err != nil {
		return err
	}
	if r.OutputKMSKey != "" && len(r.Outputs) == 0 {
		return errors.New("--output-kms-key encrypts what SageMaker uploads from the job's ProcessingOutputs: give --processing-output too (an s3:// --output that shardprep writes itself is encrypted as its bucket's default encryption says)")
	}
	return nil
}

func checkTags(tags []string) error {
	if len(tags) > maxTags {
		return fmt.Errorf("%d --tags; SageMaker allows at most %d", len(tags), maxTags)
	}
	seen := make(map[string]bool, len(tags))
	for _, kv := range tags {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			return fmt.Errorf("--tags %q: want KEY=VALUE", kv)
		case utf8.RuneCountInString(k) > maxTagKeyLen || utf8.RuneCountInString(v) > maxTagValLen:
			return fmt.Errorf("--tags %.40q: keys are at most %d characters long, values %d", kv, maxTagKeyLen, maxTagValLen)
		case !tagRE().MatchString(k) || !tagRE().MatchString(v):
			return fmt.Errorf("--tags %q: keys and values are letters, digits, spaces and _ . : / = + - @", kv)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return fmt.Errorf("--tags %q: keys starting with aws: are reserved", kv)
		case seen[k]:
			return fmt.Errorf("--tags %s is given twice", k)
		}
		seen[k] = true
	}
	return nil
}

// channels checks the NAME=S3URI entries of flagName and returns them as
// channels whose LocalPath is dir+NAME.
func channels(flagName string, entries []string, dir string) ([]Channel, error) {
	if len(entries) > maxChannels {
		return nil, fmt.Errorf("%d %s; SageMaker allows at most %d", len(entries), flagName, maxChannels)
	}
	var cs []Channel
	seen := map[string]bool{}
	for _, e := range entries {
		name, uri, ok := strings.Cut(e, "=")
		switch {
		case !ok || !channelRE().MatchString(name):
			return nil, fmt.Errorf("%s %q: want NAME=s3://bucket/prefix/, the name letters, digits, _ . -", flagName, e)
		case !strings.HasPrefix(uri, "s3://") || len(uri) <= len("s3://") || len(uri) > maxS3URILen:
			return nil, fmt.Errorf("%s %q: want an s3://bucket/prefix/ URI of at most %d characters", flagName, e, maxS3URILen)
		case seen[name]:
			return nil, fmt.Errorf("%s %s is given twice", flagName, name)
		}
		seen[name] = true
		cs = append(cs, Channel{Name: name, LocalPath: dir + name, S3URI: uri})
	}
	return cs, nil
}

// InputChannels returns the ProcessingInputs of r, each an S3 prefix
// copied to InputDir+NAME; OutputChannels returns its ProcessingOutputs,
// each uploaded from OutputDir+NAME. They are meant for a request that
// Validate accepted.
func (r *ProcessingJobRequest) InputChannels() []Channel {
	cs, _ := channels("--processing-input", r.Inputs, InputDir)
	return cs
}

// OutputChannels: see InputChannels.
func (r *ProcessingJobRequest) OutputChannels() []Channel {
	cs, _ := channels("--processing-output", r.Outputs, OutputDir)
	return cs
}

// Job returns the Job that the first instance of the processing job r
// starts will read from its platform files: hosts algo-1 to algo-N (as
// SageMaker names them), the job's name, environment, arguments, channels
// and network isolation. "shardprep submit" checks the job's arguments
// against it before it creates the job.
func (r *ProcessingJobRequest) Job() *Job {
	hosts := make([]string, max(r.InstanceCount, 1))
	for i := range hosts {
		hosts[i] = fmt.Sprintf("algo-%d", i+1)
	}
	env := r.Environment()
	if env == nil {
		env = map[string]string{}
	}
	return &Job{CurrentHost: hosts[0], Hosts: hosts, Coordinator: hosts[0], IsCoordinator: true,
		JobName: r.JobName, Region: env["AWS_REGION"], Inputs: r.InputChannels(), Outputs: r.OutputChannels(),
		Environment: env, Arguments: r.Args, NetworkIsolation: r.NetworkIsolation}
}

// ConsoleURL returns the address of the processing job's page in the AWS
// console, from its ARN (arn:PARTITION:sagemaker:REGION:ACCOUNT:processing-job/NAME);
// "" for anything else.
func ConsoleURL(jobARN string) string {
	f := strings.SplitN(jobARN, ":", 6)
	if len(f) != 6 || f[0] != "arn" || f[2] != "sagemaker" || f[3] == "" || !strings.HasPrefix(f[5], "processing-job/") {
		return ""
	}
	domain := map[string]string{"aws": "console.aws.amazon.com", "aws-cn": "console.amazonaws.cn",
		"aws-us-gov": "console.amazonaws-us-gov.com"}[f[1]]
	if domain == "" {
		return ""
	}
	region, name := f[3], strings.TrimPrefix(f[5], "processing-job/")
	return fmt.Sprintf("https://%s.%s/sagemaker/home?region=%s#/processing-jobs/%s", region, domain, region, name)
}

// spellDuration spells d as --max-runtime takes it: whole days as "9d",
// days and a rest as "1d12h0m0s", shorter ones as time.Duration does.
func spellDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d < day:
		return d.String()
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	default:
		return fmt.Sprintf("%dd%s", d/day, d%day)
	}
}
