package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/progress"
	"github.com/shardprep/shardprep/cmd/internal/stores"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// Defaults of the coordinator's lease and linger and the worker's
// coordinator timeout, also the container's.
const (
	DefaultLease              = 30 * time.Second
	DefaultLinger             = 30 * time.Second
	DefaultCoordinatorTimeout = 60 * time.Second
)

// Coordinator is the coordinator's settings: its job, the local worker's
// slots in Job.Workers (0 for none) and how it serves.
type Coordinator struct {
	Job
	Listen string        // the address to serve the protocol on
	Lease  time.Duration // a worker silent this long loses its tasks
	Linger time.Duration // after the end, how long to answer workers that have not heard
	Secret []byte        // signs every request; at least 16 bytes
}

// Worker is a worker's settings.
type Worker struct {
	Coordinator string        // URL, or HOST:PORT
	Workers     int           // splits processed at once
	Name        string        // "": host-pid
	Timeout     time.Duration // give up when the coordinator is unreachable this long
	LogFormat   cli.LogFormat
	Store       storage.S3Config
	Secret      []byte
}

// SecretEnv is the variable holding the cluster secret of the coordinator
// and worker commands.
const SecretEnv = "SHARDPREP_CLUSTER_SECRET"

func checkSecret(secret []byte) error {
	if len(secret) < 16 {
		return cli.Usagef("%s must be set to the cluster's shared secret (at least 16 characters)", SecretEnv)
	}
	return nil
}

func (cfg *Coordinator) check() error {
	if err := checkSecret(cfg.Secret); err != nil {
		return err
	}
	if cfg.Workers < 0 {
		return cli.Usagef("--workers must be 0 or more")
	}
	if cfg.Lease < 100*time.Millisecond {
		return cli.Usagef("--lease must be at least 100ms")
	}
	if cfg.Linger < 0 {
		return cli.Usagef("--linger must not be negative")
	}
	return nil
}

// Coordinate serves the job of cfg to workers until it ends, with a local
// worker of cfg.Workers slots unless that is 0.
func (pr *Process) Coordinate(ctx context.Context, cfg *Coordinator) error {
	if err := cfg.check(); err != nil {
		return err
	}
	log, stdout := cfg.outputs(pr.Stdout, pr.Stderr, pr.Env)
	// Listening before the job is planned, the workers started with the
	// coordinator connect at once and wait for the server (in the
	// listener's queue) instead of trying again until it listens.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	defer ln.Close()
	if cfg.Workers > 0 {
		pr.adviseHeapSoon()
	}
	p, err := prepare(ctx, &cfg.Job, pr.Env, log)
	if err != nil {
		return err
	}
	defer p.finish(ctx, log) // also when the coordinator cannot start
	prog := progress.New(pr.Stderr, cli.IsTerminal(pr.Stderr), log, cfg.Quiet)
	if cfg.Workers > 0 {
		pr.tasksHere()
	}
	c, err := pipeline.NewCoordinator(p.job, p.src, stores.Sink(p.sink), &pipeline.CoordinatorOptions{LeaseTTL: cfg.Lease, Logger: log,
		Model: p.model, Workers: cfg.Workers, Progress: prog.Update, ProgressEvery: prog.Every(), GrantCalls: p.stores.GrantCalls})
	if err != nil {
		return err
	}
	srv := c.Server(cfg.Secret, log)
	var serving errgroup.Group
	defer serving.Wait()
	defer srv.Close()
	serving.Go(func() error { return srv.Serve(ln) })
	fmt.Fprintf(stdout, "shardprep: coordinator listening on %s, writing to %s\n", ln.Addr(), p.output)
	log.Info("coordinator listening", "addr", ln.Addr().String(), "output", p.output)

	start := time.Now()
	m, err := c.Run(ctx)
	prog.Finish()
	logWorkers(log, c, m)
	// Let workers hear the outcome before the server goes away; when
	// interrupted, only for a few heartbeats, so that they stop at once
	// rather than after their coordinator timeout.
	wait := cfg.Linger
	if ctx.Err() != nil {
		wait = min(wait, 5*time.Second)
	}
	c.WaitInformed(context.WithoutCancel(ctx), wait)
	if err != nil {
		writeFailedReport(ctx, c, err, p, stdout)
	}
	p.finish(ctx, log)
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	if err != nil {
		return jobError(ctx, err, p.output)
	}
	printSummary(stdout, m, p.output, time.Since(start))
	return nil
}

// logWorkers logs each worker's share of the job: tasks (fit and transform), rows and its
// throughput while it worked. Those of a committed job are its manifest's (m), so that the
// log accounts for the workers the manifest and the summary name, and not for one that
// joined after the commit began; a job that failed has only the coordinator's (c).
func logWorkers(log *slog.Logger, c *pipeline.Coordinator, m *pipeline.Manifest) {
	shares := c.Workers()
	if m != nil {
		shares = m.Workers
	}
	for _, w := range shares {
		mbps := 0.0
		if w.Active > 0 {
			mbps = float64(w.Bytes) / 1e6 / w.Active.Seconds()
		}
		log.Info("worker summary", "worker", w.Worker, "tasks", w.Tasks, "rows", w.Rows, "bytes", w.Bytes,
			"mb_per_s", float64(int(mbps*10))/10, "lost_a_lease", w.Lost)
	}
}

func (cfg *Worker) check() error {
	if cfg.Coordinator == "" {
		return cli.Usagef("worker needs --coordinator http://HOST:PORT")
	}
	base, err := pipeline.CoordinatorURL(cfg.Coordinator)
	if err != nil {
		return cli.Usagef("--%v", err)
	}
	cfg.Coordinator = base
	if cfg.Workers < 1 {
		return cli.Usagef("--workers must be at least 1")
	}
	if cfg.Timeout <= 0 {
		return cli.Usagef("--coordinator-timeout must be positive")
	}
	if err := checkSecret(cfg.Secret); err != nil {
		return err
	}
	return stores.Check(cfg.Store)
}

// Work works on the job of the coordinator of cfg until the job ends; it
// succeeds when the job committed.
func (pr *Process) Work(ctx context.Context, cfg *Worker) error {
	if err := cfg.check(); err != nil {
		return err
	}
	pr.adviseHeapSoon()
	name := cfg.Name
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	log := cli.NewLogger(pr.Stderr, cfg.LogFormat, pr.Env).With("worker", name)
	open := func(ctx context.Context, job *pipeline.Job) (pipeline.Source, pipeline.Sink, error) {
		// Joined (the coordinator knows of this worker) while the heap's
		// advice went on.
		pr.tasksHere()
		s3 := cfg.Store
		s3.JobName = job.Name
		st := stores.New(s3, pr.Env, log)
		sink, err := st.Bucket(ctx, job.Output, true)
		if err != nil {
			return nil, nil, err
		}
		return st.Source(job.Objects), stores.Sink(sink), nil
	}
	w := pipeline.NewWorker(cfg.Coordinator, cfg.Secret, open,
		&pipeline.WorkerOptions{ID: name, Slots: cfg.Workers, CoordinatorTimeout: cfg.Timeout, Logger: log})
	log.Info("worker starting", "coordinator", cfg.Coordinator, "slots", cfg.Workers)
	if err := w.Run(ctx); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return fmt.Errorf("worker %s interrupted: %w", name, err)
		}
		return fmt.Errorf("worker %s: %w", name, err)
	}
	fmt.Fprintf(pr.Stdout, "shardprep: worker %s done; the job committed\n", name)
	return nil
}
