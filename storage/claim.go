package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Create writes data as the object at key only if no object is there: of
// several Creates of one key, concurrent or not, in one process or many,
// exactly one succeeds, and the others fail with an error wrapping
// fs.ErrExist. The object is visible whole or not at all (locally a synced
// temporary file hard-linked into place; on S3 a PutObject with
// If-None-Match: *; in memory under the bucket's lock).
//
// Claimants should write distinct data (e.g. naming themselves): when an S3
// request is retried after its answer was lost, Create reads the object
// back and counts identical data as its own.
func (b *Bucket) Create(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.d.checkKey(key); err != nil {
		return err
	}
	return b.d.(creator).create(ctx, key, data)
}

// creator is the exclusive-create half of a driver.
type creator interface {
	create(ctx context.Context, key string, data []byte) error
}

var (
	_ creator = (*localDriver)(nil)
	_ creator = (*memDriver)(nil)
	_ creator = (*s3Driver)(nil)
)

func (d *memDriver) create(_ context.Context, key string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.objects[key]; ok {
		return &objectError{op: "create", url: d.url(key), kind: fs.ErrExist}
	}
	d.objects[key] = newMemObject(bytes.Clone(data))
	return nil
}

// create stages data in a hidden temporary file (as a writer does, so Sweep
// removes one a killed process left) and links it to the key: a link, unlike
// a rename, fails if the key exists.
func (d *localDriver) create(ctx context.Context, key string, data []byte) error {
	w, err := d.newWriter(ctx, key)
	if err != nil {
		return err
	}
	lw := w.(*localWriter)
	defer lw.abort() // the temporary file goes in any case
	if _, err := lw.Write(data); err != nil {
		return err
	}
	if err := lw.f.Chmod(0o644); err != nil {
		return d.fail("create", key, err)
	}
	if err := lw.f.Sync(); err != nil {
		return d.fail("create", key, err)
	}
	if err := lw.f.Close(); err != nil {
		return d.fail("create", key, err)
	}
	if err := os.Link(lw.f.Name(), lw.target); err != nil {
		return d.fail("create", key, err)
	}
	syncDir(filepath.Dir(lw.target))
	return nil
}

func (d *s3Driver) create(ctx context.Context, key string, data []byte) error {
	r := &conditionalRetryer{RetryerV2: d.retryer}
	_, err := d.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(d.bucket),
		Key:               aws.String(d.prefix + key),
		Body:              bytes.NewReader(data),
		ContentLength:     aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		ChecksumCRC32:     aws.String(crc32Of(data)),
		IfNoneMatch:       aws.String("*"),
	}, d.opts, withChecksumOnly, func(o *s3.Options) { o.Retryer = r })
	if err == nil {
		return nil
	}
	err = d.fail("PutObject", key, err)
	var oe *objectError
	if !errors.As(err, &oe) || oe.kind != ErrChanged {
		return err
	}
	// 412: the key exists. If an earlier attempt of ours may have created
	// it, the object's data tells.
	if r.retried.Load() && d.holds(ctx, key, data) {
		return nil
	}
	oe.kind = fs.ErrExist
	return oe
}

// holds reports whether the object at key holds exactly data.
func (d *s3Driver) holds(ctx context.Context, key string, data []byte) bool {
	r, err := d.newRangeReader(ctx, key, "", 0, int64(len(data))+1)
	if err != nil {
		return false
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	return err == nil && bytes.Equal(got, data)
}

// conditionalRetryer retries as the bucket's retryer does, and also retries
// a conditional write that met a concurrent one (409
// ConditionalRequestConflict, which S3 asks clients to retry). It records
// whether any retry happened.
type conditionalRetryer struct {
	aws.RetryerV2
	retried atomic.Bool
}

func (r *conditionalRetryer) IsErrorRetryable(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "ConditionalRequestConflict" {
		return true
	}
	return r.RetryerV2.IsErrorRetryable(err)
}

func (r *conditionalRetryer) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	r.retried.Store(true)
	return r.RetryerV2.GetRetryToken(ctx, opErr)
}
