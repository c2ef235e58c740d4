package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
)

// S3Config says how to reach S3 and with which credentials: the settings
// of shardprep's S3 flags, which Check's messages name.
type S3Config struct {
	// Endpoint is the S3 endpoint URL, e.g. http://127.0.0.1:9000 for
	// MinIO. Empty: $AWS_ENDPOINT_URL_S3, else AWS.
	Endpoint string
	// PathStyle selects path-style addressing; an endpoint implies it.
	PathStyle bool
	// Region is the AWS region. Empty: $AWS_REGION, else the SDK's chain,
	// else us-east-1.
	Region string
	// Credentials is "default" (the SDK's chain) or "grants": credentials
	// scoped to each bucket's prefix, from S3 Access Grants or GrantsFile.
	Credentials string
	// GrantsFile, with grants credentials, is a grants file standing in for
	// S3 Access Grants (see NewGrantsFile); the endpoint answers AssumeRole.
	GrantsFile string
	// AccountID, ControlEndpoint, GrantsFallback, GrantsDuration and
	// GrantsRefresh are GrantOptions' AccountID, Endpoint (S3 Access Grants
	// only), Fallback, Duration and RefreshMargin.
	AccountID       string
	ControlEndpoint string
	GrantsFallback  bool
	GrantsDuration  time.Duration
	GrantsRefresh   time.Duration
	// PartSize is S3Options.PartSize (0: DefaultPartSize).
	PartSize Size
	// MaxRetries is how often one request is retried (0: never).
	MaxRetries int
	// JobName is GrantOptions.JobName.
	JobName string
}

// Check reports the first setting of c out of its range, as one line
// naming the flag that sets it.
func (c *S3Config) Check() error {
	switch c.Credentials {
	case "default", "grants":
	default:
		return fmt.Errorf("--credentials %q: want default or grants", c.Credentials)
	}
	if c.Credentials != "grants" && (c.GrantsFile != "" || c.GrantsFallback) {
		return errors.New("--grants-file and --grants-fallback go with --credentials grants")
	}
	if c.GrantsDuration < minGrantDuration || c.GrantsDuration > maxGrantDuration {
		return fmt.Errorf("--grants-duration %s: must be from 15m to 12h", c.GrantsDuration)
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > maxPartSize) {
		return fmt.Errorf("--s3-part-size %s: must be from 5MiB to 5GiB", c.PartSize)
	}
	if c.MaxRetries < 0 {
		return errors.New("--s3-max-retries must be 0 or more")
	}
	return c.checkGrantsSource(c.Endpoint)
}

// checkGrantsSource refuses grants credentials against a custom S3
// endpoint ep (MinIO's, say) with neither a grants file nor an S3 Control
// endpoint: S3 Access Grants would be asked at AWS, for buckets it does
// not know.
func (c *S3Config) checkGrantsSource(ep string) error {
	if c.Credentials != "grants" || ep == "" || c.GrantsFile != "" || c.ControlEndpoint != "" {
		return nil
	}
	return fmt.Errorf("--credentials grants with the S3 endpoint %s needs --grants-file FILE (a grants file standing in for S3 Access Grants, as on MinIO) or --s3control-endpoint URL", ep)
}

// S3Opener opens S3 Buckets as an S3Config says, for RouterOptions.OpenS3:
// one client per bucket prefix, with grant credentials scoped to it when
// the config asks for grants. The AWS configuration is loaded once, on
// first use. An S3Opener is safe for concurrent use.
type S3Opener struct {
	cfg    S3Config
	getenv func(string) string
	log    *slog.Logger

	mu     sync.Mutex
	aws    *aws.Config
	grants *GrantSource
}

// NewS3Opener returns an S3Opener for cfg, which should have passed Check.
// getenv is the run's environment: region, static credentials
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, unless
// AWS_PROFILE is set) and AWS_ENDPOINT_URL_S3 given there take precedence
// over the process environment that the SDK's chain reads. log records
// which grant each prefix got, and the fallbacks.
func NewS3Opener(cfg S3Config, getenv func(string) string, log *slog.Logger) *S3Opener {
	return &S3Opener{cfg: cfg, getenv: getenv, log: log}
}

// GrantCalls is how many GetDataAccess or AssumeRole requests were made.
func (o *S3Opener) GrantCalls() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.grants == nil {
		return 0
	}
	return o.grants.Calls()
}

