package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shardprep/shardprep/pipeline"
)

// Defaults of the coordinator's --lease and --linger and the worker's
// --coordinator-timeout, also the container's.
const (
	defaultLease              = 30 * time.Second
	defaultLinger             = 30 * time.Second
	defaultCoordinatorTimeout = 60 * time.Second
)

// coordinatorConfig is the coordinator's settings: its job, the local
// worker's slots in runConfig.workers (0 for none) and how it serves.
type coordinatorConfig struct {
	runConfig
	listen string
	lease  time.Duration
	linger time.Duration
	secret []byte // signs every request; at least 16 bytes
}

// workerConfig is a worker's settings.
type workerConfig struct {
	coordinator string // URL
	workers     int    // splits processed at once
	name        string // default: host-pid
	timeout     time.Duration
	logFormat   logFormat
	store       storeFlags
	secret      []byte
}

// clusterSecretEnv holds the cluster secret of the coordinator and worker
// commands.
const clusterSecretEnv = "SHARDPREP_CLUSTER_SECRET"

func checkSecret(secret []byte) error {
	if len(secret) < 16 {
		return usagef("SHARDPREP_CLUSTER_SECRET must be set to the cluster's shared secret (at least 16 characters)")
	}
	return nil
}

func parseCoordinator(args []string, env func(string) string, stderr io.Writer) (*coordinatorConfig, error) {
	cfg := &coordinatorConfig{secret: []byte(env(clusterSecretEnv))}
	fs := newFlagSet("coordinator", coordinatorUsage, stderr)
	cfg.register(fs)
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:7070", "`ADDR` to serve the coordinator protocol on")
	fs.DurationVar(&cfg.lease, "lease", defaultLease, "a worker silent this long loses its tasks")
	fs.DurationVar(&cfg.linger, "linger", defaultLinger, "after the commit, how long to keep answering workers that have not yet heard")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	cfg.inputs = append(cfg.inputs, fs.Args()...)
	return cfg, nil
}

func (cfg *coordinatorConfig) check() error {
	if err := checkSecret(cfg.secret); err != nil {
		return err
	}
	if cfg.workers < 0 {
		return usagef("--workers must be 0 or more")
	}
	if cfg.lease < 100*time.Millisecond {
		return usagef("--lease must be at least 100ms")
	}
	if cfg.linger < 0 {
		return usagef("--linger must not be negative")
	}
	return nil
}

// runCoordinator serves the job of cfg to workers until it ends, with a
// local worker of cfg.workers slots unless that is 0.
func runCoordinator(ctx context.Context, cfg *coordinatorConfig, env func(string) string, stdout, stderr io.Writer) error {
	if err := cfg.check(); err != nil {
		return err
	}
	log, stdout := cfg.outputs(stdout, stderr, env)
	p, err := prepare(ctx, &cfg.runConfig, env, log)
	if err != nil {
		return err
	}
	defer p.finish(ctx, log) // also when the coordinator cannot start
	prog := newProgress(stderr, log, cfg.quiet)
	c, err := pipeline.NewCoordinator(p.job, p.src, outputSink{p.sink}, &pipeline.CoordinatorOptions{LeaseTTL: cfg.lease, Logger: log,
		Model: p.model, Workers: cfg.workers, Progress: prog.update, ProgressEvery: prog.every(), GrantCalls: p.stores.grantCalls})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	srv := pipeline.NewServer(c, cfg.secret, log)
	var serving errgroup.Group
	defer serving.Wait()
	defer srv.Close()
	serving.Go(func() error { return srv.Serve(ln) })
	fmt.Fprintf(stdout, "shardprep: coordinator listening on %s, writing to %s\n", ln.Addr(), p.output)
	log.Info("coordinator listening", "addr", ln.Addr().String(), "output", p.output)

	start := time.Now()
	m, err := c.Run(ctx)
	prog.finish()
	logWorkers(log, c.Workers())
	// Let workers hear the outcome before the server goes away; when
	// interrupted, only for a few heartbeats, so that they stop at once
	// rather than after their coordinator timeout.
	wait := cfg.linger
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
// throughput while it worked.
func logWorkers(log *slog.Logger, ws []pipeline.WorkerStatus) {
	for _, w := range ws {
		mbps := 0.0
		if w.Active > 0 {
			mbps = float64(w.Bytes) / 1e6 / w.Active.Seconds()
		}
		log.Info("worker summary", "worker", w.Worker, "tasks", w.Tasks, "rows", w.Rows, "bytes", w.Bytes,
			"mb_per_s", float64(int(mbps*10))/10, "lost_a_lease", w.Lost)
	}
}

func parseWorker(args []string, env func(string) string, stderr io.Writer) (*workerConfig, error) {
	cfg := &workerConfig{secret: []byte(env(clusterSecretEnv))}
	fs := newFlagSet("worker", workerUsage, stderr)
	fs.StringVar(&cfg.coordinator, "coordinator", "", "coordinator `URL`, e.g. http://10.0.0.1:7070 or 10.0.0.1:7070 (required)")
	fs.IntVar(&cfg.workers, "workers", defaultWorkers(), "splits processed at once by this worker")
	fs.StringVar(&cfg.name, "name", "", "worker name in logs and the manifest (default: host-pid)")
	fs.DurationVar(&cfg.timeout, "coordinator-timeout", defaultCoordinatorTimeout, "give up (exit non-zero) when the coordinator is unreachable this long")
	logFormatVar(fs, &cfg.logFormat, "log `FORMAT`: text, json, or auto (json without a terminal)")
	cfg.store.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (cfg *workerConfig) check() error {
	if cfg.coordinator == "" {
		return usagef("worker needs --coordinator http://HOST:PORT")
	}
	base, err := pipeline.CoordinatorURL(cfg.coordinator)
	if err != nil {
		return &usageError{"--" + err.Error()}
	}
	cfg.coordinator = base
	if cfg.workers < 1 {
		return usagef("--workers must be at least 1")
	}
	if cfg.timeout <= 0 {
		return usagef("--coordinator-timeout must be positive")
	}
	return checkSecret(cfg.secret)
}

// runWorker works on the job of the coordinator of cfg until the job
// ends; it succeeds when the job committed.
func runWorker(ctx context.Context, cfg *workerConfig, env func(string) string, stdout, stderr io.Writer) error {
	if err := cfg.check(); err != nil {
		return err
	}
	name := cfg.name
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	log := newLogger(stderr, cfg.logFormat, env).With("worker", name)
	if err := cfg.store.check(); err != nil {
		return err
	}
	st := newStores(cfg.store, env, log)
	open := func(ctx context.Context, job *pipeline.Job) (pipeline.Source, pipeline.Sink, error) {
		st.flags.JobName = job.Name
		sink, err := st.Bucket(ctx, job.Output, true)
		if err != nil {
			return nil, nil, err
		}
		return newInputSource(st, job.Objects), outputSink{sink}, nil
	}
	w := pipeline.NewWorker(pipeline.NewClient(cfg.coordinator, cfg.secret, nil), open,
		&pipeline.WorkerOptions{ID: name, Slots: cfg.workers, CoordinatorTimeout: cfg.timeout, Logger: log})
	log.Info("worker starting", "coordinator", cfg.coordinator, "slots", cfg.workers)
	if err := w.Run(ctx); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return fmt.Errorf("worker %s interrupted: %w", name, err)
		}
		return fmt.Errorf("worker %s: %w", name, err)
	}
	fmt.Fprintf(stdout, "shardprep: worker %s done; the job committed\n", name)
	return nil
}
