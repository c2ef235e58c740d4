package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

const version = pipeline.Version

// parseRun parses run's flags; positional arguments are more inputs.
func parseRun(args []string, _ func(string) string, stderr io.Writer) (*runConfig, error) {
	var cfg runConfig
	fs := newFlagSet("run", runUsage, stderr)
	cfg.register(fs)
	fs.StringVar(&cfg.metrics, "metrics", "", "serve live metrics (Prometheus text format) at http://`ADDR`/metrics while the job runs")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	cfg.inputs = append(cfg.inputs, fs.Args()...)
	return &cfg, nil
}

// runJob runs the job of cfg in this process.
func runJob(ctx context.Context, cfg *runConfig, env func(string) string, stdout, stderr io.Writer) error {
	if cfg.workers < 1 {
		return usagef("--workers must be at least 1")
	}
	log, stdout := cfg.outputs(stdout, stderr, env)
	p, err := prepare(ctx, cfg, env, log)
	if err != nil {
		return err
	}
	defer p.finish(ctx, log)
	fmt.Fprintf(stdout, "shardprep: writing to %s\n", p.output)
	prog := newProgress(stderr, log, cfg.quiet)
	start := time.Now()
	c, err := pipeline.NewRun(p.job, p.src, outputSink{p.sink}, &pipeline.CoordinatorOptions{
		Model: p.model, Workers: cfg.workers, Logger: log, Progress: prog.update, ProgressEvery: prog.every(),
		GrantCalls: p.stores.grantCalls,
	})
	if err != nil {
		return err
	}
	if cfg.metrics != "" {
		stop, err := serveMetrics(c, cfg.metrics, stdout)
		if err != nil {
			return err
		}
		defer stop()
	}
	m, err := c.Run(ctx)
	prog.finish()
	p.finish(ctx, log)
	if err != nil {
		writeFailedReport(c, err, stdout)
		return jobError(ctx, err, p.output)
	}
	printSummary(stdout, m, p.output, time.Since(start))
	if n := p.stores.grantCalls(); n > 0 {
		fmt.Fprintf(stdout, "  grant calls %d (GetDataAccess or AssumeRole)\n", n)
	}
	return nil
}

// jobError words a failed job's error for its one line.
func jobError(ctx context.Context, err error, output string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted; nothing was committed to %s: %w", output, context.Canceled)
	}
	return fmt.Errorf("%w (nothing was committed to %s)", err, output)
}

// prepared is a planned job with its storage.
type prepared struct {
	job    *pipeline.Job
	model  *features.Model // given with --model; nil: fit one
	src    pipeline.Source
	sink   *storage.Bucket
	claim  *pipeline.OutputClaim // held until finish
	output string                // where, for people
	stores *stores
	done   bool // finish has run
}

// prepare lists the inputs, plans the job of cfg and claims its output
// (see pipeline.ClaimOutput); the caller must call finish when it ends.
func prepare(ctx context.Context, cfg *runConfig, env func(string) string, log *slog.Logger) (*prepared, error) {
	spec, settings, model, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	if err := cfg.store.check(); err != nil {
		return nil, err
	}
	cfg.store.JobName = cfg.jobName
	st := newStores(cfg.store, env, log)
	outRoot := storage.Root(cfg.output)
	if outRoot == "" {
		return nil, usagef("--output %s: not a local folder or s3://bucket/prefix", cfg.output)
	}
	inputs := []string(cfg.inputs)
	if len(inputs) == 0 {
		inputs = []string{bundledRoot + bundledName}
	}
	objs, err := listInputs(ctx, st, inputs, outRoot)
	if err != nil {
		return nil, err
	}
	reads, err := inputsOutside(objs, outRoot, cfg.output)
	if err != nil {
		return nil, err
	}
	settings.Output = outRoot
	if !cfg.splitSizeGiven() {
		settings.SplitSize = pipeline.SplitSizeFor(objs, cfg.splitSlots())
	}
	job, err := pipeline.NewJob(spec, objs, settings)
	if err != nil {
		return nil, planError(err)
	}
	sink, err := st.Bucket(ctx, outRoot, true)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", cfg.output, err)
	}
	claim, err := pipeline.ClaimOutput(ctx, sink, job, &pipeline.ClaimOptions{
		Name: cfg.output, Overwrite: cfg.overwrite, Reads: reads, Log: log})
	if err != nil {
		return nil, err
	}
	var total int64
	for _, o := range objs {
		total += o.Size
	}
	log.Info("job planned", "job", cfg.jobName, "run", job.RunID, "objects", len(objs), "bytes", total, "splits", len(job.Splits),
		"split_size", job.SplitSize, "seed", settings.Seed, "split_mode", settings.SplitMode, "output", outRoot)
	return &prepared{job: job, model: model, src: newInputSource(st, objs), sink: sink, claim: claim,
		output: displayRoot(outRoot), stores: st}, nil
}

