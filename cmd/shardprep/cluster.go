package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/shardprep/shardprep/pipeline"
)

const coordinatorUsage = `Usage: shardprep coordinator --listen ADDR [run flags]

Runs a job as the coordinator of a cluster: it lists the inputs, plans the
splits, hands fit and transform tasks to workers under leases, merges their
fit statistics into the model and commits the output when every split is
done. It also works on splits itself (--workers of them at once; 0 for
none). Workers may join at any time; a worker silent for --lease loses its
tasks to others. After the commit it keeps answering for up to --linger so
that every worker learns the job committed.

Every request must be signed with the cluster secret from the environment
variable SHARDPREP_CLUSTER_SECRET (the same on every host; never logged).

Example:
  SHARDPREP_CLUSTER_SECRET=$(openssl rand -hex 32) \
    shardprep coordinator --listen 0.0.0.0:7070 --input s3://bucket/data/ --output s3://bucket/out/

Flags:
`

const workerUsage = `Usage: shardprep worker --coordinator http://HOST:PORT [flags]

Joins a coordinator and works on its job's splits until the job ends. The
worker reads and writes storage with its own credentials (the flags below);
none cross the coordinator protocol. It exits 0 only when the coordinator
reports the job committed, and non-zero if the job fails or the coordinator
stays unreachable for --coordinator-timeout.

The cluster secret comes from SHARDPREP_CLUSTER_SECRET.

Example:
  SHARDPREP_CLUSTER_SECRET=... shardprep worker --coordinator http://10.0.0.1:7070

Flags:
`

func clusterSecret(env func(string) string) ([]byte, error) {
	s := env("SHARDPREP_CLUSTER_SECRET")
	if len(s) < 16 {
		return nil, usagef("SHARDPREP_CLUSTER_SECRET must be set to the cluster's shared secret (at least 16 characters)")
	}
	return []byte(s), nil
}

func runCoordinator(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	var f jobFlags
	fs := newFlagSet("coordinator", coordinatorUsage, stderr)
	f.register(fs)
	listen := fs.String("listen", "127.0.0.1:7070", "`ADDR` to serve the coordinator protocol on")
	lease := fs.Duration("lease", 30*time.Second, "a worker silent this long loses its tasks")
	linger := fs.Duration("linger", 30*time.Second, "after the commit, how long to keep answering workers that have not yet heard")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	f.inputs = append(f.inputs, fs.Args()...)
	secret, err := clusterSecret(env)
	if err != nil {
		return err
	}
	if f.workers < 0 {
		return usagef("--workers must be 0 or more")
	}
	if *lease < 100*time.Millisecond {
		return usagef("--lease must be at least 100ms")
	}
	if *linger < 0 {
		return usagef("--linger must not be negative")
	}
	slots := f.workers
	if slots == 0 {
		f.workers = 1 // prepare's check; no local worker runs
	}
	log := newLogger(stderr, f.logFormat, env)
	p, err := prepare(ctx, &f, env, log)
	if err != nil {
		return err
	}
	prog := newProgress(stderr, log, f.quiet)
	c, err := pipeline.NewCoordinator(p.job, p.src, p.sink, &pipeline.CoordinatorOptions{LeaseTTL: *lease, Logger: log,
		Model: p.model, Workers: slots, Progress: prog.update, ProgressEvery: prog.every()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	srv := &http.Server{Handler: pipeline.NewHandler(c, secret, log), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Fprintf(stdout, "shardprep: coordinator listening on %s, writing to %s\n", ln.Addr(), p.output)
	log.Info("coordinator listening", "addr", ln.Addr().String(), "output", p.output)

	start := time.Now()
	res, err := c.Run(ctx)
	prog.finish()
	logWorkers(log, c.Workers())
	// Let workers hear the outcome before the server goes away; when
	// interrupted, only for a few heartbeats, so that they stop at once
	// rather than after their coordinator timeout.
	wait := *linger
	if ctx.Err() != nil {
		wait = min(wait, 5*time.Second)
	}
	c.WaitInformed(context.WithoutCancel(ctx), wait)
	if serr := p.sink.Sweep(context.WithoutCancel(ctx)); serr != nil {
		log.Warn("could not remove staging files of stopped workers", "error", serr)
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	if err != nil {
		return jobError(ctx, err, p.output)
	}
	printSummary(stdout, res, p.output, time.Since(start))
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

func runWorker(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("worker", workerUsage, stderr)
	coord := fs.String("coordinator", "", "coordinator `URL`, e.g. http://10.0.0.1:7070 (required)")
	slots := fs.Int("workers", defaultWorkers(), "splits processed at once by this worker")
	name := fs.String("name", "", "worker name in logs and the manifest (default: host-pid)")
	timeout := fs.Duration("coordinator-timeout", 60*time.Second, "give up (exit non-zero) when the coordinator is unreachable this long")
	logFormat := fs.String("log-format", "auto", "log format: text, json, or auto")
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *coord == "" {
		return usagef("worker needs --coordinator http://HOST:PORT")
	}
	if *slots < 1 {
		return usagef("--workers must be at least 1")
	}
	if *timeout <= 0 {
		return usagef("--coordinator-timeout must be positive")
	}
	secret, err := clusterSecret(env)
	if err != nil {
		return err
	}
	if *name == "" {
		host, _ := os.Hostname()
		*name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	log := newLogger(stderr, *logFormat, env).With("worker", *name)
	if err := sf.check(); err != nil {
		return err
	}
	st := newStores(sf, env, log)
	open := func(ctx context.Context, job *pipeline.Job) (pipeline.Source, pipeline.Sink, error) {
		st.flags.jobName = job.Name
		sink, err := st.bucket(ctx, job.Output, true)
		if err != nil {
			return nil, nil, err
		}
		return newInputSource(st, job.Objects), sink, nil
	}
	w := pipeline.NewWorker(pipeline.NewClient(*coord, secret, nil), open,
		&pipeline.WorkerOptions{ID: *name, Slots: *slots, CoordinatorTimeout: *timeout, Logger: log})
	log.Info("worker starting", "coordinator", *coord, "slots", *slots)
	if err := w.Run(ctx); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return fmt.Errorf("worker %s interrupted: %w", *name, err)
		}
		return fmt.Errorf("worker %s: %w", *name, err)
	}
	fmt.Fprintf(stdout, "shardprep: worker %s done; the job committed\n", *name)
	return nil
}
