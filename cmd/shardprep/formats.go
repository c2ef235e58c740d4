package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/format"
	"github.com/shardprep/shardprep/storage"
)

// applyOutputFormat sets the output format of spec: --output-format, or
// else the spec's own, which must be one.
func (cfg *runConfig) applyOutputFormat(spec *features.Spec) error {
	if cfg.format != "" {
		if _, err := features.ParseOutputFormat(cfg.format); err != nil {
			return usagef("--output-format: %v", err)
		}
		spec.Output.Format = cfg.format
		return nil
	}
	if _, err := features.ParseOutputFormat(spec.Output.Format); err != nil {
		return fmt.Errorf("--spec %s: output.format: %w", cfg.spec, err)
	}
	return nil
}

// headParquet prints the first n rows of the parquet part obj of b as
// text lines.
func headParquet(ctx context.Context, b *storage.Bucket, obj storage.ObjectInfo, n int, stdout io.Writer) error {
	r := &objectReaderAt{ctx: ctx, b: b, obj: obj}
	if err := format.ParquetLines(ctx, r, n, stdout); err != nil {
		return fmt.Errorf("%s: %w", b.URL(obj.Key), err)
	}
	return nil
}

// objectReaderAt reads an object of a bucket at any offset, one range
// read a call: the parquet reader reads the footer, then column chunks.
type objectReaderAt struct {
	ctx context.Context // the command's: a reader lives as long as it
	b   *storage.Bucket
	obj storage.ObjectInfo
	pos int64
}

func (r *objectReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.obj.Size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.obj.Size-off)
	rc, err := r.b.NewRangeReader(r.ctx, r.obj.Key, r.obj.ETag, off, n)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	got, err := io.ReadFull(rc, p[:n])
	if err == nil && n < int64(len(p)) {
		err = io.EOF
	}
	return got, err
}

func (r *objectReaderAt) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.obj.Size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.pos = offset
	return offset, nil
}
