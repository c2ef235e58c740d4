package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// discardStore is a Sink whose staged objects are thrown away, for
// benchmarks of the passes alone.
type discardStore struct{ memStore }

type discardWriter struct{ n int64 }

func (w *discardWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
func (w *discardWriter) Close() error                { return nil }
func (w *discardWriter) Staged() json.RawMessage     { return json.RawMessage(`{}`) }

func (d *discardStore) NewStagedWriter(ctx context.Context, key, stage string) (StagedWriter, error) {
	return &discardWriter{}, nil
}

// BenchmarkPasses runs the fit pass and the transform pass (hash split)
// over one split of about 1M Abalone rows (the bundled sample repeated),
// in memory, on one goroutine: the CPU cost per input byte of each pass.
// Profile it with -cpuprofile.
func BenchmarkPasses(b *testing.B) {
	sample, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat(sample, 240)
	store := &discardStore{*newMemStore()}
	store.objects["in/big.csv"] = data
	spec, err := features.ParseSpec([]byte(testSpec))
	if err != nil {
		b.Fatal(err)
	}
	obj := Object{URL: "in/big.csv", Name: "big.csv", Size: int64(len(data)), Root: "in/"}
	job, err := NewJob(spec, []Object{obj}, &Settings{Seed: 1, SplitSize: int64(len(data))})
	if err != nil {
		b.Fatal(err)
	}
	task := func() *splitTask {
		return &splitTask{job: job, split: job.Splits[0], src: store, mem: memory.NewGoAllocator(), ctr: &counters{}}
	}
	res, err := task().runFit(context.Background(), false)
	if err != nil {
		b.Fatal(err)
	}
	model, err := res.Stats.Model()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fit", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := task().runFit(context.Background(), false); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, mode := range []SplitMode{SplitHash, SplitSpark} {
		b.Run("transform-"+string(mode), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				t := task()
				j := *job
				j.SplitMode = mode
				t.job, t.fit = &j, &fitResult{model: model}
				if _, _, err := t.runTransform(context.Background(), store, "bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var _ io.Writer = (*discardWriter)(nil)
