package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

const (
	// DefaultPartSize is the multipart upload part size when S3Options
	// leaves it zero.
	DefaultPartSize = 8 << 20
	// MinPartSize is S3's smallest part size (except for the last part).
	MinPartSize = 5 << 20
	// maxPartSize and maxParts are S3's limits.
	maxPartSize = 5 << 30
	maxParts    = 10000

	defaultMaxRetries  = 9
	defaultReadResumes = 5
	abortTimeout       = time.Minute
)

// S3Options configures an S3 Bucket. Client is required.
type S3Options struct {
	// Client makes the requests. Its endpoint, credentials, region and
	// addressing style (UsePathStyle) are the caller's; see NewS3Client.
	Client *s3.Client
	// PartSize is the multipart upload part size: a writer fills one part
	// in memory while the parts before it upload, at most 4 parts of the
	// Bucket's writers at once (a writer that fills a part while 4 are
	// being sent waits), and an object smaller than PartSize is sent with
	// a single PutObject on Close. Default DefaultPartSize; at least
	// MinPartSize and at most 5 GiB. An object may have at most 10000
	// parts.
	PartSize int64
	// MaxRetries is how often one request is retried after a throttling
	// error (SlowDown, 503), a 5xx error or a connection failure, with
	// exponential backoff and jitter. Zero means 9; negative means never.
	// Access denied, missing bucket or key and failed preconditions are
	// never retried.
	MaxRetries int
	// MaxBackoff caps the delay between retries. Zero means 20s.
	MaxBackoff time.Duration
	// ReadResumes is how often a reader reconnects, continuing from the
	// last byte it received, after the connection fails mid-object without
	// any progress in between. Zero means 5; negative means never.
	ReadResumes int
}

// OpenS3 returns a Bucket over the objects of an S3 bucket whose keys start
// with prefix. A non-empty prefix not ending in "/" gets one: key "k" of
// OpenS3("b", "out", ...) is the object "out/k" of bucket "b". OpenS3 makes
// no requests.
//
// Reads are streamed with ranged GETs and resume after a dropped connection
// (see S3Options.ReadResumes); writes stream with multipart uploads that are
// aborted on any failure or cancellation, so nothing is left behind. List
// skips zero-byte "folder" markers (keys ending in "/") and the marker
// objects of staged writes (see NewStagedWriter).
func OpenS3(bucket, prefix string, opts *S3Options) (*Bucket, error) {
	if opts == nil || opts.Client == nil {
		return nil, errors.New("storage: OpenS3 needs S3Options.Client")
	}
	if err := checkBucketName(bucket); err != nil {
		return nil, err
	}
	if prefix != "" {
		if err := checkKeyCommon(prefix); err != nil {
			return nil, fmt.Errorf("storage: S3 prefix: %w", err)
		}
		if !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
	}
	d := &s3Driver{
		client:   opts.Client,
		bucket:   bucket,
		prefix:   prefix,
		partSize: opts.PartSize,
		resumes:  opts.ReadResumes,
		slots:    make(chan struct{}, uploadsInFlight),
	}
	switch {
	case d.partSize == 0:
		d.partSize = DefaultPartSize
	case d.partSize < MinPartSize || d.partSize > maxPartSize:
		return nil, fmt.Errorf("storage: S3 part size %d is outside S3's limits [%d, %d]", d.partSize, MinPartSize, int64(maxPartSize))
	}
	switch {
	case d.resumes == 0:
		d.resumes = defaultReadResumes
	case d.resumes < 0:
		d.resumes = 0
	}
	attempts := opts.MaxRetries + 1
	switch {
	case opts.MaxRetries == 0:
		attempts = defaultMaxRetries + 1
	case opts.MaxRetries < 0:
		attempts = 1
	}
	retryer := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		if opts.MaxBackoff > 0 {
			o.MaxBackoff = opts.MaxBackoff
		}
		// A batch job should ride out throttling, bounded by MaxAttempts
		// per request, instead of failing once a shared retry budget is
		// spent.
		o.RateLimiter = ratelimit.None
	})
	d.retryer = retryer
	d.opts = func(o *s3.Options) { o.Retryer = retryer }
	return &Bucket{d: d}, nil
}

