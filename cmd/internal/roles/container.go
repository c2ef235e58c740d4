package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/stores"
	"github.com/shardprep/shardprep/cmd/shardprep/sample"
	"github.com/shardprep/shardprep/container"
	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// Container is a SageMaker Processing container's settings: its job, as
// the flags give it and Complete completes it from the processing job,
// and how the job's hosts find each other.
type Container struct {
	Job
	SM               *container.Job // the processing job, from the platform files
	Root             string         // the folder holding opt/ml (--sagemaker-root)
	CredentialsGiven bool           // Job.Store.Credentials was given, not its default
	Port             int            // the coordinator's TCP port on the first host
	Listen           string         // the interface IP the coordinator listens on
	// Lookup resolves a host name to its addresses.
	Lookup         func(ctx context.Context, host string) ([]string, error)
	ResolveTimeout time.Duration // how long a worker waits for the coordinator's host name to resolve
	SecretTimeout  time.Duration // how long a worker waits for the coordinator's cluster secret
	Lease          time.Duration // the coordinator's lease
}

// Complete fills in from the processing job what the flags leave out,
// resolves the platform's paths under the root (container.Job.Complete)
// and checks the result against the processing job and the settings that
// need no storage. It reads no platform file, only the spec, to learn its
// splits, when the job's ProcessingOutputs decide the output.
func (c *Container) Complete() error {
	f := &c.Job
	s := container.RunSettings{Inputs: f.Inputs, Output: f.Output, JobName: f.Name, Region: f.Store.Region,
		Spec: f.Spec, Model: f.Model, GrantsFile: f.Store.GrantsFile, AccountID: f.Store.AccountID, Credentials: f.Store.Credentials,
		CredentialsGiven: c.CredentialsGiven}
	if f.Output == "" && len(c.SM.Outputs) > 0 {
		var err error
		if s.Splits, err = c.splitNames(); err != nil {
			return err
		}
	}
	if err := c.SM.Complete(c.Root, &s); err != nil {
		return cli.Usagef("%v", err)
	}
	f.Inputs, f.Output, f.Name, f.Store.Region = s.Inputs, s.Output, s.JobName, s.Region
	f.Spec, f.Model, f.Store.GrantsFile, f.Store.Credentials = s.Spec, s.Model, s.GrantsFile, s.Credentials
	return c.check()
}

