package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// storeFlags say how to reach S3 and with which credentials.
type storeFlags struct {
	endpoint        string
	pathStyle       bool
	region          string
	credentials     string
	grantsFile      string
	accountID       string
	controlEndpoint string
	grantsFallback  bool
	grantDuration   time.Duration
	grantRefresh    time.Duration
	partSize        byteSize // 0: storage.DefaultPartSize
	maxRetries      int
	jobName         string // for the grants audit context; set by the job
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoint, "s3-endpoint", "", "S3 endpoint `URL`, e.g. http://127.0.0.1:9000 for MinIO (default: $AWS_ENDPOINT_URL_S3, else AWS)")
	fs.BoolVar(&f.pathStyle, "s3-path-style", false, "path-style S3 addressing (implied by an S3 endpoint, as MinIO needs it)")
	fs.StringVar(&f.region, "region", "", "AWS `REGION` (default: the SDK's chain: $AWS_REGION, profile)")
	fs.StringVar(&f.credentials, "credentials", "default", "S3 credentials: `default` (the SDK's chain) or grants (S3 Access Grants: READ on each input prefix, READWRITE on the output prefix)")
	fs.StringVar(&f.grantsFile, "grants-file", "", "with --credentials grants: a grants JSON `FILE` standing in for S3 Access Grants on MinIO (credentials minted with MinIO's STS AssumeRole)")
	fs.StringVar(&f.accountID, "account-id", "", "AWS account `ID` of the S3 Access Grants instance (default: the caller's, from STS)")
	fs.StringVar(&f.controlEndpoint, "s3control-endpoint", "", "S3 Control endpoint `URL` for GetDataAccess (default: AWS)")
	fs.BoolVar(&f.grantsFallback, "grants-fallback", false, "with --credentials grants: where no grant matches, use the caller's own credentials (logged)")
	fs.DurationVar(&f.grantDuration, "grants-duration", time.Hour, "lifetime asked for grant credentials (15m to 12h); they are refreshed ahead of expiry")
	fs.DurationVar(&f.grantRefresh, "grants-refresh", 0, "refresh grant credentials this long before they expire (default: a tenth of their lifetime, 1m to 5m; longer than the lifetime: before every use)")
	fs.Var(&f.partSize, "s3-part-size", "S3 multipart upload part `size` (5MiB to 5GiB; default 16MiB); each open output part holds one in memory")
	fs.IntVar(&f.maxRetries, "s3-max-retries", 9, "retries of one S3 request after throttling, a 5xx answer or a failed connection, with exponential backoff up to 20s (0: none)")
}

func (f *storeFlags) check() error {
	switch f.credentials {
	case "default", "grants":
	default:
		return usagef("--credentials %q: want default or grants", f.credentials)
	}
	if f.credentials != "grants" && (f.grantsFile != "" || f.grantsFallback) {
		return usagef("--grants-file and --grants-fallback go with --credentials grants")
	}
	if f.grantDuration < 15*time.Minute || f.grantDuration > 12*time.Hour {
		return usagef("--grants-duration %s: must be from 15m to 12h", f.grantDuration)
	}
	if f.partSize != 0 && (f.partSize < storage.MinPartSize || f.partSize > 5<<30) {
		return usagef("--s3-part-size %s: must be from 5MiB to 5GiB", &f.partSize)
	}
	if f.maxRetries < 0 {
		return usagef("--s3-max-retries must be 0 or more")
	}
	return nil
}

// stores opens the buckets a job touches through a storage.Router: S3
// buckets with clients made from the flags (grant credentials scoped to
// each root), local folders, and the bundled sample at bundledRoot.
type stores struct {
	*storage.Router
	flags storeFlags
	env   func(string) string
	log   *slog.Logger

	mu     sync.Mutex
	cfg    *aws.Config
	grants *storage.GrantSource
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

// grantCalls is how many GetDataAccess/AssumeRole requests were made.
func (s *stores) grantCalls() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grants == nil {
		return 0
	}
	return s.grants.Calls()
}

