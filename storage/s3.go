package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

const (
	// DefaultPartSize is the multipart upload part size when S3Options
	// leaves it zero.
	DefaultPartSize = 16 << 20
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
	// PartSize is the multipart upload part size: a writer holds one part
	// in memory, and an object smaller than PartSize is sent with a single
	// PutObject on Close. Default DefaultPartSize; at least MinPartSize and
	// at most 5 GiB. An object may have at most 10000 parts.
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

func (d *s3Driver) newRangeReader(ctx context.Context, key, etag string, offset, length int64) (io.ReadCloser, error) {
	r := &s3Reader{ctx: ctx, d: d, key: key, etag: etag, pos: offset, end: -1}
	if length >= 0 {
		r.end = offset + length
	}
	// Open now so that a missing object or a changed ETag is reported by
	// NewRangeReader itself.
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// s3Reader streams a byte range with GetObject and reconnects from the last
// byte received when the body fails. It keeps the ctx it was opened with
// because io.Reader has no other way to be cancelled.
type s3Reader struct {
	ctx   context.Context
	d     *s3Driver
	key   string
	etag  string // pins every request; set from the first response if empty
	pos   int64  // offset of the next byte to return
	end   int64  // offset after the last byte; -1 until the object's size is known
	body  io.ReadCloser
	fails int  // consecutive failures without progress
	done  bool // the range is empty (offset at or past the end of the object)
	err   error
}

// open issues a GetObject for [pos, end).
func (r *s3Reader) open() error {
	rng := fmt.Sprintf("bytes=%d-", r.pos)
	if r.end >= 0 {
		rng += strconv.FormatInt(r.end-1, 10)
	}
	in := &s3.GetObjectInput{
		Bucket: aws.String(r.d.bucket),
		Key:    aws.String(r.d.prefix + r.key),
		Range:  aws.String(rng),
	}
	if r.etag != "" {
		in.IfMatch = aws.String(r.etag)
	}
	out, err := r.d.client.GetObject(r.ctx, in, r.d.opts)
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "InvalidRange" {
			r.done = true // the object exists but ends at or before pos
			return nil
		}
		return r.d.fail("GetObject", r.key, err)
	}
	if r.etag == "" {
		r.etag = aws.ToString(out.ETag)
	} else if got := aws.ToString(out.ETag); got != "" && got != r.etag {
		out.Body.Close()
		return &objectError{op: "GetObject", url: r.d.url(r.key), kind: ErrChanged}
	}
	// Learn where the object ends, so that a body cut short is told apart
	// from the end of the object, and a range past the end is cut there.
	first, last, total, ok := parseContentRange(aws.ToString(out.ContentRange))
	switch {
	case ok && first == r.pos && total >= 0:
		if r.end < 0 || r.end > total {
			r.end = total
		}
	case ok && first == r.pos:
		r.end = last + 1
	case out.ContentRange == nil && r.pos == 0 && out.ContentLength != nil:
		// The whole object, sent without a range.
		if r.end < 0 || r.end > *out.ContentLength {
			r.end = *out.ContentLength
		}
	default:
		out.Body.Close()
		return &objectError{op: "GetObject", url: r.d.url(r.key),
			err: fmt.Errorf("response to %q has Content-Range %q", rng, aws.ToString(out.ContentRange))}
	}
	r.body = out.Body
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

func (r *s3Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		if r.done || r.end >= 0 && r.pos >= r.end {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				r.err = err
				return 0, err
			}
			continue
		}
		if rest := r.end - r.pos; int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := r.body.Read(p)
		r.pos += int64(n)
		if n > 0 {
			r.fails = 0
		}
		if err == nil || err == io.EOF && r.pos >= r.end {
			return n, nil // EOF is reported by the next call
		}
		// The body ended early or the connection failed: reconnect from pos.
		r.body.Close()
		r.body = nil
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			r.err = &objectError{op: "GetObject", url: r.d.url(r.key), err: ctxErr}
			return n, r.err
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.fails++
		if r.fails > r.d.resumes {
			r.err = &objectError{op: "GetObject", url: r.d.url(r.key),
				err: fmt.Errorf("connection failed at byte %d, %d times in a row: %w", r.pos, r.fails, err)}
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
		if err := sleepCtx(r.ctx, time.Duration(r.fails)*100*time.Millisecond); err != nil {
			r.err = &objectError{op: "GetObject", url: r.d.url(r.key), err: err}
			return 0, r.err
		}
	}
}

func (r *s3Reader) Close() error {
	if r.err == nil {
		r.err = errors.New("storage: read after Close")
	}
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
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

func (d *s3Driver) newWriter(ctx context.Context, key string) (driverWriter, error) {
	return &s3Writer{ctx: ctx, d: d, key: key}, nil
}

// s3Writer buffers up to one part. The first part to fill starts a
// multipart upload; an object that never fills a part is sent on commit
// with PutObject. Its requests run on the writer's ctx, so a cancellation
// interrupts them; abort then discards the upload.
type s3Writer struct {
	ctx      context.Context
	d        *s3Driver
	key      string
	buf      []byte
	uploadID string
	parts    []types.CompletedPart
	// stage is set for a staged writer (staged_s3.go): the upload records
	// it, and a marker object names the upload.
	stage  string
	marker bool // the marker may exist (it was written by this writer)
}

func (w *s3Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		// Send a full part only once more data arrives, so that an object
		// of exactly one part goes out as a single PutObject.
		if int64(len(w.buf)) == w.d.partSize {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
		k := min(int64(len(p)), w.d.partSize-int64(len(w.buf)))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		n += int(k)
	}
	return n, nil
}

// flush uploads the buffer as the next part.
func (w *s3Writer) flush() error {
	key := aws.String(w.d.prefix + w.key)
	if w.uploadID == "" {
		if err := w.start(); err != nil {
			return err
		}
	}
	if len(w.parts) == maxParts {
		return &objectError{op: "UploadPart", url: w.d.url(w.key),
			err: fmt.Errorf("object exceeds %d parts of %d bytes; use a larger part size", maxParts, w.d.partSize)}
	}
	num := int32(len(w.parts) + 1)
	out, err := w.d.client.UploadPart(w.ctx, &s3.UploadPartInput{
		Bucket:            aws.String(w.d.bucket),
		Key:               key,
		UploadId:          aws.String(w.uploadID),
		PartNumber:        aws.Int32(num),
		Body:              bytes.NewReader(w.buf),
		ContentLength:     aws.Int64(int64(len(w.buf))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}, w.d.opts)
	if err != nil {
		return w.d.fail("UploadPart", w.key, err)
	}
	w.parts = append(w.parts, types.CompletedPart{
		PartNumber:    aws.Int32(num),
		ETag:          out.ETag,
		ChecksumCRC32: out.ChecksumCRC32,
	})
	w.buf = w.buf[:0]
	return nil
}

// start begins the multipart upload. A staged writer's upload carries its
// stage as metadata, and a marker object records it once started.
func (w *s3Writer) start() error {
	if err := w.ctx.Err(); err != nil {
		return w.d.fail("CreateMultipartUpload", w.key, err)
	}
	in := &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(w.d.bucket),
		Key:               aws.String(w.d.prefix + w.key),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}
	if w.stage != "" {
		in.Metadata = map[string]string{stageMetaKey: w.stage}
	}
	// Not on w.ctx: a cancellation racing the request could drop an
	// answer whose upload then exists unknown to us, and so is never
	// aborted. Once the ID is known, a cancellation aborts it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	out, err := w.d.client.CreateMultipartUpload(cctx, in, w.d.opts)
	if err != nil {
		return w.d.fail("CreateMultipartUpload", w.key, err)
	}
	w.uploadID = aws.ToString(out.UploadId)
	if w.stage != "" {
		return w.putMarker()
	}
	return nil
}

// abort drops the buffer and aborts the multipart upload, if one was
// started, on a context that outlives the writer's (it may be the
// cancellation being handled), bounded by abortTimeout.
func (w *s3Writer) abort() error {
	w.buf = nil
	if w.uploadID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	_, err := w.d.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(w.d.bucket),
		Key:      aws.String(w.d.prefix + w.key),
		UploadId: aws.String(w.uploadID),
	}, w.d.opts)
	if err != nil {
		return fmt.Errorf("aborting multipart upload %s: %w", w.uploadID, w.d.fail("AbortMultipartUpload", w.key, err))
	}
	w.uploadID = ""
	return nil
}

func (w *s3Writer) commit() error {
	if w.uploadID == "" {
		_, err := w.d.client.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket:        aws.String(w.d.bucket),
			Key:           aws.String(w.d.prefix + w.key),
			Body:          bytes.NewReader(w.buf),
			ContentLength: aws.Int64(int64(len(w.buf))),
		}, w.d.opts)
		w.buf = nil
		if err != nil {
			return w.d.fail("PutObject", w.key, err)
		}
		return nil
	}
	if len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.buf = nil
	_, err := w.d.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(w.d.bucket),
		Key:             aws.String(w.d.prefix + w.key),
		UploadId:        aws.String(w.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	}, w.d.opts)
	if err != nil {
		return w.d.fail("CompleteMultipartUpload", w.key, err)
	}
	return nil
}