// inputsOutside refuses inputs inside the output root, comparing real
// paths (a symbolic link may lead into the output, or the output into an
// input). It returns whether the job reads the object at a key of the
// output, for the output's claim never to delete one.
func inputsOutside(objs []pipeline.Object, outRoot, output string) (func(key string) bool, error) {
	realOut := storage.RealPath(outRoot)
	read := map[string]bool{}
	for _, o := range objs {
		real := storage.RealPath(o.URL)
		if strings.HasPrefix(o.URL, outRoot) || strings.HasPrefix(real, realOut) {
			via := ""
			if real != o.URL || realOut != outRoot {
				via = fmt.Sprintf(" (real paths %s and %s)", real, realOut)
			}
			return nil, fmt.Errorf("input %s is inside the output %s%s; choose an --output outside every input", o.URL, output, via)
		}
		read[real] = true
	}
	return func(key string) bool { return read[realOut+key] }, nil
}

// finish sweeps what the job's own writers left unfinished in the output
// and gives back its claim, once the job has ended; it runs once.
func (p *prepared) finish(ctx context.Context, log *slog.Logger) {
	if p.done {
		return
	}
	p.done = true
	ctx = context.WithoutCancel(ctx)
	if _, err := p.sink.Sweep(ctx, p.claim.Owns); err != nil {
		log.Warn("could not remove staging files", "error", err)
	}
	if err := p.claim.Release(ctx); err != nil {
		log.Warn("could not remove the output's claim", "output", p.output, "error", err)
	}
}

// planError words NewJob's error for an input too large for the split
// size in terms of the flag, as a usage error.
func planError(err error) error {
	var e *pipeline.TooManySplitsError
	if !errors.As(err, &e) {
		return err
	}
	if e.MinSplitSize == 0 {
		return &usageError{err.Error()}
	}
	return usagef("--split-size %s would cut the input (%s, %s) into %d splits, more than the %d a job may have: use --split-size %s or more",
		storage.Size(e.SplitSize), plural(e.Objects, "object"), storage.Size(e.Bytes), e.Splits, pipeline.MaxSplits,
		storage.Size(max(e.MinSplitSize, minSplitSize)))
}

// plan checks the settings that need no storage, reads the spec and the
// model and fills in the job name, the output and the seed when not given.
func (cfg *runConfig) plan() (*features.Spec, *pipeline.Settings, *features.Model, error) {
	if cfg.splitSizeGiven() && cfg.splitSize < minSplitSize {
		return nil, nil, nil, usagef("--split-size %d is below the minimum of %d (%s): each split is a task of each pass, so tiny splits cost more than they read",
			cfg.splitSize, minSplitSize, storage.Size(minSplitSize))
	}
	mode, err := pipeline.ParseSplitMode(cfg.splitMode)
	if err != nil {
		return nil, nil, nil, &usageError{err.Error()}
	}
	policy, err := pipeline.ParsePolicy(cfg.onInvalid)
	if err != nil {
		return nil, nil, nil, &usageError{err.Error()}
	}
	spec := defaultSpec()
	if cfg.spec != "" {
		if spec, err = readJSONFile(cfg.spec, "spec", features.ParseSpec); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := cfg.applyOutputFormat(spec); err != nil {
		return nil, nil, nil, err
	}
	var model *features.Model
	if cfg.model != "" {
		if model, err = readJSONFile(cfg.model, "model", features.ReadModel); err != nil {
			return nil, nil, nil, err
		}
		if err := model.Check(spec); err != nil {
			why := strings.TrimPrefix(err.Error(), "model does not fit the spec: ")
			return nil, nil, nil, usagef("--model %s does not fit the spec: %s; leave out --model to fit a new model, or give the --spec it was fitted with", cfg.model, why)
		}
	}
	if cfg.jobName == "" {
		cfg.jobName = defaultJobName(time.Now())
	}
	if cfg.output == "" {
		cfg.output = filepath.Join("shardprep-out", cfg.jobName)
	}
	if !cfg.seed.set {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, nil, nil, err
		}
		cfg.seed = optionalInt64{v: int64(binary.LittleEndian.Uint64(b[:]) >> 1), set: true}
	}
	return spec, &pipeline.Settings{Name: cfg.jobName, SplitSize: int64(cfg.splitSize),
		Seed: cfg.seed.v, SplitMode: mode, OnInvalid: policy, Header: cfg.header}, model, nil
}