func (s *stores) awsConfig(ctx context.Context) (aws.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg != nil {
		return *s.cfg, nil
	}
	var opts []func(*config.LoadOptions) error
	// The SDK reads the process environment itself; credentials and region
	// given in this run's environment take precedence, as the SDK's chain
	// would give them (unless a profile is named).
	if s.flags.region != "" {
		opts = append(opts, config.WithRegion(s.flags.region))
	} else if r := s.env("AWS_REGION"); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	if id, secret := s.env("AWS_ACCESS_KEY_ID"), s.env("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" && s.env("AWS_PROFILE") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, s.env("AWS_SESSION_TOKEN"))))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	s.cfg = &cfg
	return cfg, nil
}

func (s *stores) endpoint() (string, bool) {
	ep := s.flags.endpoint
	if ep == "" {
		ep = s.env("AWS_ENDPOINT_URL_S3")
	}
	return ep, s.flags.pathStyle || ep != ""
}

// openS3 opens s3://bucket/prefix for the Router; write says the job
// writes there.
func (s *stores) openS3(ctx context.Context, bucket, prefix string, write bool) (*storage.Bucket, error) {
	client, err := s.s3Client(ctx, bucket, prefix, write)
	if err != nil {
		return nil, err
	}
	return storage.OpenS3(bucket, prefix, s.s3Options(client))
}

// s3Options are the bucket options the flags ask for.
func (s *stores) s3Options(client *s3.Client) *storage.S3Options {
	retries := s.flags.maxRetries
	if retries == 0 {
		retries = -1 // storage's "never"
	}
	return &storage.S3Options{Client: client, PartSize: int64(s.flags.partSize), MaxRetries: retries}
}

// s3Client returns a client for a prefix of a bucket. With grant
// credentials it carries credentials scoped to that prefix: READ for
// inputs, READWRITE for the output.
func (s *stores) s3Client(ctx context.Context, bucket, prefix string, write bool) (*s3.Client, error) {
	cfg, err := s.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	ep, pathStyle := s.endpoint()
	if s.flags.credentials == "grants" {
		src, err := s.grantSource(ctx, cfg, ep)
		if err != nil {
			return nil, err
		}
		perm := storage.PermRead
		if write {
			perm = storage.PermReadWrite
		}
		gc, err := src.Credentials(ctx, storage.GrantTarget{Bucket: bucket, Prefix: prefix, Permission: perm})
		if err != nil {
			return nil, err
		}
		if fb := gc.Fallback(); fb != nil {
			s.log.Warn("no grant matches; using the caller's own credentials (--grants-fallback)", "target", gc.Target().String(), "reason", fb.Error())
		} else {
			s.log.Info("grant credentials", "target", gc.Target().String(), "grant", gc.Grant())
		}
		cfg.Credentials = gc
	}
	return storage.NewS3Client(cfg, ep, pathStyle), nil
}

func (s *stores) grantSource(ctx context.Context, cfg aws.Config, ep string) (*storage.GrantSource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grants != nil {
		return s.grants, nil
	}
	opts := &storage.GrantOptions{
		AccountID: s.flags.accountID, Duration: s.flags.grantDuration,
		JobName: s.flags.jobName, Fallback: s.flags.grantsFallback, RefreshMargin: s.flags.grantRefresh,
	}
	var src *storage.GrantSource
	var err error
	if s.flags.grantsFile != "" {
		grants, rerr := storage.ReadGrantsFile(s.flags.grantsFile)
		if rerr != nil {
			return nil, rerr
		}
		opts.Endpoint = ep // MinIO answers STS AssumeRole
		src, err = storage.NewGrantsFile(cfg, s.flags.grantsFile, grants, opts)
	} else {
		opts.Endpoint = s.flags.controlEndpoint
		src, err = storage.NewAccessGrants(cfg, opts)
	}
	if err != nil {
		return nil, err
	}
	s.grants = src
	return src, nil
}

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
