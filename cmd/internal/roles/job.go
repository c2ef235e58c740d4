package roles

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
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/progress"
	"github.com/shardprep/shardprep/cmd/internal/stores"
	"github.com/shardprep/shardprep/cmd/shardprep/sample"
	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// Process is what a role takes from the process it runs in.
type Process struct {
	Env    func(string) string // the environment
	Stdout io.Writer           // lines for people: where the job writes, its summary
	Stderr io.Writer           // logs and progress
	// HugeHeap asks, before the process first runs a job's tasks, for
	// huge pages for the heap they will live in (pipeline.AdviseHugeHeap):
	// set by the shardprep command, not by tests that run jobs in theirs.
	HugeHeap bool
}

// The heap is advised once per process: heapOnce starts adviseHeap
// (pipeline.AdviseHugeHeap but in tests), and heapDone is closed when it
// has returned.
var (
	heapOnce   sync.Once
	heapDone   = make(chan struct{})
	adviseHeap = pipeline.AdviseHugeHeap
)

// adviseHeapSoon starts asking for huge pages for the heap, once, if
// HugeHeap is set: each role starts it as it starts, so that it overlaps
// the role's set-up (the claim of the output, a worker's join), and waits
// for it (tasksHere) before the job's tasks.
func (pr *Process) adviseHeapSoon() {
	if pr.HugeHeap {
		heapOnce.Do(func() {
			go func() {
				adviseHeap(pipeline.HugeHeapSize)
				close(heapDone)
			}()
		})
	}
}

// tasksHere readies the process to run a job's tasks: if HugeHeap is
// set, its heap has been asked for huge pages when it returns.
func (pr *Process) tasksHere() {
	if pr.HugeHeap {
		pr.adviseHeapSoon()
		<-heapDone
	}
}

// Job is a job's settings: run's flags, the job flags of the
// coordinator, or what the container makes of its processing job.
type Job struct {
	Inputs    []string // files, folders, s3:// URLs; none: the sample
	Output    string   // "": a new folder under ./shardprep-out
	Seed      cli.OptionalInt64
	Workers   int          // splits processed at once by this process
	SplitSize storage.Size // 0: chosen by pipeline.SplitSizeFor
	Overwrite bool
	OnInvalid string // a pipeline.Policy
	Spec      string // the spec's file; "": the sample's spec
	Model     string // a fitted model's file; "": fit one
	Header    bool
	SplitMode string // a pipeline.SplitMode
	Format    string // the parts' output format; "": the spec's
	Name      string // "": shardprep-<time>
	LogFormat cli.LogFormat
	Quiet     bool
	Metrics   string // serve /metrics on this address while the job runs
	Store     storage.S3Config
}

// minSplitSize is the smallest split size a job may ask for.
const minSplitSize = 64 << 10

// Run runs the job of cfg in this process.
func (pr *Process) Run(ctx context.Context, cfg *Job) error {
	if cfg.Workers < 1 {
		return cli.Usagef("--workers must be at least 1")
	}
	pr.adviseHeapSoon()
	log, stdout := cfg.outputs(pr.Stdout, pr.Stderr, pr.Env)
	p, err := prepare(ctx, cfg, pr.Env, log)
	if err != nil {
		return err
	}
	defer p.finish(ctx, log)
	fmt.Fprintf(stdout, "shardprep: writing to %s\n", p.output)
	prog := progress.New(pr.Stderr, cli.IsTerminal(pr.Stderr), log, cfg.Quiet)
	start := time.Now()
	pr.tasksHere()
	c, err := pipeline.NewRun(p.job, p.src, stores.Sink(p.sink), &pipeline.CoordinatorOptions{
		Model: p.model, Workers: cfg.Workers, Logger: log, Progress: prog.Update, ProgressEvery: prog.Every(),
		GrantCalls: p.stores.GrantCalls,
	})
	if err != nil {
		return err
	}
	if cfg.Metrics != "" {
		stop, err := serveMetrics(c, cfg.Metrics, stdout)
		if err != nil {
			return err
		}
		defer stop()
	}
	m, err := c.Run(ctx)
	prog.Finish()
	if err != nil {
		writeFailedReport(ctx, c, err, p, stdout)
	}
	p.finish(ctx, log)
	if err != nil {
		return jobError(ctx, err, p.output)
	}
	printSummary(stdout, m, p.output, time.Since(start))
	if n := p.stores.GrantCalls(); n > 0 {
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
	claim  *pipeline.Claim // held until finish
	output string          // where, for people
	local  bool            // the output is a local folder
	stores *stores.Stores
	done   bool // finish has run
}

// prepare lists the inputs, plans the job of cfg and claims its output
// (see pipeline.ClaimOutput); the caller must call finish when it ends.
func prepare(ctx context.Context, cfg *Job, env func(string) string, log *slog.Logger) (*prepared, error) {
	spec, settings, model, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	if err := stores.Check(cfg.Store); err != nil {
		return nil, err
	}
	cfg.Store.JobName = cfg.Name
	st := stores.New(cfg.Store, env, log)
	outRoot := storage.Root(cfg.Output)
	if outRoot == "" {
		return nil, cli.Usagef("--output %s: not a local folder or s3://bucket/prefix", cfg.Output)
	}
	inputs := cfg.Inputs
	if len(inputs) == 0 {
		inputs = []string{stores.SampleURL}
	}
	objs, err := st.Inputs(ctx, inputs, outRoot)
	if err != nil {
		return nil, err
	}
	reads, err := inputsOutside(objs, outRoot, cfg.Output)
	if err != nil {
		return nil, err
	}
	settings.Output = outRoot
	if cfg.SplitSize == 0 {
		settings.SplitSize = pipeline.SplitSizeFor(objs, cfg.splitSlots())
		settings.Slots = cfg.splitSlots()
	}
	job, err := pipeline.NewJob(spec, objs, settings)
	if err != nil {
		return nil, planError(err)
	}
	sink, err := st.Bucket(ctx, outRoot, true)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", cfg.Output, err)
	}
	claim, err := pipeline.ClaimOutput(ctx, sink, job, &pipeline.ClaimOptions{
		Name: cfg.Output, Overwrite: cfg.Overwrite, Reads: reads, Log: log})
	if err != nil {
		return nil, err
	}
	var total int64
	for _, o := range objs {
		total += o.Size
	}
	log.Info("job planned", "job", cfg.Name, "run", job.RunID, "objects", len(objs), "bytes", total, "splits", len(job.Splits),
		"split_size", job.SplitSize, "seed", settings.Seed, "split_mode", settings.SplitMode, "output", outRoot)
	logStagePlan(log, spec, model)
	return &prepared{job: job, model: model, src: st.Source(objs), sink: sink, claim: claim,
		output: stores.Display(outRoot), local: !strings.HasPrefix(outRoot, "s3://"), stores: st}, nil
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
		return cli.Usagef("%v", err)
	}
	return cli.Usagef("--split-size %s would cut the input (%s, %s) into %d splits, more than the %d a job may have: use --split-size %s or more",
		storage.Size(e.SplitSize), cli.Plural(e.Objects, "object"), storage.Size(e.Bytes), e.Splits, e.Max,
		storage.Size(max(e.MinSplitSize, minSplitSize)))
}

