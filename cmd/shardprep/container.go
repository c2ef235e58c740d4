package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shardprep/shardprep/container"
	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// containerRun is one container's view of the job, resolved from the
// platform files and the flags.
type containerRun struct {
	sm   *container.Job
	root string // --sagemaker-root, found before parsing
	job  runConfig
	fs   *flag.FlagSet

	rootFlag       string // --sagemaker-root as parsed: must be root
	host           string
	port           int
	listen         string // the coordinator's interface address
	hostAddrs      stringList
	lookup         func(context.Context, string) ([]string, error)
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
	root := container.RootFromArgs(args)
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

// register makes the container's flag set: run's flags and its own
// (container.HasJobArgs tells them apart).
func (c *containerRun) register() {
	c.fs = newFlagSet("container", containerUsage, c.stderr)
	c.job.register(c.fs)
	c.fs.StringVar(&c.rootFlag, "sagemaker-root", "/", "`DIR` holding opt/ml (a fake tree in tests); must be given on the command line")
	c.fs.StringVar(&c.host, "host", "", "this instance's host name (default: current_host from resourceconfig.json)")
	c.fs.IntVar(&c.port, "cluster-port", 7070, "TCP port of the coordinator on the first host")
	c.fs.StringVar(&c.listen, "listen", "0.0.0.0", "interface `IP` the coordinator listens on, with --cluster-port; 0.0.0.0 is every interface, as the other instances connect over the job's network")
	c.fs.Var(&c.hostAddrs, "host-address", "`NAME=ADDR` address of a host without asking DNS (repeatable; for tests)")
	c.fs.DurationVar(&c.resolveTimeout, "resolve-timeout", 5*time.Minute, "how long a worker waits for the coordinator's host name to resolve")
	c.fs.DurationVar(&c.secretTimeout, "secret-timeout", 5*time.Minute, "how long a worker waits for the coordinator's cluster secret")
	c.fs.DurationVar(&c.lease, "lease", defaultLease, "a worker silent this long loses its tasks")
}

// newContainerRun loads the platform files, parses the flags (translating
// the seed script's) and fills what the flags leave out from the job.
func newContainerRun(root string, args []string, env func(string) string, stdout, stderr io.Writer) (*containerRun, error) {
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		// Help needs no platform files.
		c := &containerRun{stderr: stderr}
		c.register()
		c.fs.Usage()
		return nil, flag.ErrHelp
	}
	sm, err := container.Load(os.DirFS(root), env)
	if err != nil {
		return nil, fmt.Errorf("reading the SageMaker Processing configuration: %w", err)
	}
	c, err := parseContainerJob(sm, root, args, env, stderr)
	if err != nil {
		return nil, err
	}
	c.log = newLogger(stderr, c.job.logFormat, env).With("host", sm.CurrentHost)
	c.stdout = stdout
	if c.job.logFormat == "json" || (c.job.logFormat == "auto" && !isTerminal(stdout)) {
		// CloudWatch reads stdout and stderr as one stream of JSON lines.
		c.stdout = &logLines{log: newLogger(stdout, "json", env).With("host", sm.CurrentHost, "stream", "stdout")}
	}
	return c, nil
}

