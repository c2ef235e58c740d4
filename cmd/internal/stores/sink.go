package stores

import (
	"context"
	"encoding/json"

	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// Sink is the output bucket b as the pipeline's Sink: staged objects
// cross the pipeline as the JSON of their storage.Staged description.
func Sink(b *storage.Bucket) pipeline.Sink { return outputSink{b} }

type outputSink struct{ *storage.Bucket }

func (s outputSink) NewStagedWriter(ctx context.Context, key, stage string) (pipeline.StagedWriter, error) {
	w, err := s.Bucket.NewStagedWriter(ctx, key, stage)
	if err != nil {
		return nil, err
	}
	return stagedWriter{w}, nil
}

func (s outputSink) Publish(ctx context.Context, staged json.RawMessage) error {
	st, err := decodeStaged(staged)
	if err != nil {
		return err
	}
	return s.Bucket.Publish(ctx, st)
}

func (s outputSink) Discard(ctx context.Context, staged json.RawMessage) error {
	st, err := decodeStaged(staged)
	if err != nil {
		return err
	}
	return s.Bucket.Discard(ctx, st)
}

func (s outputSink) Size(ctx context.Context, key string) (int64, error) {
	info, err := s.Stat(ctx, key)
	return info.Size, err
}

func decodeStaged(data json.RawMessage) (storage.Staged, error) {
	var st storage.Staged
	err := json.Unmarshal(data, &st)
	return st, err
}

// stagedWriter describes its staged object as JSON.
type stagedWriter struct{ *storage.StagedWriter }

func (w stagedWriter) Staged() json.RawMessage {
	st := w.StagedWriter.Staged()
	if st.Key == "" {
		return nil
	}
	data, _ := json.Marshal(st)
	return data
}
