package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Paths of the platform files, relative to the root of the fs.FS given to
// Load (the container's "/" in production).
const (
	ResourceConfigPath = "opt/ml/config/resourceconfig.json"
	JobConfigPath      = "opt/ml/config/processingjobconfig.json"
	// ProcessingDir is the only directory under which SageMaker Processing
	// places input and output channels (their LocalPath).
	ProcessingDir = "/opt/ml/processing/"
)

// Job is what SageMaker Processing tells one container about the job it
// runs. It is plain data: the CLI turns it into a run.
type Job struct {
	// CurrentHost is this container's host name ("algo-2"); Hosts lists
	// every instance of the job in the platform's order ("algo-1", ...).
	CurrentHost string
	Hosts       []string
	// Coordinator is Hosts[0]; IsCoordinator reports CurrentHost == Coordinator.
	Coordinator   string
	IsCoordinator bool

	// JobName and JobARN come from ProcessingJobName and ProcessingJobArn.
	// Region is the AWS_REGION (else AWS_DEFAULT_REGION) environment
	// variable, else the region field of JobARN; empty when neither names
	// one (local runs, where the "ARN" is often just the job name).
	JobName, JobARN, Region string

	// Inputs and Outputs are the job's ProcessingInputs and
	// ProcessingOutputConfig.Outputs, in request order.
	Inputs  []Channel
	Outputs []Channel

	// Environment is the job's Environment map (never nil).
	Environment map[string]string
	// Arguments is AppSpecification.ContainerArguments (nil when absent).
	Arguments []string
	// NetworkIsolation is NetworkConfig.EnableNetworkIsolation: the
	// containers reach nothing on the network, S3 included.
	NetworkIsolation bool
}

// Channel is one ProcessingInput or ProcessingOutput.
type Channel struct {
	// Name is InputName or OutputName.
	Name string
	// LocalPath is the directory in the container (always under
	// /opt/ml/processing/) that SageMaker fills before the job starts
	// (inputs) or uploads after it ends (outputs). Empty for a channel
	// that has no local directory (a Feature Store output).
	LocalPath string
	// S3URI is the S3Input.S3Uri or S3Output.S3Uri; empty for dataset
	// definitions (Athena, Redshift) and Feature Store outputs.
	S3URI string
}

// Input returns the input channel with the given name.
func (j *Job) Input(name string) (Channel, bool) { return findChannel(j.Inputs, name) }

// Output returns the output channel with the given name.
func (j *Job) Output(name string) (Channel, bool) { return findChannel(j.Outputs, name) }

func findChannel(cs []Channel, name string) (Channel, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return Channel{}, false
}

// resourceConfig is /opt/ml/config/resourceconfig.json. SageMaker writes
// more (current_instance_type, current_group_name, instance_groups,
// network_interface_name); only the cluster membership matters here.
type resourceConfig struct {
	CurrentHost *string  `json:"current_host"`
	Hosts       []string `json:"hosts"`
}

// jobConfig is /opt/ml/config/processingjobconfig.json: the
// CreateProcessingJob request as the platform saw it, plus the job's ARN.
type jobConfig struct {
	ProcessingJobName string `json:"ProcessingJobName"`
	ProcessingJobArn  string `json:"ProcessingJobArn"`
	AppSpecification  struct {
		ImageURI           string   `json:"ImageUri"`
		ContainerArguments []string `json:"ContainerArguments"`
	} `json:"AppSpecification"`
	Environment   map[string]string `json:"Environment"`
	NetworkConfig *struct {
		EnableNetworkIsolation bool `json:"EnableNetworkIsolation"`
	} `json:"NetworkConfig"`
	ProcessingInputs []struct {
		InputName         string     `json:"InputName"`
		S3Input           *s3Channel `json:"S3Input"`
		DatasetDefinition *struct {
			LocalPath string `json:"LocalPath"`
		} `json:"DatasetDefinition"`
	} `json:"ProcessingInputs"`
	ProcessingOutputConfig *struct {
		Outputs []struct {
			OutputName         string     `json:"OutputName"`
			S3Output           *s3Channel `json:"S3Output"`
			FeatureStoreOutput *struct {
				FeatureGroupName string `json:"FeatureGroupName"`
			} `json:"FeatureStoreOutput"`
		} `json:"Outputs"`
	} `json:"ProcessingOutputConfig"`
}

