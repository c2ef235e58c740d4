package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shardprep/shardprep/container"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

const containerUsage = `Usage: shardprep container [flags] [job arguments]

The entrypoint of the shardprep image on SageMaker Processing. It reads
opt/ml/config/resourceconfig.json and processingjobconfig.json under
--sagemaker-root, then runs the job: in-process on one instance; on several,
the first host in "hosts" is the coordinator (and also a worker named after
the host), the others are workers. Every instance exits 0 only when the job
committed.

Job arguments are run's flags, or the PySpark script's own arguments, which
are translated (when the command line holds only the flags below that are
the container's own, the job's ContainerArguments are added):
  --account_id A                                 -> --account-id A (and --credentials grants)
  --s3_input_bucket B  --s3_input_key_prefix P   -> --input s3://B/P/
  --s3_output_bucket B --s3_output_key_prefix P  -> --output s3://B/P/
Without --input (--output), the local path of the job's first
ProcessingInput (ProcessingOutput) is used; a job on several instances
needs an s3:// output, and local inputs there must be FullyReplicated.

Paths starting with /opt/ml/ (channel paths, --spec, --model, --grants-file)
are resolved under --sagemaker-root, so a fake tree can stand in for the
container's / in tests.

Cluster secret: the coordinator writes a fresh random secret to
_shardprep/cluster-secret-<job name> under the S3 output, with the job's own
output credentials; the workers read it there; it is deleted when the job
ends. SHARDPREP_CLUSTER_SECRET in the container's environment is used
instead, unless it comes from the job's Environment (which anyone allowed
to describe the job can read): that is refused.

Logs are JSON lines unless on a terminal; so are stdout's lines. On failure
the one-line reason is written to opt/ml/output/message and the exit status
is non-zero; SIGTERM and SIGINT stop the job, abort its uploads and commit
nothing.

Flags:
`

// platformPrefix marks the paths that SageMaker Processing defines.
const platformPrefix = "/opt/ml/"

// containerRun is one container's view of the job, resolved from the
// platform files and the flags.
type containerRun struct {
	sm   *container.Job
	root string // --sagemaker-root
	f    jobFlags
	fs   *flag.FlagSet

	port           int
	hostAddrs      stringList
	resolveTimeout time.Duration
	secretTimeout  time.Duration
	lease          time.Duration

	env    func(string) string
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer
}

// runContainer runs the container command. Every failure is also written,
// as one line of at most 1 KB, to opt/ml/output/message under
// --sagemaker-root, where SageMaker reads the job's failure reason.
func runContainer(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	root := rootFromArgs(args)
	log := newLogger(stderr, "auto", env)
	fail := func(err error) error {
		if err == nil || errors.Is(err, flag.ErrHelp) {
			return err
		}
		log.Error("container failed", "error", err.Error())
		if werr := container.WriteFailure(root, err.Error()); werr != nil {
			log.Error("could not write the failure message", "error", werr.Error())
		}
		return &loggedError{err}
	}
	c, err := newContainerRun(root, args, env, stdout, stderr)
	if err != nil {
		return fail(err)
	}
	log = c.log
	return fail(c.run(ctx))
}

// register makes the container's flag set: run's flags and its own. It
// returns the flags that newContainerRun checks after parsing.
func (c *containerRun) register() (rootFlag, host *string) {
	c.fs = newFlagSet("container", containerUsage, c.stderr)
	c.f.register(c.fs)
	rootFlag = c.fs.String("sagemaker-root", "/", "`DIR` holding opt/ml (a fake tree in tests); must be given on the command line")
	host = c.fs.String("host", "", "this instance's host name (default: current_host from resourceconfig.json)")
	c.fs.IntVar(&c.port, "cluster-port", 7070, "TCP port of the coordinator on the first host")
	c.fs.Var(&c.hostAddrs, "host-address", "`NAME=ADDR` address of a host without asking DNS (repeatable; for tests)")
	c.fs.DurationVar(&c.resolveTimeout, "resolve-timeout", 5*time.Minute, "how long a worker waits for the coordinator's host name to resolve")
	c.fs.DurationVar(&c.secretTimeout, "secret-timeout", 5*time.Minute, "how long a worker waits for the coordinator's cluster secret")
	c.fs.DurationVar(&c.lease, "lease", 30*time.Second, "a worker silent this long loses its tasks")
	return rootFlag, host
}

