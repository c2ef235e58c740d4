package main

import (
	"context"
	"flag"
	"log/slog"
	"sync"
	"time"

	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// storeFlags are the S3 flags, a storage.S3Config.
type storeFlags struct{ storage.S3Config }

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.Endpoint, "s3-endpoint", "", "S3 endpoint `URL`, e.g. http://127.0.0.1:9000 for MinIO (default: $AWS_ENDPOINT_URL_S3, else AWS)")
	fs.BoolVar(&f.PathStyle, "s3-path-style", false, "path-style S3 addressing (implied by an S3 endpoint, as MinIO needs it)")
	fs.StringVar(&f.Region, "region", "", "AWS `REGION` (default: the SDK's chain: $AWS_REGION, profile)")
	fs.StringVar(&f.Credentials, "credentials", "default", "S3 credentials: `default` (the SDK's chain) or grants (S3 Access Grants: READ on each input prefix, READWRITE on the output prefix)")
	fs.StringVar(&f.GrantsFile, "grants-file", "", "with --credentials grants: a grants JSON `FILE` standing in for S3 Access Grants on MinIO (credentials minted with MinIO's STS AssumeRole)")
	fs.StringVar(&f.AccountID, "account-id", "", "AWS account `ID` of the S3 Access Grants instance (default: the caller's, from STS)")
	fs.StringVar(&f.ControlEndpoint, "s3control-endpoint", "", "S3 Control endpoint `URL` for GetDataAccess (default: AWS)")
	fs.BoolVar(&f.GrantsFallback, "grants-fallback", false, "with --credentials grants: where no grant matches, use the caller's own credentials (logged)")
	fs.DurationVar(&f.GrantsDuration, "grants-duration", time.Hour, "lifetime asked for grant credentials (15m to 12h); they are refreshed ahead of expiry")
	fs.DurationVar(&f.GrantsRefresh, "grants-refresh", 0, "refresh grant credentials this long before they expire (default: a tenth of their lifetime, 1m to 5m; longer than the lifetime: before every use)")
	fs.Var(&f.PartSize, "s3-part-size", "S3 multipart upload part `size` (5MiB to 5GiB; default 16MiB); each open output part fills one in memory while up to 4 per process upload")
	fs.IntVar(&f.MaxRetries, "s3-max-retries", 9, "retries of one S3 request after throttling, a 5xx answer or a failed connection, with exponential backoff up to 20s (0: none)")
}

// check checks the flags' values: a mistake is a usage error.
func (f *storeFlags) check() error {
	if err := f.Check(); err != nil {
		return &usageError{err.Error()}
	}
	return nil
}

// stores opens the buckets a job touches through a storage.Router: S3
// buckets through a storage.S3Opener made from the flags on first use (so
// that a worker can set the job name first), local folders, and the
// bundled sample at bundledRoot.
type stores struct {
	*storage.Router
	flags storeFlags
	env   func(string) string
	log   *slog.Logger

	once sync.Once
	s3   *storage.S3Opener
}

func newStores(f storeFlags, env func(string) string, log *slog.Logger) *stores {
	s := &stores{flags: f, env: env, log: log}
	bundled := storage.NewMemory()
	if err := bundled.Put(context.Background(), bundledName, bundledCSV); err != nil {
		panic("bundled sample: " + err.Error()) // a memory bucket takes any valid key
	}
	s.Router = storage.NewRouter(&storage.RouterOptions{OpenS3: s.openS3, Mounts: map[string]*storage.Bucket{bundledRoot: bundled}})
	return s
}

func (s *stores) opener() *storage.S3Opener {
	s.once.Do(func() { s.s3 = storage.NewS3Opener(s.flags.S3Config, s.env, s.log) })
	return s.s3
}

func (s *stores) openS3(ctx context.Context, bucket, prefix string, write bool) (*storage.Bucket, error) {
	return s.opener().Open(ctx, bucket, prefix, write)
}

// grantCalls is how many GetDataAccess/AssumeRole requests were made.
func (s *stores) grantCalls() int64 { return s.opener().GrantCalls() }

// newInputSource routes the pipeline's reads of objs to the stores they
// were listed under.
func newInputSource(st *stores, objs []pipeline.Object) pipeline.Source {
	for _, o := range objs {
		st.Route(o.URL, o.Root)
	}
	return st.Router
}

// listInputs expands the --input arguments into objects, in argument
// order then key order, leaving out hidden objects, those under the output
// and earlier outputs under an input.
func listInputs(ctx context.Context, st *stores, args []string, output string) ([]pipeline.Object, error) {
	found, err := st.Expand(ctx, args, &storage.ExpandOptions{Output: output, Outputs: pipeline.OutputFolders, Log: st.log})
	if err != nil {
		return nil, err
	}
	objs := make([]pipeline.Object, len(found))
	for i, o := range found {
		objs[i] = pipeline.Object(o)
	}
	return objs, nil
}
