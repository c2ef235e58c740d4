// Package stores opens the storage of a shardprep process: the buckets of
// a job's inputs and output through one storage.Router, S3 buckets
// through a storage.S3Opener made from the process's S3 settings on first
// use, local folders, and the sample built into the binary (package
// sample) at SampleURL.
// Sink makes an output bucket the pipeline's Sink.
//
// Check turns a mistake in the S3 settings into a command-line error.
package stores

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/shardprep/sample"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// SampleURL is the object of the sample built into the binary.
const SampleURL = sampleRoot + sampleName

const (
	sampleRoot = "bundled:"
	sampleName = "abalone.csv"
)

// Check checks the values of the S3 settings: a mistake is a usage error.
func Check(cfg storage.S3Config) error {
	if err := cfg.Check(); err != nil {
		return cli.Usagef("%v", err)
	}
	return nil
}

// Stores opens the buckets a process touches through a storage.Router.
// It is safe for concurrent use.
type Stores struct {
	*storage.Router
	cfg storage.S3Config
	env func(string) string
	log *slog.Logger

	once sync.Once
	s3   *storage.S3Opener
}

// New returns the Stores of the S3 settings cfg, with env as the
// process's environment.
func New(cfg storage.S3Config, env func(string) string, log *slog.Logger) *Stores {
	s := &Stores{cfg: cfg, env: env, log: log}
	bundled := storage.NewMemory()
	if err := bundled.Put(context.Background(), sampleName, sample.CSV); err != nil {
		panic("bundled sample: " + err.Error()) // a memory bucket takes any valid key
	}
	s.Router = storage.NewRouter(&storage.RouterOptions{OpenS3: s.openS3, Mounts: map[string]*storage.Bucket{sampleRoot: bundled}})
	return s
}

func (s *Stores) opener() *storage.S3Opener {
	s.once.Do(func() { s.s3 = storage.NewS3Opener(s.cfg, s.env, s.log) })
	return s.s3
}

func (s *Stores) openS3(ctx context.Context, bucket, prefix string, write bool) (*storage.Bucket, error) {
	return s.opener().Open(ctx, bucket, prefix, write)
}

// GrantCalls is how many GetDataAccess/AssumeRole requests were made.
func (s *Stores) GrantCalls() int64 { return s.opener().GrantCalls() }

// Source routes the pipeline's reads of objs to the buckets they were
// listed under.
func (s *Stores) Source(objs []pipeline.Object) pipeline.Source {
	for _, o := range objs {
		s.Route(o.URL, o.Root)
	}
	return s.Router
}

// Inputs expands the --input arguments into objects, in argument order
// then key order, leaving out hidden objects, those under the output and
// earlier outputs under an input.
func (s *Stores) Inputs(ctx context.Context, args []string, output string) ([]pipeline.Object, error) {
	found, err := s.Expand(ctx, args, &storage.ExpandOptions{Output: output, Outputs: pipeline.OutputFolders, Log: s.log})
	if err != nil {
		return nil, err
	}
	objs := make([]pipeline.Object, len(found))
	for i, o := range found {
		objs[i] = pipeline.Object(o)
	}
	return objs, nil
}

// Display is how root, a root of storage.Root, is shown to people: a
// local folder without its final slash.
func Display(root string) string {
	if strings.HasPrefix(root, "s3://") {
		return root
	}
	return strings.TrimSuffix(root, "/")
}