// splitSizeGiven reports whether the user chose the split size.
func (cfg *runConfig) splitSizeGiven() bool { return cfg.splitSize != 0 }

// splitSlots is how many splits the job's default split size is cut for:
// this process's slots; a coordinator without a worker of its own counts
// the CPUs here, since the workers that will join are unknown.
func (cfg *runConfig) splitSlots() int {
	if cfg.workers > 0 {
		return cfg.workers
	}
	return defaultWorkers()
}

// defaultJobName names a job started at now: shardprep-, the UTC time to
// the millisecond and four random hex digits, so that jobs started
// together get different names and so different default outputs
// (shardprep-20261126-175708-123-9f2c).
func defaultJobName(now time.Time) string {
	var b [2]byte
	rand.Read(b[:])
	now = now.UTC()
	return fmt.Sprintf("shardprep-%s-%03d-%x", now.Format("20060102-150405"), now.Nanosecond()/1e6, b)
}

// outputs returns the job's logger and where its lines for people go
// (stdout): with --quiet, only errors, and no lines for people.
func (cfg *runConfig) outputs(stdout, stderr io.Writer, env func(string) string) (*slog.Logger, io.Writer) {
	log := newLogger(stderr, cfg.logFormat, env)
	if !cfg.quiet {
		return log, stdout
	}
	return slog.New(errorsOnly{log.Handler()}), io.Discard
}

// readJSONFile reads the file at path and parses it; what is the flag
// that names the file, in errors ("--spec x.json: ...").
func readJSONFile[T any](path, what string, parse func([]byte) (T, error)) (T, error) {
	var v T
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in front already
		}
		return v, fmt.Errorf("--%s %s: %w", what, path, err)
	}
	if v, err = parse(data); err != nil {
		// The parser's errors start with what they parse ("spec: ").
		msg := fmt.Sprintf("--%s %s: %s", what, path, strings.TrimPrefix(err.Error(), what+": "))
		return v, &rewordedError{msg, err}
	}
	return v, nil
}

// rewordedError is err said as msg.
type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }

func displayRoot(root string) string {
	if strings.HasPrefix(root, "s3://") {
		return root
	}
	return strings.TrimSuffix(root, "/")
}

func printSummary(w io.Writer, m *pipeline.Manifest, output string, wall time.Duration) {
	if l, ok := w.(*logLines); ok { // the container's stdout: one event
		l.summary(m, output, wall)
		return
	}
	secs := wall.Seconds()
	fmt.Fprintf(w, "shardprep: committed %s\n", output)
	fmt.Fprintf(w, "  rows read   %d (%s, %s, %s)\n", m.Totals.RowsIn+m.Totals.Rejected,
		plural(len(m.Inputs), "object"), storage.Size(m.Totals.BytesIn), plural(len(m.Parts), "split"))
	for _, s := range m.Spec.Splits {
		fmt.Fprintf(w, "  %-11s %d\n", s.Name, m.Totals.RowsOut[s.Name])
	}
	fmt.Fprintf(w, "  rejected    %d\n", m.Totals.Rejected)
	fmt.Fprintf(w, "  seed        %d (%s split)\n", m.Seed, m.SplitMode)
	fmt.Fprintf(w, "  wall time   %.2fs, %.1f MB/s, %.0f rows/s\n", secs, float64(m.Totals.BytesIn)/1e6/secs, float64(m.Totals.RowsIn)/secs)
	if len(m.Workers) > 1 {
		for _, ws := range m.Workers {
			fmt.Fprintf(w, "  worker %-20s %d tasks, %d rows, %.1f MB/s\n", ws.Worker, ws.Tasks, ws.Rows, float64(ws.Bytes)/1e6/secs)
		}
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
