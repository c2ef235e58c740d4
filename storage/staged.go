package storage

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// MaxStageLen is the longest stage id NewStagedWriter accepts.
const MaxStageLen = 100

// stageMetaKey names the S3 user metadata (x-amz-meta-shardprep-stage) that
// records, on a staged upload and so on the object it publishes, the stage
// that wrote it.
const stageMetaKey = "shardprep-stage"

// Staged describes a staged object: data written by a StagedWriter that is
// not visible at Key until Publish. It is all another process needs to
// publish or discard the object, and it is meant to be sent there as JSON.
type Staged struct {
	Key   string `json:"key"`
	Stage string `json:"stage"`
	Size  int64  `json:"size"`
	// UploadID and Parts are set on S3: the multipart upload, started on
	// Key, that holds the data, and its parts in order.
	UploadID string       `json:"upload_id,omitempty"`
	Parts    []StagedPart `json:"parts,omitempty"`
}

// StagedPart is one uploaded part of an S3 staged object.
type StagedPart struct {
	Number int32  `json:"number"`
	ETag   string `json:"etag"`
	CRC32  string `json:"crc32,omitempty"`
}

// stager is the staged-write half of a driver. Keys reaching it have passed
// checkKey, stages checkStage.
type stager interface {
	newStagedWriter(ctx context.Context, key, stage string) (stagedDriverWriter, error)
	// publish makes s visible at s.Key (s has passed checkStaged).
	publish(ctx context.Context, s Staged) error
	discard(ctx context.Context, s Staged) error
	// discardStages removes the stages of keys starting with prefix that
	// keep rejects.
	discardStages(ctx context.Context, prefix string, keep func(key, stage string) bool) (int, error)
}

// stagedDriverWriter stages one object; on commit it makes the staged data
// durable instead of publishing it.
type stagedDriverWriter interface {
	driverWriter
	// staged describes what a successful commit staged.
	staged() Staged
}

var (
	_ stager = (*localDriver)(nil)
	_ stager = (*memDriver)(nil)
	_ stager = (*s3Driver)(nil)
)

// StagedWriter writes a staged object; see Bucket.NewStagedWriter.
type StagedWriter struct {
	g *writer
	w stagedDriverWriter
}

// NewStagedWriter starts writing a staged object for key: data that becomes
// visible at key only when Publish is called with its description, possibly
// by another process. stage names the writer (for instance a job and an
// attempt): 1 to MaxStageLen characters of A-Z, a-z, 0-9 and '-'. One key
// has at most one staged object per stage; a second one fails with an error
// wrapping fs.ErrExist (on S3 only by Close, when the first has already
// started uploading).
//
// As with NewWriter, a Write error or a cancelled ctx before Close discards
// everything written. Close makes the staged data durable; then Staged
// describes it. Once closed, the stage outlives ctx and the process: it
// stays until Publish, Discard or DiscardStages removes it.
func (b *Bucket) NewStagedWriter(ctx context.Context, key, stage string) (*StagedWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.checkStagedKey(key); err != nil {
		return nil, err
	}
	if err := checkStage(stage); err != nil {
		return nil, err
	}
	w, err := b.d.(stager).newStagedWriter(ctx, key, stage)
	if err != nil {
		return nil, err
	}
	g := &writer{ctx: ctx, url: b.d.url(key), w: w}
	g.stop = context.AfterFunc(ctx, g.cancel)
	return &StagedWriter{g: g, w: w}, nil
}

// Write writes p to the staged object.
func (w *StagedWriter) Write(p []byte) (int, error) { return w.g.Write(p) }

// Close makes the staged data durable. It fails if the stage was discarded
// while being written (with an error wrapping fs.ErrNotExist), and then, as
// after any failure, nothing is staged.
func (w *StagedWriter) Close() error { return w.g.Close() }

// Staged describes the staged object once Close has returned nil; before
// that, or after a failure, it returns the zero Staged.
func (w *StagedWriter) Staged() Staged {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	if !w.g.done || w.g.err != nil {
		return Staged{}
	}
	return w.w.staged()
}