// plan checks the settings that need no storage, reads the spec and the
// model and fills in the job name and the output when not given.
func (cfg *Job) plan() (*features.Spec, *pipeline.Settings, *features.Model, error) {
	if cfg.SplitSize != 0 && cfg.SplitSize < minSplitSize {
		return nil, nil, nil, cli.Usagef("--split-size %d is below the minimum of %d (%s): each split is a task of each pass, so tiny splits cost more than they read",
			cfg.SplitSize, minSplitSize, storage.Size(minSplitSize))
	}
	settings := cfg.settings()
	if err := settings.Check(); err != nil {
		return nil, nil, nil, cli.Usagef("%v", err)
	}
	spec, model, err := cfg.readSpecAndModel()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cfg.applyOutputFormat(spec); err != nil {
		return nil, nil, nil, err
	}
	settings.Header = settings.Header || spec.Header
	if cfg.Name == "" {
		cfg.Name = defaultJobName(time.Now())
	}
	if cfg.Output == "" {
		cfg.Output = filepath.Join("shardprep-out", cfg.Name)
	}
	settings.Name = cfg.Name
	seed, ok := cfg.Seed.Int64()
	if !ok {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, nil, nil, err
		}
		seed = int64(binary.LittleEndian.Uint64(b[:]) >> 1)
	}
	settings.Seed = seed
	return spec, settings, model, nil
}

// settings are the pipeline settings of cfg so far: without its name,
// output and seed.
func (cfg *Job) settings() *pipeline.Settings {
	return &pipeline.Settings{SplitSize: int64(cfg.SplitSize), SplitMode: pipeline.SplitMode(cfg.SplitMode),
		OnInvalid: pipeline.Policy(cfg.OnInvalid), Header: cfg.Header}
}

// readSpecAndModel reads the job's spec (when it names none: the spec
// its model carries, or the sample's) and the model it names, if any,
// which must fit the spec.
func (cfg *Job) readSpecAndModel() (*features.Spec, *features.Model, error) {
	var model *features.Model
	var err error
	if cfg.Model != "" {
		if model, err = readJSONFile(cfg.Model, "model", features.ReadModel); err != nil {
			return nil, nil, err
		}
	}
	spec := sample.Spec()
	if model != nil && model.Spec() != nil {
		spec = model.Spec()
	}
	if cfg.Spec != "" {
		if spec, err = readJSONFile(cfg.Spec, "spec", features.ParseSpec); err != nil {
			return nil, nil, err
		}
	}
	if model == nil {
		return spec, nil, nil
	}
	if err := model.Check(spec); err != nil {
		why := strings.TrimPrefix(err.Error(), "model does not fit the spec: ")
		return nil, nil, cli.Usagef("--model %s does not fit the spec: %s; leave out --model to fit a new model, or give the --spec it was fitted with", cfg.Model, why)
	}
	return spec, model, nil
}

// splitSlots is how many splits the job's default split size is cut for:
// this process's slots; a coordinator without a worker of its own counts
// the CPUs here, since the workers that will join are unknown.
func (cfg *Job) splitSlots() int {
	if cfg.Workers > 0 {
		return cfg.Workers
	}
	return runtime.GOMAXPROCS(0)
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
func (cfg *Job) outputs(stdout, stderr io.Writer, env func(string) string) (*slog.Logger, io.Writer) {
	log := cli.NewLogger(stderr, cfg.LogFormat, env)
	if !cfg.Quiet {
		return log, stdout
	}
	return cli.ErrorsOnly(log), io.Discard
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
