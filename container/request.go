package container

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
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
}

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
)

var (
	jobNameRE = regexp.MustCompile(`^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$`)
	envKeyRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	roleRE    = regexp.MustCompile(`^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)
	vpcIDRE   = regexp.MustCompile(`^[-0-9a-zA-Z]+$`)
)

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
	if !jobNameRE.MatchString(r.JobName) {
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
	if n := len(r.Role); n < minRoleARNLen || n > maxRoleARNLen || !roleRE.MatchString(r.Role) {
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
		return fmt.Errorf("--max-runtime %s: must be whole seconds from 1s to %s", r.MaxRuntime, maxRuntime)
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
		if !envKeyRE.MatchString(k) {
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
		if len(id) > maxVPCIDLen || !vpcIDRE.MatchString(id) {
			return fmt.Errorf("%s: %q is not a VPC resource ID", flagName, id)
		}
	}
	return nil
}
