package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
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

// prepared is a planned job with its storage.
type prepared struct {
	job      *pipeline.Job
	model    *features.Model // given with --model; nil: fit one
	src      pipeline.Source
	sink     *storage.Bucket
	output   string // where, for people
	stores   *stores
	inputLen int64
}

func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("head out/train -n 3"); everything after a "--" is positional. fs.Args()
// then returns the positional arguments in order.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return &usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return fs.Parse(append([]string{"--"}, append(pos, rest...)...))
}

func runJob(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	var f jobFlags
	fs := newFlagSet("run", runUsage, stderr)
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	f.inputs = append(f.inputs, fs.Args()...)
	log := newLogger(stderr, f.logFormat, env)
	p, err := prepare(ctx, &f, env, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "shardprep: writing to %s\n", p.output)
	prog := newProgress(stderr, log, f.quiet)
	start := time.Now()
	res, err := pipeline.Run(ctx, p.job, p.src, p.sink, &pipeline.CoordinatorOptions{
		Model: p.model, Workers: f.workers, Logger: log, Progress: prog.update, ProgressEvery: prog.every(),
	})
	prog.finish()
	if serr := p.sink.Sweep(context.WithoutCancel(ctx)); serr != nil {
		log.Warn("could not remove staging files", "error", serr)
	}
	if err != nil {
		return jobError(ctx, err, p.output)
	}
	printSummary(stdout, res, p.output, time.Since(start))
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

// prepare reads the spec and model, lists the inputs, checks the output
// and plans the job.
func prepare(ctx context.Context, f *jobFlags, env func(string) string, log *slog.Logger) (*prepared, error) {
	if f.workers < 1 {
		return nil, usagef("--workers must be at least 1")
	}
	mode, err := pipeline.ParseSplitMode(f.splitMode)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	policy, err := pipeline.ParsePolicy(f.onInvalid)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	spec := defaultSpec()
	if f.spec != "" {
		data, err := os.ReadFile(f.spec)
		if err != nil {
			return nil, fmt.Errorf("reading spec: %w", err)
		}
		if spec, err = features.ParseSpec(data); err != nil {
			return nil, fmt.Errorf("spec %s: %w", f.spec, err)
		}
	}
	var model *features.Model
	if f.model != "" {
		data, err := os.ReadFile(f.model)
		if err != nil {
			return nil, fmt.Errorf("reading model: %w", err)
		}
		if model, err = features.ReadModel(data); err != nil {
			return nil, fmt.Errorf("model %s: %w", f.model, err)
		}
	}
	if f.jobName == "" {
		f.jobName = "shardprep-" + time.Now().UTC().Format("20060102-150405")
	}
	if f.output == "" {
		f.output = filepath.Join("shardprep-out", f.jobName)
	}
	inputs := []string(f.inputs)
	if len(inputs) == 0 {
		inputs = []string{bundledRoot + bundledName}
	}
	seed := f.seed.v
	if !f.seed.set {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		seed = int64(binary.LittleEndian.Uint64(b[:]) >> 1)
		f.seed.v, f.seed.set = seed, true
	}

	if err := f.store.check(); err != nil {
		return nil, err
	}
	f.store.jobName = f.jobName
	st := newStores(f.store, env, log)
	outRoot := normalizeRoot(f.output)
	if outRoot == "" {
		return nil, usagef("--output %s: not a local folder or s3://bucket/prefix", f.output)
	}
	objs, err := listInputs(ctx, st, inputs, outRoot)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if strings.HasPrefix(o.URL, outRoot) {
			return nil, fmt.Errorf("input %s is inside the output %s", o.URL, f.output)
		}
	}
	sink, err := st.bucket(ctx, outRoot, true)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", f.output, err)
	}
	if err := pipeline.CheckOutput(ctx, sink, f.output, f.overwrite, log); err != nil {
		return nil, err
	}
	job, err := pipeline.NewJob(spec, objs, &pipeline.Settings{
		Name: f.jobName, Output: outRoot,
		SplitSize: int64(f.splitSize), Seed: seed, SplitMode: mode, OnInvalid: policy, Header: f.header,
	})
	if err != nil {
		return nil, err
	}
	var total int64
	for _, o := range objs {
		total += o.Size
	}
	log.Info("job planned", "job", f.jobName, "objects", len(objs), "bytes", total, "splits", len(job.Splits),
		"seed", seed, "split_mode", mode, "output", outRoot)
	return &prepared{job: job, model: model, src: newInputSource(st, objs), sink: sink, output: displayRoot(outRoot), stores: st, inputLen: total}, nil
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
		plural(len(m.Inputs), "object"), humanBytes(m.Totals.BytesIn), plural(len(m.Parts), "split"))
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

func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