// s3Channel is an S3Input or S3Output.
type s3Channel struct {
	S3URI     string `json:"S3Uri"`
	LocalPath string `json:"LocalPath"`
}

// channel checks the S3 channel at field and returns it as the Channel name.
func (s *s3Channel) channel(name, field string) (Channel, error) {
	if s.S3URI == "" {
		return Channel{}, jobConfigError("field %s.S3Uri is missing or empty", field)
	}
	if err := checkLocalPath(s.LocalPath); err != nil {
		return Channel{}, jobConfigError("field %s.LocalPath: %v", field, err)
	}
	return Channel{Name: name, LocalPath: s.LocalPath, S3URI: s.S3URI}, nil
}

// Load reads the SageMaker Processing contract from fsys, which is rooted at
// the container's "/" (os.DirFS("/") in production, a fake tree in tests):
// ResourceConfigPath and JobConfigPath. env looks up environment variables
// (os.Getenv); it may be nil.
//
// Every error names the file and, for content errors, the JSON field
// ("processingjobconfig.json: ProcessingInputs[1].S3Input.LocalPath: ...").
// A missing file wraps fs.ErrNotExist.
func Load(fsys fs.FS, env func(string) string) (*Job, error) {
	if env == nil {
		env = func(string) string { return "" }
	}
	var rc resourceConfig
	if err := readJSON(fsys, ResourceConfigPath, &rc); err != nil {
		return nil, err
	}
	var jc jobConfig
	if err := readJSON(fsys, JobConfigPath, &jc); err != nil {
		return nil, err
	}
	j := &Job{}
	if err := j.setHosts(rc); err != nil {
		return nil, err
	}
	if err := j.setJob(jc, env); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *Job) setHosts(rc resourceConfig) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("container: %s: %s", ResourceConfigPath, fmt.Sprintf(format, args...))
	}
	if rc.CurrentHost == nil {
		return bad("field current_host is missing")
	}
	if *rc.CurrentHost == "" {
		return bad("field current_host is empty")
	}
	if len(rc.Hosts) == 0 {
		return bad("field hosts is missing or empty")
	}
	seen := make(map[string]bool, len(rc.Hosts))
	for i, h := range rc.Hosts {
		if h == "" {
			return bad("field hosts[%d] is empty", i)
		}
		if seen[h] {
			return bad("field hosts[%d]: host %q is listed twice", i, h)
		}
		seen[h] = true
	}
	if !seen[*rc.CurrentHost] {
		return bad("field current_host %q is not in hosts %q", *rc.CurrentHost, rc.Hosts)
	}
	j.CurrentHost = *rc.CurrentHost
	j.Hosts = rc.Hosts
	j.Coordinator = rc.Hosts[0]
	j.IsCoordinator = j.CurrentHost == j.Coordinator
	return nil
}

// jobConfigError is an error in processingjobconfig.json.
func jobConfigError(format string, args ...any) error {
	return fmt.Errorf("container: %s: %s", JobConfigPath, fmt.Sprintf(format, args...))
}

func (j *Job) setJob(jc jobConfig, env func(string) string) error {
	if jc.ProcessingJobName == "" {
		return jobConfigError("field ProcessingJobName is missing or empty")
	}
	j.JobName = jc.ProcessingJobName
	j.JobARN = jc.ProcessingJobArn
	j.Region = env("AWS_REGION")
	if j.Region == "" {
		j.Region = env("AWS_DEFAULT_REGION")
	}
	if strings.HasPrefix(jc.ProcessingJobArn, "arn:") {
		// arn:PARTITION:sagemaker:REGION:ACCOUNT:processing-job/NAME
		f := strings.SplitN(jc.ProcessingJobArn, ":", 6)
		if len(f) != 6 || f[3] == "" {
			return jobConfigError("field ProcessingJobArn %q is not an ARN with a region", jc.ProcessingJobArn)
		}
		if j.Region == "" {
			j.Region = f[3]
		}
	}

	j.Environment = jc.Environment
	if j.Environment == nil {
		j.Environment = map[string]string{}
	}
	j.Arguments = jc.AppSpecification.ContainerArguments
	j.NetworkIsolation = jc.NetworkConfig != nil && jc.NetworkConfig.EnableNetworkIsolation
	if err := j.setInputs(jc); err != nil {
		return err
	}
	return j.setOutputs(jc)
}