// Open opens s3://bucket/prefix; write says the caller writes there (grant
// credentials READWRITE rather than READ).
func (o *S3Opener) Open(ctx context.Context, bucket, prefix string, write bool) (*Bucket, error) {
	client, err := o.client(ctx, bucket, prefix, write)
	if err != nil {
		return nil, err
	}
	retries := o.cfg.MaxRetries
	if retries == 0 {
		retries = -1 // S3Options' "never"
	}
	return OpenS3(bucket, prefix, &S3Options{Client: client, PartSize: int64(o.cfg.PartSize), MaxRetries: retries})
}

func (o *S3Opener) awsConfig(ctx context.Context) (aws.Config, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.aws != nil {
		return *o.aws, nil
	}
	var opts []func(*config.LoadOptions) error
	// The SDK reads the process environment itself; credentials and region
	// given in this run's environment take precedence, as the SDK's chain
	// would give them (unless a profile is named).
	if o.cfg.Region != "" {
		opts = append(opts, config.WithRegion(o.cfg.Region))
	} else if r := o.getenv("AWS_REGION"); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	if id, secret := o.getenv("AWS_ACCESS_KEY_ID"), o.getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" && o.getenv("AWS_PROFILE") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, o.getenv("AWS_SESSION_TOKEN"))))
	}
	// The SDK's own log lines (an IMDS fallback) are not for shardprep's users.
	opts = append(opts, config.WithLogger(logging.Nop{}))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Credentials == nil {
		return aws.Config{}, &NoCredentialsError{}
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return aws.Config{}, ctx.Err()
		}
		return aws.Config{}, &NoCredentialsError{Err: err}
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	o.aws = &cfg
	return cfg, nil
}

func (o *S3Opener) endpoint() (string, bool) {
	ep := o.cfg.Endpoint
	if ep == "" {
		ep = o.getenv("AWS_ENDPOINT_URL_S3")
	}
	return ep, o.cfg.PathStyle || ep != ""
}

// client returns a client for a prefix of a bucket. With grant credentials
// it carries credentials scoped to that prefix: READ, or READWRITE for
// write.
func (o *S3Opener) client(ctx context.Context, bucket, prefix string, write bool) (*s3.Client, error) {
	cfg, err := o.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	ep, pathStyle := o.endpoint()
	if o.cfg.Credentials == "grants" {
		src, err := o.grantSource(cfg, ep)
		if err != nil {
			return nil, err
		}
		perm := PermRead
		if write {
			perm = PermReadWrite
		}
		gc, err := src.Credentials(ctx, GrantTarget{Bucket: bucket, Prefix: prefix, Permission: perm})
		if err != nil {
			return nil, err
		}
		if fb := gc.Fallback(); fb != nil {
			o.log.Warn("no grant matches; using the caller's own credentials (--grants-fallback)", "target", gc.Target().String(), "reason", fb.Error())
		} else {
			o.log.Info("grant credentials", "target", gc.Target().String(), "grant", gc.Grant())
		}
		cfg.Credentials = gc
	}
	return NewS3Client(cfg, ep, pathStyle), nil
}

func (o *S3Opener) grantSource(cfg aws.Config, ep string) (*GrantSource, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.grants != nil {
		return o.grants, nil
	}
	opts := &GrantOptions{
		AccountID: o.cfg.AccountID, Duration: o.cfg.GrantsDuration,
		JobName: o.cfg.JobName, Fallback: o.cfg.GrantsFallback, RefreshMargin: o.cfg.GrantsRefresh,
	}
	if err := o.cfg.checkGrantsSource(ep); err != nil {
		return nil, err
	}
	var src *GrantSource
	var err error
	if o.cfg.GrantsFile != "" {
		grants, rerr := ReadGrantsFile(o.cfg.GrantsFile)
		if rerr != nil {
			return nil, rerr
		}
		opts.Endpoint = ep // MinIO answers STS AssumeRole
		src, err = NewGrantsFile(cfg, o.cfg.GrantsFile, grants, opts)
	} else {
		opts.Endpoint = o.cfg.ControlEndpoint
		src, err = NewAccessGrants(cfg, opts)
	}
	if err != nil {
		return nil, err
	}
	o.grants = src
	return src, nil
}