// newContainerRun loads the platform files, parses the flags (translating
// the seed script's) and fills what the flags leave out from the job.
func newContainerRun(root string, args []string, env func(string) string, stdout, stderr io.Writer) (*containerRun, error) {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			// Help needs no platform files.
			c := &containerRun{stderr: stderr}
			c.register()
			c.fs.Usage()
			return nil, flag.ErrHelp
		}
	}
	sm, err := container.Load(os.DirFS(root), env)
	if err != nil {
		return nil, fmt.Errorf("reading the SageMaker Processing configuration: %w", err)
	}
	if !hasJobArgs(args) {
		args = append(slices.Clip(args), sm.Arguments...)
	}
	translated, err := container.TranslateArgs(args)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	c := &containerRun{sm: sm, root: root, env: env, stderr: stderr}
	rootFlag, host := c.register()
	if err := parseFlags(c.fs, translated); err != nil {
		return nil, err
	}
	if *rootFlag != root {
		return nil, usagef("--sagemaker-root must be given on the command line, not in the job's ContainerArguments")
	}
	if c.port < 1 || c.port > 65535 {
		return nil, usagef("--cluster-port %d: not a TCP port", c.port)
	}
	for _, ha := range c.hostAddrs {
		if name, addr, ok := strings.Cut(ha, "="); !ok || name == "" || addr == "" {
			return nil, usagef("--host-address %q: want NAME=ADDR", ha)
		}
	}
	if *host != "" {
		if !slices.Contains(sm.Hosts, *host) {
			return nil, usagef("--host %q is not one of the job's hosts %q", *host, sm.Hosts)
		}
		sm.CurrentHost = *host
		sm.IsCoordinator = *host == sm.Coordinator
	}

	f := &c.f
	f.inputs = append(f.inputs, c.fs.Args()...)
	set := map[string]bool{}
	c.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f.store.accountID != "" && !set["credentials"] {
		f.store.credentials = "grants" // the PySpark job used S3 Access Grants
	}
	if len(f.inputs) == 0 {
		if p, ok := firstLocal(sm.Inputs); ok {
			f.inputs = append(f.inputs, p)
		}
	}
	if f.output == "" {
		if p, ok := firstLocal(sm.Outputs); ok {
			f.output = p
		}
	}
	if len(f.inputs) == 0 || f.output == "" {
		return nil, usagef("container: no input or output: pass --input/--output (or the script's --s3_* arguments) or give the job a ProcessingInput and ProcessingOutput")
	}
	for i := range f.inputs {
		f.inputs[i] = c.platformPath(f.inputs[i])
	}
	f.output = c.platformPath(f.output)
	f.spec = c.platformPath(f.spec)
	f.model = c.platformPath(f.model)
	f.store.grantsFile = c.platformPath(f.store.grantsFile)
	if f.jobName == "" {
		f.jobName = sm.JobName
	}
	if f.store.region == "" {
		f.store.region = sm.Region
	}
	log := newLogger(stderr, f.logFormat, env).With("host", sm.CurrentHost)
	c.log = log
	c.stdout = stdout
	if f.logFormat == "json" || (f.logFormat == "auto" && !isTerminal(stdout)) {
		// CloudWatch reads stdout and stderr as one stream of JSON lines.
		c.stdout = &logLines{log: newLogger(stdout, "json", env).With("host", sm.CurrentHost, "stream", "stdout")}
	}
	return c, nil
}

// platformPath resolves a path of the platform (/opt/ml/...) under
// --sagemaker-root; other paths are returned unchanged.
func (c *containerRun) platformPath(p string) string {
	if c.root == "/" || !strings.HasPrefix(p, platformPrefix) {
		return p
	}
	return filepath.Join(c.root, filepath.FromSlash(p))
}

func (c *containerRun) run(ctx context.Context) error {
	sm := c.sm
	c.log.Info("container starting", "job", c.f.jobName, "hosts", len(sm.Hosts), "coordinator", sm.Coordinator,
		"is_coordinator", sm.IsCoordinator, "output", c.f.output)
	if len(sm.Hosts) <= 1 {
		return runJob(ctx, c.jobArgs(), c.env, c.stdout, c.stderr)
	}

	outRoot := normalizeRoot(c.f.output)
	if !strings.HasPrefix(outRoot, "s3://") {
		return usagef("container: a job on %d instances needs an s3:// output, not %s: each instance's ProcessingOutput folder is uploaded on its own, so no instance could commit the job", len(sm.Hosts), c.f.output)
	}
	secret := c.env("SHARDPREP_CLUSTER_SECRET")
	if _, inJob := sm.Environment["SHARDPREP_CLUSTER_SECRET"]; inJob {
		return usagef("container: SHARDPREP_CLUSTER_SECRET is set in the processing job's Environment, where anyone allowed to describe the job can read it; remove it and the coordinator shares a fresh secret through the S3 output")
	}
	if err := c.f.store.check(); err != nil {
		return err
	}
	c.f.store.jobName = c.f.jobName
	out, err := newStores(c.f.store, c.env, c.log).bucket(ctx, outRoot, true)
	if err != nil {
		return fmt.Errorf("output %s: %w", c.f.output, err)
	}
	if sm.IsCoordinator {
		return c.runCoordinatorHost(ctx, out, secret)
	}
	return c.runWorkerHost(ctx, out, secret)
}

