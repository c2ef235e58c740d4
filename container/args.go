package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// PlatformPrefix starts the paths that SageMaker Processing defines.
const PlatformPrefix = "/opt/ml/"

// ownFlags are the names of the container command's own flags, which the
// job's ContainerArguments do not replace (see HasJobArgs).
var ownFlags = map[string]bool{"sagemaker-root": true, "host": true, "cluster-port": true, "listen": true,
	"host-address": true, "resolve-timeout": true, "secret-timeout": true, "lease": true}

// RootFromArgs returns the value of the last --sagemaker-root flag in args
// before any "--", or "/" without one. The flags are read before they are
// parsed because the platform files under the root may hold the arguments.
func RootFromArgs(args []string) string {
	root := "/"
	for i := 0; i < len(args) && args[i] != "--"; i++ {
		name, value, hasValue := splitFlag(args[i])
		if name != "sagemaker-root" {
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		root = value
	}
	return root
}

// HasJobArgs reports whether args hold anything besides ownFlags (each
// with its value): if not, the job's ContainerArguments are added.
func HasJobArgs(args []string) bool {
	for i := 0; i < len(args); i++ {
		name, _, hasValue := splitFlag(args[i])
		if !ownFlags[name] {
			return true
		}
		if !hasValue {
			i++ // the flag's value
		}
	}
	return false
}

// RunSettings are the settings of the run a container makes of its
// processing job, as far as the job can fill them in: the command line's
// first, then completed by Job.Complete.
type RunSettings struct {
	Inputs  []string
	Output  string
	JobName string
	Region  string
	// Spec, Model and GrantsFile are files the run reads.
	Spec, Model, GrantsFile string
	// AccountID is the S3 Access Grants account; Credentials is "default"
	// or "grants", and CredentialsGiven says the command line set it.
	AccountID        string
	Credentials      string
	CredentialsGiven bool
	// Splits names the spec's splits ("train", "validation"), which
	// ProcessingOutputs of the same names receive; nil when the spec
	// cannot be read yet (see Complete).
	Splits []string
}

// Complete fills in from j what s leaves out, as the job a processing job
// defines for the PySpark script expects it:
//   - an account id without a choice of credentials means grants (the
//     PySpark job used S3 Access Grants);
//   - no inputs: the LocalPath of the first ProcessingInput that has one;
//   - no output: see OutputRoot;
//   - no job name or region: the processing job's.
//
// Then it resolves the platform's paths among the inputs, output, spec,
// model and grants file under root, so that a fake tree can stand in for
// the container's "/" (paths under PlatformPrefix; none when root is "/").
// A run left without an input or an output is an error.
func (j *Job) Complete(root string, s *RunSettings) error {
	if s.AccountID != "" && !s.CredentialsGiven {
		s.Credentials = "grants"
	}
	if p, ok := firstLocalPath(j.Inputs); ok && len(s.Inputs) == 0 {
		s.Inputs = append(s.Inputs, p)
	}
	if s.Output == "" {
		out, err := j.OutputRoot(s.Splits)
		if err != nil {
			return err
		}
		s.Output = out
	}
	if len(s.Inputs) == 0 || s.Output == "" {
		return errors.New("container: no input or output: pass --input/--output (or the script's --s3_* arguments) or give the job a ProcessingInput and ProcessingOutput")
	}
	for i := range s.Inputs {
		s.Inputs[i] = platformPath(root, s.Inputs[i])
	}
	for _, p := range []*string{&s.Output, &s.Spec, &s.Model, &s.GrantsFile} {
		*p = platformPath(root, *p)
	}
	if s.JobName == "" {
		s.JobName = j.JobName
	}
	if s.Region == "" {
		s.Region = j.Region
	}
	return nil
}

// OutputRoot returns the output root of a run given no output, from the
// job's ProcessingOutputs (those with a LocalPath) and the spec's splits:
//   - none: "";
//   - one: its LocalPath (the run writes LOCALPATH/train/, ...);
//   - one named like each split ("train", "validation"; the
//     PySparkProcessor layout): each split goes to the output of its name.
//     Their LocalPaths must be sibling folders named after them
//     (DIR/train, DIR/validation), as the run writes DIR/<split>/: DIR is
//     the root, and the run's manifest (DIR/_shardprep/) stays on the
//     instance. No ProcessingInput may lie under DIR.
//
// Anything else is ambiguous and an error: several outputs none of which
// is named like a split, or only some splits with an output of their name.
// With splits nil (the spec is not known), several outputs are taken as
// meant for splits of their names.
func (j *Job) OutputRoot(splits []string) (string, error) {
	var outs []Channel
	for _, c := range j.Outputs {
		if c.LocalPath != "" {
			outs = append(outs, c)
		}
	}
	if len(outs) == 0 {
		return "", nil
	}
	if splits == nil && len(outs) > 1 {
		for _, c := range outs {
			splits = append(splits, c.Name)
		}
	}
	var named, missing []string
	for _, sp := range splits {
		if _, ok := findChannel(outs, sp); ok {
			named = append(named, sp)
		} else {
			missing = append(missing, sp)
		}
	}
	switch {
	case len(named) == 0 && len(outs) == 1:
		return outs[0].LocalPath, nil
	case len(named) == 0:
		return "", fmt.Errorf("container: the job has %d ProcessingOutputs (%s) and none is named like a split (%s): pass --output, or give each split a ProcessingOutput of its name",
			len(outs), channelNames(outs), strings.Join(splits, ", "))
	case len(missing) > 0:
		return "", fmt.Errorf("container: ProcessingOutputs named like the splits %s, but none for %s: give every split a ProcessingOutput of its name, or pass --output",
			strings.Join(named, ", "), strings.Join(missing, ", "))
	}
	return j.splitOutputRoot(outs, splits)
}

// splitOutputRoot returns the folder that holds the split outputs, one
// named like each split.
func (j *Job) splitOutputRoot(outs []Channel, splits []string) (string, error) {
	var dir string
	for _, sp := range splits {
		c, _ := findChannel(outs, sp)
		p := path.Clean(c.LocalPath)
		if path.Base(p) != sp || (dir != "" && path.Dir(p) != dir) {
			return "", fmt.Errorf("container: ProcessingOutput %q has LocalPath %s: outputs named like the splits must be sibling folders named after them (%s), because each split is written to DIR/<split>/",
				sp, c.LocalPath, exampleLayout(splits))
		}
		dir = path.Dir(p)
	}
	for _, in := range j.Inputs {
		if in.LocalPath != "" && strings.HasPrefix(path.Clean(in.LocalPath)+"/", dir+"/") {
			return "", fmt.Errorf("container: ProcessingInput %q (%s) is inside %s, the folder of the split outputs: give the outputs a folder of their own (%s)",
				in.Name, in.LocalPath, dir, exampleLayout(splits))
		}
	}
	return dir, nil
}

func exampleLayout(splits []string) string {
	var ps []string
	for _, sp := range splits {
		ps = append(ps, OutputDir+sp)
	}
	return strings.Join(ps, ", ")
}

func channelNames(cs []Channel) string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// CheckRun checks the settings of a run, completed by Complete, against
// what the job allows: under network isolation nothing on S3; on several
// instances an s3:// output (each instance's ProcessingOutput folders are
// uploaded on their own, so no instance could commit the job) and no
// cluster secret in the job's Environment.
func (j *Job) CheckRun(s RunSettings) error {
	if j.NetworkIsolation {
		for _, p := range append(slices.Clip(s.Inputs), s.Output) {
			if strings.HasPrefix(p, "s3://") {
				return fmt.Errorf("container: %s: the job runs under network isolation (EnableNetworkIsolation), where the containers cannot reach S3: use ProcessingInputs and ProcessingOutputs and their local folders", p)
			}
		}
	}
	if len(j.Hosts) <= 1 {
		return nil
	}
	if !strings.HasPrefix(s.Output, "s3://") {
		return fmt.Errorf("container: a job on %d instances needs an s3:// output, not %s: each instance's ProcessingOutput folder is uploaded on its own, so no instance could commit the job", len(j.Hosts), s.Output)
	}
	if _, inJob := j.Environment[ClusterSecretEnv]; inJob {
		return fmt.Errorf("container: %s is set in the processing job's Environment, where anyone allowed to describe the job can read it; remove it and the coordinator shares a fresh secret through the S3 output", ClusterSecretEnv)
	}
	return nil
}

// PlatformPath resolves a path of the platform (under PlatformPrefix)
// under root; other paths, and every path when root is "/", are returned
// unchanged.
func PlatformPath(root, p string) string { return platformPath(root, p) }

func platformPath(root, p string) string {
	if root == "/" || !strings.HasPrefix(p, PlatformPrefix) {
		return p
	}
	return filepath.Join(root, filepath.FromSlash(p))
}

// firstLocalPath returns the LocalPath of the first channel that has one.
func firstLocalPath(cs []Channel) (string, bool) {
	for _, c := range cs {
		if c.LocalPath != "" {
			return c.LocalPath, true
		}
	}
	return "", false
}

// SetHost makes host, which must be one of j.Hosts, the current host, as
// the container command's --host flag asks (tests run the containers of
// several instances on one machine).
func (j *Job) SetHost(host string) error {
	if !slices.Contains(j.Hosts, host) {
		return fmt.Errorf("--host %q is not one of the job's hosts %q", host, j.Hosts)
	}
	j.CurrentHost = host
	j.IsCoordinator = host == j.Coordinator
	return nil
}

// HostLookup returns a resolver for ResolveHost that answers the hosts
// named in overrides ("NAME=ADDR" each) without asking DNS and asks
// net.DefaultResolver for the others. A malformed override is an error.
func HostLookup(overrides []string) (func(context.Context, string) ([]string, error), error) {
	m := map[string]string{}
	for _, o := range overrides {
		name, addr, ok := strings.Cut(o, "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("--host-address %q: want NAME=ADDR", o)
		}
		m[name] = addr
	}
	return func(ctx context.Context, host string) ([]string, error) {
		if a, ok := m[host]; ok {
			return []string{a}, nil
		}
		return net.DefaultResolver.LookupHost(ctx, host)
	}, nil
}

// Seed-script flags, as the notebook that launched the PySpark job passes
// them (argparse style, underscores).
const (
	seedAccountID    = "account_id"
	seedInputBucket  = "s3_input_bucket"
	seedInputPrefix  = "s3_input_key_prefix"
	seedOutputBucket = "s3_output_bucket"
	seedOutputPrefix = "s3_output_key_prefix"
)

// TranslateArgs maps the seed script's arguments to shardprep flags, so a
// processing job defined for the PySpark script runs shardprep unchanged:
//
//	--account_id A                                  -> --account-id A
//	--s3_input_bucket B  --s3_input_key_prefix P    -> --input s3://B/P/
//	--s3_output_bucket B --s3_output_key_prefix P   -> --output s3://B/P/
//
// Both "--name value" and "--name=value" are accepted (one leading dash
// too). Prefixes lose leading and trailing slashes; an absent or empty
// prefix names the bucket root (s3://B/). The translated flags come first,
// in the order above, then every other argument unchanged and in order.
// Arguments after a "--" terminator are passed through untranslated.
//
// Errors: a seed flag without a value or given twice, a key prefix without
// its bucket, a bucket name containing "/", an account id that is not 12
// digits, and a seed flag together with the shardprep flag it maps to.
func TranslateArgs(args []string) ([]string, error) {
	seed := map[string]string{}
	native := map[string]bool{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := splitFlag(a)
		switch name {
		case seedAccountID, seedInputBucket, seedInputPrefix, seedOutputBucket, seedOutputPrefix:
			if !hasValue {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("container: argument %s needs a value", a)
				}
				i++
				value = args[i]
			}
			if _, dup := seed[name]; dup {
				return nil, fmt.Errorf("container: argument --%s is given twice", name)
			}
			seed[name] = value
			continue
		case "account-id", "input", "output":
			native[name] = true
		}
		rest = append(rest, a)
	}

	var out []string
	if id, ok := seed[seedAccountID]; ok {
		if native["account-id"] {
			return nil, fmt.Errorf("container: both --%s and --account-id are given", seedAccountID)
		}
		if !isAccountID(id) {
			return nil, fmt.Errorf("container: --%s %q is not a 12-digit AWS account id", seedAccountID, id)
		}
		out = append(out, "--account-id", id)
	}
	for _, g := range []struct{ bucket, prefix, flag string }{
		{seedInputBucket, seedInputPrefix, "input"},
		{seedOutputBucket, seedOutputPrefix, "output"},
	} {
		bucket, hasBucket := seed[g.bucket]
		prefix, hasPrefix := seed[g.prefix]
		if !hasBucket {
			if hasPrefix {
				return nil, fmt.Errorf("container: --%s is given without --%s", g.prefix, g.bucket)
			}
			continue
		}
		if native[g.flag] {
			return nil, fmt.Errorf("container: both --%s and --%s are given", g.bucket, g.flag)
		}
		if bucket == "" || strings.Contains(bucket, "/") {
			return nil, fmt.Errorf("container: --%s %q is not a bucket name", g.bucket, bucket)
		}
		uri := "s3://" + bucket + "/"
		if p := strings.Trim(prefix, "/"); p != "" {
			uri += p + "/"
		}
		out = append(out, "--"+g.flag, uri)
	}
	return append(out, rest...), nil
}

// splitFlag splits "-name", "--name" or "--name=value"; name is "" for an
// argument that is not a flag.
func splitFlag(a string) (name, value string, hasValue bool) {
	if len(a) < 2 || a[0] != '-' || a == "--" {
		return "", "", false
	}
	s := strings.TrimPrefix(a[1:], "-")
	if s == "" || s[0] == '-' || s[0] == '=' {
		return "", "", false
	}
	name, value, hasValue = strings.Cut(s, "=")
	return name, value, hasValue
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