// splitNames returns the names of the spec's splits. A spec that is not
// on this machine (submit checks a job whose spec is in the container)
// gives nil.
func (c *Container) splitNames() ([]string, error) {
	spec := sample.Spec()
	if c.Spec != "" {
		p := container.PlatformPath(c.Root, c.Spec)
		if _, err := os.Stat(p); err != nil && c.Root == "/" && strings.HasPrefix(p, container.PlatformPrefix) {
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
func (c *Container) check() error {
	f := &c.Job
	if err := c.SM.CheckRun(container.RunSettings{Inputs: f.Inputs, Output: f.Output}); err != nil {
		return cli.Usagef("%v", err)
	}
	if f.Workers < 1 {
		return cli.Usagef("--workers must be at least 1")
	}
	if err := f.settings().Check(); err != nil {
		return cli.Usagef("%v", err)
	}
	return stores.Check(f.Store)
}

// containerRun is one container's run of the job of cfg, logging to log.
type containerRun struct {
	*Container
	pr  *Process
	log *slog.Logger
}

// Container runs the job of the completed cfg as one of the processing
// job's hosts: alone on one host; else the first host coordinates and
// works, the others work. It logs to log, and when its standard output
// is no terminal (or the log format is json) its lines for people become
// log records too, as CloudWatch reads stdout and stderr as one stream of
// JSON lines.
func (pr *Process) Container(ctx context.Context, cfg *Container, log *slog.Logger) error {
	sm := cfg.SM
	q := *pr
	if cfg.LogFormat == "json" || (cfg.LogFormat == "auto" && !cli.IsTerminal(pr.Stdout)) {
		q.Stdout = &logLines{log: cli.NewLogger(pr.Stdout, "json", pr.Env).With("host", sm.CurrentHost, "stream", "stdout")}
	}
	c := &containerRun{Container: cfg, pr: &q, log: log}
	c.log.Info("container starting", "job", cfg.Name, "hosts", len(sm.Hosts), "coordinator", sm.Coordinator,
		"is_coordinator", sm.IsCoordinator, "output", cfg.Output)
	if len(sm.Hosts) <= 1 {
		return c.pr.Run(ctx, &cfg.Job)
	}

	outRoot := storage.Root(cfg.Output)
	secret := pr.Env(SecretEnv)
	s3 := cfg.Store
	s3.JobName = cfg.Name
	out, err := stores.New(s3, pr.Env, log).Bucket(ctx, outRoot, true)
	if err != nil {
		return fmt.Errorf("output %s: %w", cfg.Output, err)
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
		if secret, err = container.PublishSecret(ctx, out, pipeline.ClusterSecretKey(c.Name)); err != nil {
			return err
		}
		c.log.Info("cluster secret published for the workers", "object", out.URL(pipeline.ClusterSecretKey(c.Name)))
		defer c.deleteSecret(ctx, out)
	}
	// By default the coordinator listens on every interface: the other
	// instances reach it over the job's network, on an address that only
	// the platform knows (algo-1's). The host's own worker joins over
	// loopback, or on the one address --listen narrows it to.
	port := strconv.Itoa(c.Port)
	coord := &Coordinator{Job: c.Job, Listen: net.JoinHostPort(c.Listen, port),
		Lease: c.Lease, Linger: DefaultLinger, Secret: []byte(secret)}
	coord.Workers = 0 // the host's own worker joins like the others
	local := c.Listen
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
		err := c.pr.Work(workerCtx, worker)
		if err != nil && workerCtx.Err() == nil && !errors.Is(err, pipeline.ErrJobFailed) {
			// A broken host stops the job rather than leave it waiting.
			stopCoord(fmt.Errorf("the worker on the coordinator's host failed: %w", err))
		}
		return nil
	})
	err := c.pr.Coordinate(coordCtx, coord)
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
	url := out.URL(pipeline.ClusterSecretKey(c.Name))
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := container.DeleteSecret(dctx, out, pipeline.ClusterSecretKey(c.Name)); err != nil {
		c.log.Warn("could not delete the cluster secret", "object", url, "error", err.Error())
		return
	}
	c.log.Info("cluster secret deleted", "object", url)
}

// runWorkerHost finds the coordinator, gets the cluster secret and works
// on the job. It succeeds when the job committed, also when the
// coordinator finished it before this worker could join.
func (c *containerRun) runWorkerHost(ctx context.Context, out *storage.Bucket, secret string) error {
	addrs, err := container.ResolveHost(ctx, c.SM.Coordinator, c.Lookup, c.ResolveTimeout)
	if err != nil {
		return err
	}
	committed := func(ctx context.Context) bool { return pipeline.Committed(ctx, out, c.Name) }
	if secret == "" {
		var done bool
		secret, done, err = container.WaitSecret(ctx, out, pipeline.ClusterSecretKey(c.Name), c.SecretTimeout, committed)
		if err != nil {
			return err
		}
		if done {
			c.log.Info("the job committed before this worker joined", "job", c.Name)
			return nil
		}
	}
	worker := c.workerConfig("http://"+net.JoinHostPort(addrs[0], strconv.Itoa(c.Port)), secret)
	err = c.pr.Work(ctx, worker)
	if err != nil && ctx.Err() == nil && committed(ctx) {
		c.log.Info("the job committed without this worker", "job", c.Name, "worker_error", err.Error())
		return nil
	}
	return err
}

// workerConfig is the settings of this host's worker.
func (c *containerRun) workerConfig(coordinator, secret string) *Worker {
	return &Worker{Coordinator: coordinator, Workers: c.Workers, Name: c.SM.CurrentHost,
		Timeout: DefaultCoordinatorTimeout, LogFormat: c.LogFormat, Store: c.Store, Secret: []byte(secret)}
}
