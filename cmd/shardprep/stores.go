package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
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

// stores opens the buckets a job touches; S3 clients are made once.
type stores struct {
	flags storeFlags
	env   func(string) string

	log *slog.Logger

	mu      sync.Mutex
	cfg     *aws.Config
	grants  *storage.GrantSource
	buckets map[string]*storage.Bucket
}

func newStores(f storeFlags, env func(string) string, log *slog.Logger) *stores {
	return &stores{flags: f, env: env, log: log, buckets: map[string]*storage.Bucket{}}
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

// bucket opens the store rooted at root ("s3://b/prefix/", a local folder
// ending in "/", or bundledRoot). write says the job writes there.
func (s *stores) bucket(ctx context.Context, root string, write bool) (*storage.Bucket, error) {
	key := fmt.Sprintf("%t %s", write, root)
	s.mu.Lock()
	b := s.buckets[key]
	s.mu.Unlock()
	if b != nil {
		return b, nil
	}
	var err error
	switch {
	case root == bundledRoot:
		b = storage.NewMemory()
		err = b.Put(ctx, bundledName, bundledCSV)
	default:
		var loc storage.Location
		loc, err = storage.ParseLocation(root)
		if err != nil {
			return nil, err
		}
		switch loc.Scheme {
		case "s3":
			var client *s3.Client
			client, err = s.s3Client(ctx, loc.Bucket, loc.Path, write)
			if err == nil {
				b, err = storage.OpenS3(loc.Bucket, loc.Path, s.s3Options(client))
			}
		case "file":
			b, err = storage.OpenLocal(loc.Path)
		default:
			err = fmt.Errorf("%s: unsupported location (use a local path or s3://bucket/prefix)", root)
		}
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.buckets[key] = b
	s.mu.Unlock()
	return b, nil
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

// inputSource routes the pipeline's range reads to the objects' stores.
type inputSource struct {
	st    *stores
	roots map[string]string // object URL -> the root it was listed under
}

func newInputSource(st *stores, objs []pipeline.Object) inputSource {
	roots := make(map[string]string, len(objs))
	for _, o := range objs {
		roots[o.URL] = o.Root
	}
	return inputSource{st: st, roots: roots}
}

func (in inputSource) NewRangeReader(ctx context.Context, url, etag string, offset, length int64) (io.ReadCloser, error) {
	root, ok := in.roots[url]
	if !ok {
		return nil, fmt.Errorf("%s: not an input of this job", url)
	}
	b, err := in.st.bucket(ctx, root, false)
	if err != nil {
		return nil, err
	}
	return b.NewRangeReader(ctx, strings.TrimPrefix(url, root), etag, offset, length)
}

// listInputs expands the --input arguments into objects, in argument
// order then key order. Hidden objects (a path element starting with "_"
// or ".", as Hadoop skips them) and objects under the output are left out.
func listInputs(ctx context.Context, st *stores, args []string, output string) ([]pipeline.Object, error) {
	var objs []pipeline.Object
	seen := map[string]bool{}
	for _, arg := range args {
		found, err := listInput(ctx, st, arg, output)
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("input %s: no objects there", arg)
		}
		for _, o := range found {
			if seen[o.URL] {
				continue
			}
			seen[o.URL] = true
			objs = append(objs, o)
		}
	}
	return objs, nil
}

func listInput(ctx context.Context, st *stores, arg, output string) ([]pipeline.Object, error) {
	if arg == bundledRoot+bundledName {
		return []pipeline.Object{{URL: arg, Name: bundledName, Size: int64(len(bundledCSV)), Root: bundledRoot}}, nil
	}
	loc, err := storage.ParseLocation(arg)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", arg, err)
	}
	var root, single string
	switch loc.Scheme {
	case "file":
		abs, err := filepath.Abs(loc.Path)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(abs)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("input %s: no such file or folder", arg)
			}
			return nil, fmt.Errorf("input %s: %w", arg, err)
		}
		if fi.IsDir() {
			root = strings.TrimSuffix(abs, string(filepath.Separator)) + "/"
		} else {
			root, single = filepath.Dir(abs)+"/", filepath.Base(abs)
		}
	case "s3":
		p := loc.Path
		if p == "" || strings.HasSuffix(p, "/") {
			root = "s3://" + loc.Bucket + "/" + p
		} else {
			dir, base := path.Split(p)
			b, err := st.bucket(ctx, "s3://"+loc.Bucket+"/"+dir, false)
			if err != nil {
				return nil, err
			}
			if _, err := b.Stat(ctx, base); err == nil {
				root, single = "s3://"+loc.Bucket+"/"+dir, base
			} else if errors.Is(err, fs.ErrNotExist) {
				root = "s3://" + loc.Bucket + "/" + p + "/"
			} else {
				return nil, fmt.Errorf("input %s: %w", arg, err)
			}
		}
	default:
		return nil, fmt.Errorf("input %s: unsupported location", arg)
	}
	b, err := st.bucket(ctx, root, false)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", arg, err)
	}
	if single != "" {
		info, err := b.Stat(ctx, single)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", arg, err)
		}
		return []pipeline.Object{{URL: root + single, Name: single, Size: info.Size, ETag: info.ETag, Root: root}}, nil
	}
	infos, err := b.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", arg, err)
	}
	outRoot := normalizeRoot(output)
	outputs := pipeline.OutputFolders(infoKeys(infos))
	var objs []pipeline.Object
	for _, info := range infos {
		if hidden(info.Key) || underAny(info.Key, outputs) {
			continue
		}
		url := root + info.Key
		if outRoot != "" && strings.HasPrefix(url, outRoot) {
			continue
		}
		objs = append(objs, pipeline.Object{URL: url, Name: info.Key, Size: info.Size, ETag: info.ETag, Root: root})
	}
	if len(outputs) > 0 {
		st.log.Info("input: leaving out earlier shardprep outputs under it", "input", arg, "outputs", outputs)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })
	return objs, nil
}

// infoKeys returns the keys of a listing.
func infoKeys(infos []storage.ObjectInfo) []string {
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys
}

func underAny(key string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(key, d) {
			return true
		}
	}
	return false
}

func hidden(key string) bool {
	for _, el := range strings.Split(key, "/") {
		if strings.HasPrefix(el, "_") || strings.HasPrefix(el, ".") {
			return true
		}
	}
	return false
}

// normalizeRoot turns an output argument into the root form used for
// object URLs ("s3://b/p/" or an absolute local folder ending in "/").
func normalizeRoot(arg string) string {
	if arg == "" {
		return ""
	}
	loc, err := storage.ParseLocation(arg)
	if err != nil {
		return ""
	}
	switch loc.Scheme {
	case "s3":
		p := loc.Path
		if p != "" && !strings.HasSuffix(p, "/") {
			p += "/"
		}
		return "s3://" + loc.Bucket + "/" + p
	case "file":
		abs, err := filepath.Abs(loc.Path)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(abs, string(filepath.Separator)) + "/"
	}
	return ""
}