// parseContainerJob is the container's reading of its arguments for the
// processing job sm, with root as --sagemaker-root: it parses them,
// completes the run from the job and checks everything that can be
// checked before the run reads any data. It reads no platform file (only
// the spec, to learn its splits, when the job's ProcessingOutputs decide
// the output), so "shardprep submit" runs it on the job that its request
// describes, to refuse before the job starts what the container would
// refuse after.
func parseContainerJob(sm *container.Job, root string, args []string, env func(string) string, stderr io.Writer) (*containerRun, error) {
	c := &containerRun{sm: sm, root: root, env: env, stderr: stderr}
	if err := c.parse(args); err != nil {
		return nil, err
	}
	if err := c.complete(); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// parse parses args, followed by the job's ContainerArguments when args
// hold only the container's own flags, and checks the container's own
// flags.
func (c *containerRun) parse(args []string) error {
	if !container.HasJobArgs(args) {
		args = append(slices.Clip(args), c.sm.Arguments...)
	}
	translated, err := container.TranslateArgs(args)
	if err != nil {
		return &usageError{err.Error()}
	}
	c.register()
	if err := parseFlags(c.fs, translated); err != nil {
		return err
	}
	if c.rootFlag != c.root {
		return usagef("--sagemaker-root must be given on the command line, not in the job's ContainerArguments")
	}
	if c.port < 1 || c.port > 65535 {
		return usagef("--cluster-port %d: not a TCP port", c.port)
	}
	if net.ParseIP(c.listen) == nil {
		return usagef("--listen %q: want an IP address of this host (0.0.0.0 for every interface), the port being --cluster-port", c.listen)
	}
	if c.lookup, err = container.HostLookup(c.hostAddrs); err != nil {
		return &usageError{err.Error()}
	}
	if c.host != "" {
		if err := c.sm.SetHost(c.host); err != nil {
			return &usageError{err.Error()}
		}
	}
	c.job.inputs = append(c.job.inputs, c.fs.Args()...)
	return nil
}

// complete fills in from the processing job what the flags leave out and
// resolves the platform's paths under the root (container.Job.Complete).
func (c *containerRun) complete() error {
	f := &c.job
	s := container.RunSettings{Inputs: f.inputs, Output: f.output, JobName: f.jobName, Region: f.store.Region,
		Spec: f.spec, Model: f.model, GrantsFile: f.store.GrantsFile, AccountID: f.store.AccountID, Credentials: f.store.Credentials}
	c.fs.Visit(func(fl *flag.Flag) { s.CredentialsGiven = s.CredentialsGiven || fl.Name == "credentials" })
	if f.output == "" && len(c.sm.Outputs) > 0 {
		var err error
		if s.Splits, err = c.splitNames(); err != nil {
			return err
		}
	}
	if err := c.sm.Complete(c.root, &s); err != nil {
		return &usageError{err.Error()}
	}
	f.inputs, f.output, f.jobName, f.store.Region = s.Inputs, s.Output, s.JobName, s.Region
	f.spec, f.model, f.store.GrantsFile, f.store.Credentials = s.Spec, s.Model, s.GrantsFile, s.Credentials
	return nil
}

// splitNames returns the names of the spec's splits. A spec that is not
// on this machine (submit checks a job whose spec is in the container)
// gives nil.
func (c *containerRun) splitNames() ([]string, error) {
	spec := defaultSpec()
	if c.job.spec != "" {
		p := container.PlatformPath(c.root, c.job.spec)
		if _, err := os.Stat(p); err != nil && c.root == "/" && strings.HasPrefix(p, container.PlatformPrefix) {
			return nil, nil
		}
		var err error
		if spec, err = readJSONFile(p, "spec", features.ParseSpec); err != nil {
			return nil, err
		}
	}
	names := []string{}
	for _, sp := range spec.Splits {
		names = append(names, sp.Name)
	}
	return names, nil
}

// check checks the completed run against the processing job and the
// settings that need no storage.
func (c *containerRun) check() error {
	f := &c.job
	if err := c.sm.CheckRun(container.RunSettings{Inputs: f.inputs, Output: f.output}); err != nil {
		return &usageError{err.Error()}
	}
	if f.workers < 1 {
		return usagef("--workers must be at least 1")
	}
	if _, err := pipeline.ParseSplitMode(f.splitMode); err != nil {
		return &usageError{err.Error()}
	}
	if _, err := pipeline.ParsePolicy(f.onInvalid); err != nil {
		return &usageError{err.Error()}
	}
	return f.store.check()
}

func (c *containerRun) run(ctx context.Context) error {
	sm := c.sm
	c.log.Info("container starting", "job", c.job.jobName, "hosts", len(sm.Hosts), "coordinator", sm.Coordinator,
		"is_coordinator", sm.IsCoordinator, "output", c.job.output)
	if len(sm.Hosts) <= 1 {
		return runJob(ctx, &c.job, c.env, c.stdout, c.stderr)
	}

	outRoot := storage.Root(c.job.output)
	secret := c.env(clusterSecretEnv)
	sf := c.job.store
	sf.JobName = c.job.jobName
	out, err := newStores(sf, c.env, c.log).Bucket(ctx, outRoot, true)
	if err != nil {
		return fmt.Errorf("output %s: %w", c.job.output, err)
	}
	if sm.IsCoordinator {
		return c.runCoordinatorHost(ctx, out, secret)
	}
	return c.runWorkerHost(ctx, out, secret)
}

// runCoordinatorHost serves the job on the first host, with a worker named
// after the host joining it over loopback like any other.
func (c *containerRun) runCoordinatorHost(ctx context.Context, out *storage.Bucket, secret string) error {
	if secret == "" {
		var err error
		if secret, err = container.PublishSecret(ctx, out, pipeline.ClusterSecretKey(c.job.jobName)); err != nil {
			return err
		}
		c.log.Info("cluster secret published for the workers", "object", out.URL(pipeline.ClusterSecretKey(c.job.jobName)))
		defer c.deleteSecret(ctx, out)
	}
	// By default the coordinator listens on every interface: the other
	// instances reach it over the job's network, on an address that only
	// the platform knows (algo-1's). The host's own worker joins over
	// loopback, or on the one address --listen narrows it to.
	port := strconv.Itoa(c.port)
	coord := &coordinatorConfig{runConfig: c.job, listen: net.JoinHostPort(c.listen, port),
		lease: c.lease, linger: defaultLinger, secret: []byte(secret)}
	coord.workers = 0 // the host's own worker joins like the others
	local := c.listen
	if net.ParseIP(local).IsUnspecified() {
		local = "127.0.0.1"
	}
	worker := c.workerConfig("http://"+net.JoinHostPort(local, port), secret)

	coordCtx, stopCoord := context.WithCancelCause(ctx)
	defer stopCoord(nil)
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	var g errgroup.Group
	g.Go(func() error {
		err := runWorker(workerCtx, worker, c.env, c.stdout, c.stderr)
		if err != nil && workerCtx.Err() == nil && !errors.Is(err, pipeline.ErrJobFailed) {
			// A broken host stops the job rather than leave it waiting.
			stopCoord(fmt.Errorf("the worker on the coordinator's host failed: %w", err))
		}
		return nil
	})
	err := runCoordinator(coordCtx, coord, c.env, c.stdout, c.stderr)
	stopWorker()
	g.Wait()
	if err != nil && ctx.Err() == nil && coordCtx.Err() != nil {
		return context.Cause(coordCtx)
	}
	return err
}

// deleteSecret deletes the cluster secret that runCoordinatorHost
// published, also when ctx has ended.
func (c *containerRun) deleteSecret(ctx context.Context, out *storage.Bucket) {
	url := out.URL(pipeline.ClusterSecretKey(c.job.jobName))
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := container.DeleteSecret(dctx, out, pipeline.ClusterSecretKey(c.job.jobName)); err != nil {
		c.log.Warn("could not delete the cluster secret", "object", url, "error", err.Error())
		return
	}
	c.log.Info("cluster secret deleted", "object", url)
}

// runWorkerHost finds the coordinator, gets the cluster secret and works
// on the job. It succeeds when the job committed, also when the
// coordinator finished it before this worker could join.
func (c *containerRun) runWorkerHost(ctx context.Context, out *storage.Bucket, secret string) error {
	addrs, err := container.ResolveHost(ctx, c.sm.Coordinator, c.lookup, c.resolveTimeout)
	if err != nil {
		return err
	}
	committed := func(ctx context.Context) bool { return pipeline.Committed(ctx, out, c.job.jobName) }
	if secret == "" {
		var done bool
		secret, done, err = container.WaitSecret(ctx, out, pipeline.ClusterSecretKey(c.job.jobName), c.secretTimeout, committed)
		if err != nil {
			return err
		}
		if done {
			c.log.Info("the job committed before this worker joined", "job", c.job.jobName)
			return nil
		}
	}
	worker := c.workerConfig("http://"+net.JoinHostPort(addrs[0], strconv.Itoa(c.port)), secret)
	err = runWorker(ctx, worker, c.env, c.stdout, c.stderr)
	if err != nil && ctx.Err() == nil && committed(ctx) {
		c.log.Info("the job committed without this worker", "job", c.job.jobName, "worker_error", err.Error())
		return nil
	}
	return err
}

// workerConfig is the settings of this host's worker.
func (c *containerRun) workerConfig(coordinator, secret string) *workerConfig {
	return &workerConfig{coordinator: coordinator, workers: c.job.workers, name: c.sm.CurrentHost,
		timeout: defaultCoordinatorTimeout, logFormat: c.job.logFormat, store: c.job.store, secret: []byte(secret)}
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

// summary logs a committed job's summary as one event with the fields of
// printSummary's lines.
func (w *logLines) summary(m *pipeline.Manifest, output string, wall time.Duration) {
	secs := wall.Seconds()
	var rows []any
	for _, s := range m.Spec.Splits {
		rows = append(rows, slog.Int64(s.Name, m.Totals.RowsOut[s.Name]))
	}
	attrs := []any{"output", output, "rows_read", m.Totals.RowsIn + m.Totals.Rejected, "objects", len(m.Inputs),
		"bytes", m.Totals.BytesIn, "splits", len(m.Parts), slog.Group("rows_out", rows...), "rejected", m.Totals.Rejected,
		"seed", m.Seed, "split_mode", m.SplitMode, "wall_s", round2(secs),
		"mb_per_s", round2(float64(m.Totals.BytesIn) / 1e6 / secs), "rows_per_s", int64(float64(m.Totals.RowsIn) / secs)}
	if len(m.Workers) > 1 {
		var ws []any
		for _, s := range m.Workers {
			ws = append(ws, slog.Group(s.Worker, "tasks", s.Tasks, "rows", s.Rows))
		}
		attrs = append(attrs, slog.Group("workers", ws...))
	}
	w.log.Info("job summary", attrs...)
}

func round2(f float64) float64 { return float64(int64(f*100)) / 100 }