// checkChannelName checks the name of the channel at field: non-empty and
// not in names, to which it is added. key is InputName or OutputName.
func checkChannelName(names map[string]bool, field, key, name string) error {
	if name == "" {
		return jobConfigError("field %s.%s is missing or empty", field, key)
	}
	if names[name] {
		return jobConfigError("field %s.%s: %q is used twice", field, key, name)
	}
	names[name] = true
	return nil
}

func (j *Job) setInputs(jc jobConfig) error {
	names := map[string]bool{}
	for i, in := range jc.ProcessingInputs {
		field := fmt.Sprintf("ProcessingInputs[%d]", i)
		if err := checkChannelName(names, field, "InputName", in.InputName); err != nil {
			return err
		}
		var c Channel
		switch {
		case in.S3Input != nil:
			var err error
			if c, err = in.S3Input.channel(in.InputName, field+".S3Input"); err != nil {
				return err
			}
		case in.DatasetDefinition != nil:
			c = Channel{Name: in.InputName, LocalPath: in.DatasetDefinition.LocalPath}
			if err := checkLocalPath(c.LocalPath); err != nil {
				return jobConfigError("field %s.DatasetDefinition.LocalPath: %v", field, err)
			}
		default:
			return jobConfigError("field %s (%q) has neither S3Input nor DatasetDefinition", field, in.InputName)
		}
		j.Inputs = append(j.Inputs, c)
	}
	return nil
}

func (j *Job) setOutputs(jc jobConfig) error {
	if jc.ProcessingOutputConfig == nil {
		return nil
	}
	names := map[string]bool{}
	for i, out := range jc.ProcessingOutputConfig.Outputs {
		field := fmt.Sprintf("ProcessingOutputConfig.Outputs[%d]", i)
		if err := checkChannelName(names, field, "OutputName", out.OutputName); err != nil {
			return err
		}
		c := Channel{Name: out.OutputName}
		switch {
		case out.S3Output != nil:
			var err error
			if c, err = out.S3Output.channel(out.OutputName, field+".S3Output"); err != nil {
				return err
			}
		case out.FeatureStoreOutput != nil:
		default:
			return jobConfigError("field %s (%q) has neither S3Output nor FeatureStoreOutput", field, out.OutputName)
		}
		j.Outputs = append(j.Outputs, c)
	}
	return nil
}

// checkLocalPath enforces the platform rule that channel directories live
// under /opt/ml/processing/.
func checkLocalPath(p string) error {
	if p == "" {
		return errors.New("missing or empty")
	}
	if clean := path.Clean(p); !strings.HasPrefix(clean+"/", ProcessingDir) || clean+"/" == ProcessingDir {
		return fmt.Errorf("%q is not a directory under %s", p, ProcessingDir)
	}
	return nil
}

// readJSON decodes the JSON file name of fsys into v, with errors that name
// the file and, where the decoder says, the line, column or field.
func readJSON(fsys fs.FS, name string, v any) error {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fmt.Errorf("container: read %s: %w", name, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			line, col := position(data, syn.Offset)
			return fmt.Errorf("container: %s:%d:%d: invalid JSON: %w", name, line, col, err)
		case errors.As(err, &typ) && typ.Field != "":
			return fmt.Errorf("container: %s: field %s: JSON %s where %s is expected: %w",
				name, typ.Field, typ.Value, typ.Type, err)
		case errors.As(err, &typ):
			return fmt.Errorf("container: %s: the file holds a JSON %s, not an object: %w", name, typ.Value, err)
		default:
			return fmt.Errorf("container: %s: invalid JSON: %w", name, err)
		}
	}
	return nil
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}
