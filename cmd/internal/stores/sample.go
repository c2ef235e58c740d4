package stores

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
)

// OpenFirst opens the object an input argument names, or of a folder or
// prefix the first by name (hidden objects and earlier outputs left
// out, as a job lists its inputs), decompressed when its name ends in
// .gz; it returns the object's URL too. The caller closes the reader.
func (s *Stores) OpenFirst(ctx context.Context, arg string) (io.ReadCloser, string, error) {
	objs, err := s.Inputs(ctx, []string{arg}, "")
	if err != nil {
		return nil, "", err
	}
	obj := objs[0]
	rc, err := s.NewRangeReader(ctx, obj.URL, obj.ETag, 0, -1)
	if err != nil {
		return nil, "", err
	}
	if !strings.HasSuffix(obj.Name, ".gz") {
		return rc, obj.URL, nil
	}
	gz, err := gzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, "", fmt.Errorf("%s: %w", obj.URL, err)
	}
	return gzReadCloser{gz, rc}, obj.URL, nil
}

// gzReadCloser reads a gzip stream and closes the object under it.
type gzReadCloser struct {
	*gzip.Reader
	obj io.Closer
}

func (g gzReadCloser) Close() error {
	g.Reader.Close()
	return g.obj.Close()
}
