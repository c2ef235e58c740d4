package main

import (
	"flag"
	"io"
	"runtime"
	"time"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/roles"
	"github.com/shardprep/shardprep/storage"
)

// registerJob registers the job flags of run, coordinator and container
// on fs, filling j.
func registerJob(fs *flag.FlagSet, j *roles.Job) {
	fs.Var((*cli.StringList)(&j.Inputs), "input", "input CSV `PATH`: a file, a folder or an s3://bucket/key-or-prefix (repeatable; a folder or prefix means every object under it; default: the bundled Abalone sample)")
	fs.StringVar(&j.Output, "output", "", "output `DIR` or s3://bucket/prefix (default: a new folder under ./shardprep-out)")
	fs.Var(&j.Seed, "seed", "split seed, a whole `N` (default: chosen at random and recorded in the manifest)")
	fs.IntVar(&j.Workers, "workers", defaultWorkers(), "splits processed at once by this process, by default one per usable CPU (GOMAXPROCS)")
	fs.Var(&j.SplitSize, "split-size", "bytes per input split, a `SIZE` such as 1048576, 512KiB or 64MiB (at least 64KiB; default: from the input size and the worker slots: two 4MiB splits first, then splits up to 32MiB that shrink towards the end)")
	fs.BoolVar(&j.Overwrite, "overwrite", false, "replace an earlier shardprep output: delete what shardprep jobs wrote there (refused if anything else is there)")
	fs.StringVar(&j.OnInvalid, "on-invalid", "error", "invalid rows: `error` stops the job; skip leaves them out and keeps them under _rejected/")
	fs.StringVar(&j.Spec, "spec", "", "pipeline spec JSON `FILE` (default: the Abalone job)")
	fs.StringVar(&j.Model, "model", "", "reuse a fitted model JSON `FILE` (e.g. a previous run's _shardprep/model.json) instead of fitting")
	fs.BoolVar(&j.Header, "header", false, "the first non-blank line of each input object is a header row")
	fs.StringVar(&j.Format, "output-format", "", "parts in `FORMAT`: text (label,f1,...,fn lines), csv (those lines under a header row), libsvm or parquet (default: the spec's output.format, else text)")
	fs.StringVar(&j.SplitMode, "split-mode", "hash", "`hash`: per-row hash of (seed, object, offset), stable for any worker count; spark: Spark's randomSplit for one-partition inputs")
	fs.StringVar(&j.Name, "job-name", "", "job `NAME`, recorded in the manifest and in S3 Access Grants audit context (default: shardprep-<time>)")
	cli.LogFormatVar(fs, &j.LogFormat)
	fs.BoolVar(&j.Quiet, "quiet", false, "print only errors: no progress, no info logs, no summary")
	registerStore(fs, &j.Store)
}

// registerStore registers the S3 flags on fs, filling c.
func registerStore(fs *flag.FlagSet, c *storage.S3Config) {
	fs.StringVar(&c.Endpoint, "s3-endpoint", "", "S3 endpoint `URL`, e.g. http://127.0.0.1:9000 for MinIO (default: $AWS_ENDPOINT_URL_S3, else AWS)")
	fs.BoolVar(&c.PathStyle, "s3-path-style", false, "path-style S3 addressing (implied by an S3 endpoint, as MinIO needs it)")
	fs.StringVar(&c.Region, "region", "", "AWS `REGION` (default: the SDK's chain: $AWS_REGION, profile)")
	fs.StringVar(&c.Credentials, "credentials", "default", "S3 credentials: `default` (the SDK's chain) or grants (S3 Access Grants: READ on each input prefix, READWRITE on the output prefix)")
	fs.StringVar(&c.GrantsFile, "grants-file", "", "with --credentials grants: a grants JSON `FILE` standing in for S3 Access Grants on MinIO (credentials minted with MinIO's STS AssumeRole)")
	fs.StringVar(&c.AccountID, "account-id", "", "AWS account `ID` of the S3 Access Grants instance (default: the caller's, from STS)")
	fs.StringVar(&c.ControlEndpoint, "s3control-endpoint", "", "S3 Control endpoint `URL` for GetDataAccess (default: AWS)")
	fs.BoolVar(&c.GrantsFallback, "grants-fallback", false, "with --credentials grants: where no grant matches, use the caller's own credentials (logged)")
	fs.DurationVar(&c.GrantsDuration, "grants-duration", time.Hour, "lifetime asked for grant credentials (15m to 12h); they are refreshed ahead of expiry")
	fs.DurationVar(&c.GrantsRefresh, "grants-refresh", 0, "refresh grant credentials this long before they expire (default: a tenth of their lifetime, 1m to 5m; longer than the lifetime: before every use)")
	fs.Var(&c.PartSize, "s3-part-size", "S3 multipart upload part `size` (5MiB to 5GiB; default 8MiB); each open output part fills one in memory while up to 4 per process upload")
	fs.IntVar(&c.MaxRetries, "s3-max-retries", 9, "retries of one S3 request after throttling, a 5xx answer or a failed connection, with exponential backoff up to 20s (0: none)")
}

// defaultWorkers is the default of --workers: one slot per CPU this
// process may use (GOMAXPROCS, which follows the CPU affinity and a
// container's CPU limit). A variable so that tests can pin it.
var defaultWorkers = func() int { return runtime.GOMAXPROCS(0) }

// parseRun parses run's flags; positional arguments are more inputs.
func parseRun(args []string, _ func(string) string, stderr io.Writer) (*roles.Job, error) {
	var cfg roles.Job
	fs := cli.NewFlagSet("run", runUsage, stderr)
	registerJob(fs, &cfg)
	fs.StringVar(&cfg.Metrics, "metrics", "", "serve live metrics (Prometheus text format) at http://`ADDR`/metrics while the job runs")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	cfg.Inputs = append(cfg.Inputs, fs.Args()...)
	return &cfg, nil
}

func parseCoordinator(args []string, env func(string) string, stderr io.Writer) (*roles.Coordinator, error) {
	cfg := &roles.Coordinator{Secret: []byte(env(roles.SecretEnv))}
	fs := cli.NewFlagSet("coordinator", coordinatorUsage, stderr)
	registerJob(fs, &cfg.Job)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7070", "`ADDR` to serve the coordinator protocol on")
	fs.DurationVar(&cfg.Lease, "lease", roles.DefaultLease, "a worker silent this long loses its tasks")
	fs.DurationVar(&cfg.Linger, "linger", roles.DefaultLinger, "after the commit, how long to keep answering workers that have not yet heard")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	cfg.Inputs = append(cfg.Inputs, fs.Args()...)
	return cfg, nil
}

func parseWorker(args []string, env func(string) string, stderr io.Writer) (*roles.Worker, error) {
	cfg := &roles.Worker{Secret: []byte(env(roles.SecretEnv))}
	fs := cli.NewFlagSet("worker", workerUsage, stderr)
	fs.StringVar(&cfg.Coordinator, "coordinator", "", "coordinator `URL`, e.g. http://10.0.0.1:7070 or 10.0.0.1:7070 (required)")
	fs.IntVar(&cfg.Workers, "workers", defaultWorkers(), "splits processed at once by this worker")
	fs.StringVar(&cfg.Name, "name", "", "worker name in logs and the manifest (default: host-pid)")
	fs.DurationVar(&cfg.Timeout, "coordinator-timeout", roles.DefaultCoordinatorTimeout, "give up (exit non-zero) when the coordinator is unreachable this long")
	cli.LogFormatVar(fs, &cfg.LogFormat)
	registerStore(fs, &cfg.Store)
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	return cfg, nil
}