// runCoordinatorHost serves the job on the first host, with a worker named
// after the host joining it over loopback like any other.
func (c *containerRun) runCoordinatorHost(ctx context.Context, out *storage.Bucket, secret string) error {
	key := pipeline.ClusterSecretKey(c.f.jobName)
	if secret == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("making the cluster secret: %w", err)
		}
		secret = hex.EncodeToString(b)
		if err := out.Put(ctx, key, []byte(secret)); err != nil {
			return fmt.Errorf("publishing the cluster secret at %s: %w", out.URL(key), err)
		}
		c.log.Info("cluster secret published for the workers", "object", out.URL(key))
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := out.Delete(dctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.log.Warn("could not delete the cluster secret", "object", out.URL(key), "error", err.Error())
			} else {
				c.log.Info("cluster secret deleted", "object", out.URL(key))
			}
		}()
	}
	env := withSecret(c.env, secret)
	port := strconv.Itoa(c.port)
	cargs := append([]string{"--listen", net.JoinHostPort("0.0.0.0", port), "--lease", c.lease.String()}, c.jobArgs()...)
	cargs = append(cargs, "--workers=0")
	wargs := append([]string{"--coordinator", "http://" + net.JoinHostPort("127.0.0.1", port),
		"--name", c.sm.CurrentHost, "--workers", strconv.Itoa(c.f.workers), "--log-format", c.f.logFormat}, c.storeArgs()...)

	coordCtx, stopCoord := context.WithCancelCause(ctx)
	defer stopCoord(nil)
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	var g errgroup.Group
	g.Go(func() error {
		err := runWorker(workerCtx, wargs, env, c.stdout, c.stderr)
		if err != nil && workerCtx.Err() == nil && !errors.Is(err, pipeline.ErrJobFailed) {
			// A broken host stops the job rather than leave it waiting.
			stopCoord(fmt.Errorf("the worker on the coordinator's host failed: %w", err))
		}
		return nil
	})
	err := runCoordinator(coordCtx, cargs, env, c.stdout, c.stderr)
	stopWorker()
	g.Wait()
	if err != nil && ctx.Err() == nil && coordCtx.Err() != nil {
		return context.Cause(coordCtx)
	}
	return err
}

// runWorkerHost finds the coordinator, gets the cluster secret and works
// on the job. It succeeds when the job committed, also when the
// coordinator finished it before this worker could join.
func (c *containerRun) runWorkerHost(ctx context.Context, out *storage.Bucket, secret string) error {
	addrs, err := container.ResolveHost(ctx, c.sm.Coordinator, hostLookup(c.hostAddrs), c.resolveTimeout)
	if err != nil {
		return err
	}
	if secret == "" {
		var done bool
		secret, done, err = waitSecret(ctx, out, pipeline.ClusterSecretKey(c.f.jobName), c.f.jobName, c.secretTimeout)
		if err != nil {
			return err
		}
		if done {
			c.log.Info("the job committed before this worker joined", "job", c.f.jobName)
			return nil
		}
	}
	wargs := append([]string{"--coordinator", "http://" + net.JoinHostPort(addrs[0], strconv.Itoa(c.port)),
		"--name", c.sm.CurrentHost, "--workers", strconv.Itoa(c.f.workers), "--log-format", c.f.logFormat}, c.storeArgs()...)
	err = runWorker(ctx, wargs, withSecret(c.env, secret), c.stdout, c.stderr)
	if err != nil && ctx.Err() == nil && pipeline.Committed(ctx, out, c.f.jobName) {
		c.log.Info("the job committed without this worker", "job", c.f.jobName, "worker_error", err.Error())
		return nil
	}
	return err
}

func withSecret(env func(string) string, secret string) func(string) string {
	return func(k string) string {
		if k == "SHARDPREP_CLUSTER_SECRET" {
			return secret
		}
		return env(k)
	}
}

