package stores

import (
	"context"
	"errors"
	"io"

	"github.com/shardprep/shardprep/storage"
)

// ReaderAt reads the object obj of b at any offset, one range read a
// call, as a reader of a file format that starts at its end (a Parquet
// footer) needs; ctx bounds every read.
func ReaderAt(ctx context.Context, b *storage.Bucket, obj storage.ObjectInfo) interface {
	io.ReaderAt
	io.Seeker
} {
	return &objectReaderAt{ctx: ctx, b: b, obj: obj}
}

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
