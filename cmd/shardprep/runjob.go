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
	"slices"
	"strings"
	"time"

	"github.com/shardprep/shardprep/container"
	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

const version = pipeline.Version

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
	res, err := pipeline.Run(ctx, p.job, p.src, p.sink, &pipeline.Options{
		Workers: cfg.workers, Logger: log, Progress: prog.update, ProgressEvery: prog.every(),
	})
	prog.finish()
	if serr := p.sink.Sweep(context.WithoutCancel(ctx)); serr != nil {
		log.Warn("could not remove staging files", "error", serr)
	}
	if err != nil {
		return jobError(ctx, err, p.output)
	}
	printSummary(stdout, res.Manifest, p.output, time.Since(start))
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
	src    pipeline.Source
	sink   *storage.Bucket
	output string // where, for people
	stores *stores
}

// prepare lists the inputs, checks the output and plans the job of cfg.
func prepare(ctx context.Context, cfg *runConfig, env func(string) string, log *slog.Logger) (*prepared, error) {
	spec, opts, err := cfg.plan()
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
	if err := checkOutput(ctx, sink, cfg.output, cfg.overwrite, log); err != nil {
		return nil, err
	}
	opts.Output = outRoot
	job, err := pipeline.NewJob(spec, objs, opts)
	if err != nil {
		return nil, err
	}
	log.Info("job planned", "job", cfg.jobName, "objects", len(objs), "bytes", total, "splits", len(job.Splits),
		"seed", opts.Seed, "split_mode", opts.SplitMode, "output", outRoot)
	return &prepared{job: job, src: newInputSource(st, objs), sink: sink, output: displayRoot(outRoot), stores: st}, nil
}

// plan checks the settings that need no storage, reads the spec and the
// model and fills in the job name, the output and the seed when not given.
func (cfg *runConfig) plan() (*features.Spec, *pipeline.JobOptions, error) {
	mode, err := pipeline.ParseSplitMode(cfg.splitMode)
	if err != nil {
		return nil, nil, &usageError{err.Error()}
	}
	policy, err := pipeline.ParsePolicy(cfg.onInvalid)
	if err != nil {
		return nil, nil, &usageError{err.Error()}
	}
	spec := defaultSpec()
	if cfg.spec != "" {
		if spec, err = readJSONFile(cfg.spec, "spec", features.ParseSpec); err != nil {
			return nil, nil, err
		}
	}
	var model *features.Model
	if cfg.model != "" {
		if model, err = readJSONFile(cfg.model, "model", features.ReadModel); err != nil {
			return nil, nil, err
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
			return nil, nil, err
		}
		cfg.seed = optionalInt64{v: int64(binary.LittleEndian.Uint64(b[:]) >> 1), set: true}
	}
	return spec, &pipeline.JobOptions{Name: cfg.jobName, Version: version, Model: model, SplitSize: int64(cfg.splitSize),
		Seed: cfg.seed.v, SplitMode: mode, OnInvalid: policy, Header: cfg.header}, nil
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

// checkOutput refuses an output that already holds objects, unless
// overwrite is set; then it deletes them, the _SUCCESS markers first so
// that the old output stops counting as committed before it disappears.
func checkOutput(ctx context.Context, out *storage.Bucket, name string, overwrite bool, log *slog.Logger) error {
	infos, err := out.List(ctx, "")
	if err != nil {
		return fmt.Errorf("output %s: %w", name, err)
	}
	// A container coordinator publishes the cluster secret there first.
	infos = slices.DeleteFunc(infos, func(o storage.ObjectInfo) bool {
		return strings.HasPrefix(o.Key, container.SecretPrefix)
	})
	if len(infos) == 0 {
		return nil
	}
	if !overwrite {
		return fmt.Errorf("output %s already exists (%d objects); choose another --output or pass --overwrite to replace it", name, len(infos))
	}
	log.Info("overwriting output", "output", name, "objects", len(infos))
	for pass := 0; pass < 2; pass++ {
		for _, info := range infos {
			isMarker := strings.HasSuffix(info.Key, "/"+pipeline.SuccessName) || info.Key == pipeline.SuccessName
			if isMarker == (pass == 0) {
				if err := out.Delete(ctx, info.Key); err != nil {
					return fmt.Errorf("output %s: removing %s: %w", name, info.Key, err)
				}
			}
		}
	}
	return nil
}

func printSummary(w io.Writer, m *pipeline.Manifest, output string, wall time.Duration) {
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
