package pipeline

import (
	"context"
	"io"
)

// Object is one input object.
type Object struct {
	// URL opens the object through a Source (s3://bucket/key, a local path,
	// mem://...). It also names the object in error messages.
	URL string `json:"url"`
	// Name is the object's key relative to the --input argument it was
	// listed under (the base name for a single object). It seeds the hash
	// split, so the same data gives the same split wherever it is stored.
	Name string `json:"name"`
	Size int64  `json:"size"`
	// ETag pins reads to this version of the object; empty when the store
	// has none.
	ETag string `json:"etag,omitempty"`
	// Root is the location the object was listed under (URL = Root + the
	// object's key below it), so that every worker opens the same store
	// root, with the same credentials scope, as the coordinator did.
	Root string `json:"root"`
}

// Source opens byte ranges of input objects.
type Source interface {
	// NewRangeReader reads length bytes of the object at url from offset
	// (length < 0: to the end). A non-empty etag pins the read to that
	// version: a replaced object is an error, not mixed data.
	NewRangeReader(ctx context.Context, url, etag string, offset, length int64) (io.ReadCloser, error)
}

// Sink receives output objects under the job's output root; keys are
// slash-separated and relative to it ("train/part-00000").
type Sink interface {
	// NewWriter starts an object. It becomes visible only when Close
	// returns nil; if ctx is cancelled first, nothing is left behind.
	NewWriter(ctx context.Context, key string) (io.WriteCloser, error)
	// Delete removes an object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
}