// Publish makes the staged object s visible at s.Key, all at once,
// replacing any object there: locally a rename, in memory a move, on S3 the
// completion of its multipart upload. It first checks that the staged data
// still has s.Size bytes (and, on S3, s.Parts). A stage that was already
// published or discarded is an error wrapping fs.ErrNotExist.
func (b *Bucket) Publish(ctx context.Context, s Staged) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.checkStaged(s); err != nil {
		return err
	}
	return b.d.(stager).publish(ctx, s)
}

// Discard removes the staged object s. A stage that is already gone
// (published or discarded) is not an error; a published object stays.
func (b *Bucket) Discard(ctx context.Context, s Staged) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.checkStaged(s); err != nil {
		return err
	}
	return b.d.(stager).discard(ctx, s)
}

// DiscardStages removes every staged object whose key starts with prefix
// and for which keep(key, stage) returns false (a nil keep removes them
// all), and returns how many it removed. It finds stages by their names
// (".NAME.stage-STAGE" beside the key; on S3 a small object of that name
// records the upload), so it also removes stages that were never closed,
// those of writers that were killed or are still writing: such a writer's
// Close then fails. On S3 a writer that has not yet sent its first part
// has no upload to find (it stages later, and a later DiscardStages removes
// that), and an upload whose writer was killed between starting and
// recording it is not found: a bucket lifecycle rule that aborts incomplete
// multipart uploads removes those. Objects are never touched.
func (b *Bucket) DiscardStages(ctx context.Context, prefix string, keep func(key, stage string) bool) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := b.d.checkPrefix(prefix); err != nil {
		return 0, err
	}
	if keep == nil {
		keep = func(string, string) bool { return false }
	}
	return b.d.(stager).discardStages(ctx, prefix, keep)
}

// checkStagedKey applies the backend's key rules, and rejects a key ending
// in "/", which has no name to stage beside.
func (b *Bucket) checkStagedKey(key string) error {
	if err := b.d.checkKey(key); err != nil {
		return err
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("storage: object key %q ends with \"/\"", key)
	}
	return nil
}

func (b *Bucket) checkStaged(s Staged) error {
	if err := b.checkStagedKey(s.Key); err != nil {
		return err
	}
	if err := checkStage(s.Stage); err != nil {
		return err
	}
	if s.Size < 0 {
		return fmt.Errorf("storage: staged %s has a negative size %d", b.d.url(s.Key), s.Size)
	}
	return nil
}

// checkStage accepts 1 to MaxStageLen characters of A-Z, a-z, 0-9 and '-'.
func checkStage(stage string) error {
	if stage == "" || len(stage) > MaxStageLen {
		return fmt.Errorf("storage: stage id %q must have 1 to %d characters", stage, MaxStageLen)
	}
	for i := 0; i < len(stage); i++ {
		c := stage[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("storage: stage id %q may hold only A-Z, a-z, 0-9 and '-'", stage)
		}
	}
	return nil
}

const stageInfix = ".stage-"

// stageName is the name of base's staged object of stage, beside base:
// hidden, so that List and readers of the folder (Hadoop, Spark) skip it.
func stageName(base, stage string) string { return "." + base + stageInfix + stage }

// stageKey is the key at which key's staged object of stage is kept.
func stageKey(key, stage string) string {
	dir, base := path.Split(key)
	return dir + stageName(base, stage)
}

// parseStageName splits a name made by stageName. A stage holds no '.', so
// the last stageInfix separates base and stage.
func parseStageName(name string) (base, stage string, ok bool) {
	if !strings.HasPrefix(name, ".") {
		return "", "", false
	}
	i := strings.LastIndex(name, stageInfix)
	if i < 2 {
		return "", "", false
	}
	base, stage = name[1:i], name[i+len(stageInfix):]
	if checkStage(stage) != nil {
		return "", "", false
	}
	return base, stage, true
}

// isStageName reports whether a file or object name is a staged object's.
func isStageName(name string) bool {
	_, _, ok := parseStageName(name)
	return ok
}

// parseStageKey splits a key made by stageKey.
func parseStageKey(k string) (key, stage string, ok bool) {
	dir, name := path.Split(k)
	base, stage, ok := parseStageName(name)
	if !ok {
		return "", "", false
	}
	return dir + base, stage, true
}

// errDiscarded is the cause when a stage vanished while being written.
var errDiscarded = fmt.Errorf("the stage was discarded while being written (%w)", fs.ErrNotExist)