// NewS3Client returns a client for AWS S3 (endpoint "") or an S3-compatible
// server such as MinIO (endpoint "http://host:port"). pathStyle selects
// path-style addressing (http://host/bucket/key), which MinIO needs. With an
// endpoint and no region in cfg, the region is "us-east-1".
func NewS3Client(cfg aws.Config, endpoint string, pathStyle bool) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			if o.Region == "" {
				o.Region = "us-east-1"
			}
		}
		o.UsePathStyle = pathStyle
		// Ranged GETs carry no whole-object checksum to validate; without
		// this the SDK logs a line to the process's stderr for each one.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}

// checkBucketName applies S3's bucket naming rules: 3 to 63 characters of
// lower-case letters, digits, '.' and '-', starting and ending with a letter
// or digit.
func checkBucketName(name string) error {
	ok := len(name) >= 3 && len(name) <= 63
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		edge := i == 0 || i == len(name)-1
		ok = alnum || !edge && (c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("storage: invalid S3 bucket name %q (3-63 characters: a-z, 0-9, '.', '-')", name)
	}
	return nil
}

type s3Driver struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or ending in "/"
	partSize int64
	resumes  int
	opts     func(*s3.Options) // per-request options: the retryer
	retryer  aws.RetryerV2     // the one opts sets
	slots    chan struct{}     // one token per part being uploaded
}

func (d *s3Driver) url(key string) string { return "s3://" + d.bucket + "/" + d.prefix + key }

func (d *s3Driver) checkKey(key string) error       { return checkKeyCommon(key) }
func (d *s3Driver) checkPrefix(prefix string) error { return checkPrefixCommon(prefix) }

// fail turns an SDK error into an objectError: the single place where S3
// error codes are classified.
func (d *s3Driver) fail(op, key string, err error) error {
	e := &objectError{op: op, url: d.url(key), err: err}
	for _, ce := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ce) {
			e.err = ce
			return e
		}
	}
	var code string
	var api smithy.APIError
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	status := 0
	var withStatus interface{ HTTPStatusCode() int }
	if errors.As(err, &withStatus) {
		status = withStatus.HTTPStatusCode()
	}
	if ep, reason, ok := unreachable(err); ok {
		e.kind, e.code = errUnreachable, ep+" ("+reason+")"
		return e
	}
	switch {
	case code == "NoSuchBucket":
		e.kind = errNoBucket
	case code == "NoSuchKey" || code == "NotFound" || status == 404:
		e.kind = fs.ErrNotExist
	case code == "PreconditionFailed" || status == 412:
		e.kind = ErrChanged
	case status == 403 || code == "AccessDenied":
		e.kind = fs.ErrPermission
		if code != "AccessDenied" && code != "Forbidden" {
			e.code = code // e.g. InvalidAccessKeyId, ExpiredToken
		}
	}
	return e
}

func (d *s3Driver) list(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	p := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(d.bucket),
		Prefix: aws.String(d.prefix + prefix),
	})
	var out []ObjectInfo
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, d.opts)
		if err != nil {
			return nil, d.fail("ListObjectsV2", prefix, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), d.prefix)
			size := aws.ToInt64(o.Size)
			if key == "" || strings.HasSuffix(key, "/") && size == 0 {
				continue // the prefix itself, or a folder marker
			}
			if isStageName(path.Base(key)) {
				continue // a staged object's marker (staged_s3.go)
			}
			out = append(out, ObjectInfo{
				Key:     key,
				Size:    size,
				ETag:    aws.ToString(o.ETag),
				ModTime: aws.ToTime(o.LastModified),
			})
		}
	}
	// S3 lists in UTF-8 byte order already; compatible servers may not.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (d *s3Driver) stat(ctx context.Context, key string) (ObjectInfo, error) {
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(d.bucket),
		Key:    aws.String(d.prefix + key),
	}, d.opts)
	if err != nil {
		return ObjectInfo{}, d.fail("HeadObject", key, err)
	}
	return ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    aws.ToString(out.ETag),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

func (d *s3Driver) delete(ctx context.Context, key string) error {
	_, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(d.bucket),
		Key:    aws.String(d.prefix + key),
	}, d.opts)
	if err != nil {
		err = d.fail("DeleteObject", key, err)
		if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errNoBucket) {
			return nil
		}
		return err
	}
	return nil
}

// parseContentRange parses "bytes FIRST-LAST/TOTAL" (TOTAL may be "*",
// returned as -1).
func parseContentRange(s string) (first, last, total int64, ok bool) {
	s, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	total = -1
	if tot != "*" {
		total, err3 = strconv.ParseInt(tot, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || last < first {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
