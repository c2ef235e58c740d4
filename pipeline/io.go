package pipeline

import (
	"context"
	"encoding/json"
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
//
// Parts are written as staged objects, so that a worker's writes become
// part of the output only when the coordinator commits the attempt that
// made them: a worker stages its parts under a stage id naming the job run
// and its lease, and reports their descriptions; the coordinator publishes
// the accepted ones and discards the rest.
type Sink interface {
	// NewWriter starts an object. It becomes visible only when Close
	// returns nil; if ctx is cancelled first, nothing is left behind.
	NewWriter(ctx context.Context, key string) (io.WriteCloser, error)
	// Delete removes an object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// NewStagedWriter starts a staged object for key: once its Close
	// returns nil the data is durable but not visible at key until
	// Publish is called with its description. stage is 1 to 100
	// characters of A-Z, a-z, 0-9 and '-'.
	NewStagedWriter(ctx context.Context, key, stage string) (StagedWriter, error)
	// Publish makes the staged object described by staged (a
	// StagedWriter's Staged) visible at its key, replacing any object
	// there, after checking that it still holds its size in bytes. A
	// stage already published or discarded is an error.
	Publish(ctx context.Context, staged json.RawMessage) error
	// Discard removes a staged object; one already gone is not an error.
	Discard(ctx context.Context, staged json.RawMessage) error
	// DiscardStages removes every staged object of a key starting with
	// prefix for which keep(key, stage) is false, and says how many.
	DiscardStages(ctx context.Context, prefix string, keep func(key, stage string) bool) (int, error)
	// Size returns the size of the object at key; a missing object is an
	// error wrapping fs.ErrNotExist.
	Size(ctx context.Context, key string) (int64, error)
}

// StagedWriter writes a staged object (see Sink.NewStagedWriter).
type StagedWriter interface {
	io.WriteCloser
	// Staged describes the staged object once Close has returned nil, as
	// JSON holding at least its "key", "stage" and "size"; nil before.
	Staged() json.RawMessage
}