// rootFromArgs finds --sagemaker-root before the flags are parsed: the
// platform files it points to may hold the arguments.
func rootFromArgs(args []string) string {
	root := "/"
	for i := 0; i < len(args) && args[i] != "--"; i++ {
		name, value, hasValue := splitFlagArg(args[i])
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

// hasJobArgs reports whether args hold anything besides the container's
// own flags.
func hasJobArgs(args []string) bool {
	for i := 0; i < len(args); i++ {
		name, _, hasValue := splitFlagArg(args[i])
		if !containerOnly[name] {
			return true
		}
		if !hasValue {
			i++ // the flag's value
		}
	}
	return false
}

// splitFlagArg splits "-name", "--name" or "--name=value"; name is "" for
// an argument that is not a flag.
func splitFlagArg(a string) (name, value string, hasValue bool) {
	s, ok := strings.CutPrefix(a, "-")
	if !ok || a == "--" {
		return "", "", false
	}
	s = strings.TrimPrefix(s, "-")
	return strings.Cut(s, "=")
}

func firstLocal(cs []container.Channel) (string, bool) {
	for _, c := range cs {
		if c.LocalPath != "" {
			return c.LocalPath, true
		}
	}
	return "", false
}

// containerOnly are the container's own flags, not passed on to the role.
var containerOnly = map[string]bool{"sagemaker-root": true, "host": true, "cluster-port": true,
	"host-address": true, "resolve-timeout": true, "secret-timeout": true, "lease": true}

// jobArgs rebuilds run's flags from the parsed and completed ones.
func (c *containerRun) jobArgs() []string {
	var out []string
	c.fs.VisitAll(func(fl *flag.Flag) {
		switch {
		case containerOnly[fl.Name], fl.Name == "input":
			return
		}
		if v := fl.Value.String(); v != fl.DefValue || fl.Name == "output" || fl.Name == "job-name" || fl.Name == "credentials" {
			out = append(out, "--"+fl.Name+"="+v)
		}
	})
	for _, in := range c.f.inputs {
		out = append(out, "--input="+in)
	}
	return out
}

// storeArgs rebuilds the storage flags a worker needs.
func (c *containerRun) storeArgs() []string {
	var sf storeFlags
	names := flag.NewFlagSet("", flag.ContinueOnError)
	sf.register(names)
	var out []string
	names.VisitAll(func(n *flag.Flag) {
		fl := c.fs.Lookup(n.Name)
		if fl != nil && (fl.Value.String() != fl.DefValue || n.Name == "credentials") {
			out = append(out, "--"+fl.Name+"="+fl.Value.String())
		}
	})
	return out
}

func hostLookup(overrides stringList) func(context.Context, string) ([]string, error) {
	m := map[string]string{}
	for _, o := range overrides {
		if name, addr, ok := strings.Cut(o, "="); ok {
			m[name] = addr
		}
	}
	return func(ctx context.Context, host string) ([]string, error) {
		if a, ok := m[host]; ok {
			return []string{a}, nil
		}
		return net.DefaultResolver.LookupHost(ctx, host)
	}
}

// waitSecret polls key until the coordinator has published the cluster
// secret, the job turns out committed already (done), timeout passes or
// ctx ends.
func waitSecret(ctx context.Context, b *storage.Bucket, key, job string, timeout time.Duration) (secret string, done bool, err error) {
	deadline := time.Now().Add(timeout)
	wait := 100 * time.Millisecond
	for {
		rc, err := b.NewRangeReader(ctx, key, "", 0, -1)
		if err == nil {
			data, rerr := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if rerr != nil {
				return "", false, fmt.Errorf("reading the cluster secret at %s: %w", b.URL(key), rerr)
			}
			if s := strings.TrimSpace(string(data)); len(s) >= 16 {
				return s, false, nil
			}
			return "", false, fmt.Errorf("the cluster secret at %s is too short (%d bytes)", b.URL(key), len(data))
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", false, fmt.Errorf("reading the cluster secret at %s: %w", b.URL(key), err)
		}
		if pipeline.Committed(ctx, b, job) {
			return "", true, nil
		}
		if time.Now().After(deadline) {
			return "", false, fmt.Errorf("the coordinator published no cluster secret at %s within %s", b.URL(key), timeout)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return "", false, fmt.Errorf("waiting for the cluster secret: %w", ctx.Err())
		}
		wait = min(2*wait, time.Second)
	}
}

// logLines logs each line written to it, so that a command's plain stdout
// lines reach a log reader as JSON lines too.
type logLines struct {
	log *slog.Logger

	mu  sync.Mutex
	buf []byte
}

func (w *logLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(w.buf[:i])); line != "" {
			w.log.Info(line)
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
