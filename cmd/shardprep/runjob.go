package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
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

const runUsage = `Usage: shardprep run [flags] [--input PATH]... [--output DIR]

Runs a job in this process. With no --input it processes the bundled
Abalone sample (4177 rows, UCI Machine Learning Repository, CC BY 4.0).

The output folder gets train/part-NNNNN and validation/part-NNNNN (one part
per input split, in input order), _shardprep/model.json (the fitted model),
_shardprep/manifest.json (inputs, seed, counts, timings), _rejected/ (with
--on-invalid skip) and, last, train/_SUCCESS and validation/_SUCCESS. A
failed or interrupted run leaves no _SUCCESS and removes its parts.

Examples:
  shardprep run
  shardprep run --input data/abalone.csv --output out/abalone --seed 42
  shardprep run --input s3://bucket/UserA/ --output s3://bucket/UserA/output/ --credentials grants
  shardprep run --input big.csv --output out --workers 4 --split-size 64MiB --on-invalid skip

Flags:
`

// parseRun parses run's flags; positional arguments are more inputs.
func parseRun(args []string, stderr io.Writer) (*runConfig, error) {
	var cfg runConfig
	fs := newFlagSet("run", runUsage, stderr)
	cfg.register(fs)
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
	log := newLogger(stderr, cfg.logFormat, env)
	p, err := prepare(ctx, cfg, env, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "shardprep: writing to %s\n", p.output)
	prog := newProgress(stderr, log, cfg.quiet)
	start := time.Now()
	m, err := pipeline.Run(ctx, p.job, p.src, outputSink{p.sink}, &pipeline.CoordinatorOptions{
		Model: p.model, Workers: cfg.workers, Logger: log, Progress: prog.update, ProgressEvery: prog.every(),
	})
	prog.finish()
	if serr := p.sink.Sweep(context.WithoutCancel(ctx)); serr != nil {
		log.Warn("could not remove staging files", "error", serr)
	}
	if err != nil {
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
	output string // where, for people
	stores *stores
}

// prepare lists the inputs, checks the output and plans the job of cfg.
func prepare(ctx context.Context, cfg *runConfig, env func(string) string, log *slog.Logger) (*prepared, error) {
	spec, settings, model, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	if err := cfg.store.check(); err != nil {
		return nil, err
	}
	cfg.store.jobName = cfg.jobName
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
	var total int64
	for _, o := range objs {
		if strings.HasPrefix(o.URL, outRoot) {
			return nil, fmt.Errorf("input %s is inside the output %s", o.URL, cfg.output)
		}
		total += o.Size
	}
	sink, err := st.Bucket(ctx, outRoot, true)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", cfg.output, err)
	}
	if err := pipeline.CheckOutput(ctx, sink, cfg.output, cfg.overwrite, log); err != nil {
		return nil, err
	}
	settings.Output = outRoot
	job, err := pipeline.NewJob(spec, objs, settings)
	if err != nil {
		return nil, err
	}
	log.Info("job planned", "job", cfg.jobName, "objects", len(objs), "bytes", total, "splits", len(job.Splits),
		"seed", settings.Seed, "split_mode", settings.SplitMode, "output", outRoot)
	return &prepared{job: job, model: model, src: newInputSource(st, objs), sink: sink, output: displayRoot(outRoot), stores: st}, nil
}

// plan checks the settings that need no storage, reads the spec and the
// model and fills in the job name, the output and the seed when not given.
func (cfg *runConfig) plan() (*features.Spec, *pipeline.Settings, *features.Model, error) {
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
	var model *features.Model
	if cfg.model != "" {
		if model, err = readJSONFile(cfg.model, "model", features.ReadModel); err != nil {
			return nil, nil, nil, err
		}
	}
	if cfg.jobName == "" {
		cfg.jobName = "shardprep-" + time.Now().UTC().Format("20060102-150405")
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

// readJSONFile reads the file at path and parses it; what names the file
// in errors.
func readJSONFile[T any](path, what string, parse func([]byte) (T, error)) (T, error) {
	var v T
	data, err := os.ReadFile(path)
	if err != nil {
		return v, fmt.Errorf("reading %s: %w", what, err)
	}
	if v, err = parse(data); err != nil {
		return v, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return v, nil
}

func displayRoot(root string) string {
	if strings.HasPrefix(root, "s3://") {
		return root
	}
	return strings.TrimSuffix(root, "/")
}

func printSummary(w io.Writer, m *pipeline.Manifest, output string, wall time.Duration) {
	secs := wall.Seconds()
	fmt.Fprintf(w, "shardprep: committed %s\n", output)
	fmt.Fprintf(w, "  rows read   %d (%s, %s, %s)\n", m.Totals.RowsIn+m.Totals.Rejected,
		plural(len(m.Inputs), "object"), formatBytes(m.Totals.BytesIn), plural(len(m.Parts), "split"))
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
