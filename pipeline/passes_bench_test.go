package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

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
// over one split of about 1M Abalone rows (the bundled sample repeated, or
// the file SHARDPREP_BENCH_CSV names, such as rows of shardprep gen), in
// memory, on one goroutine: the CPU cost per input byte of each pass.
// Profile it with -cpuprofile.
func BenchmarkPasses(b *testing.B) {
	data, err := benchInput()
	if err != nil {
		b.Fatal(err)
	}
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
		defer reportCPU(b)()
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
			defer reportCPU(b)()
			for b.Loop() {
				t := task()
				j := *job
				j.SplitMode = mode
				t.job, t.fit = &j, &fitResult{model: model}
				if _, _, err := t.runTransform(context.Background(), store, "bench", false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU starts counting the process's CPU time (user and system, GC
// included); the function it returns reports it per operation as
// cpu-ns/op, which a busy machine disturbs less than the wall time.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchInput returns the rows of BenchmarkPasses.
func benchInput() ([]byte, error) {
	if name := os.Getenv("SHARDPREP_BENCH_CSV"); name != "" {
		return os.ReadFile(name)
	}
	sample, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		return nil, err
	}
	return bytes.Repeat(sample, 240), nil
}

var _ io.Writer = (*discardWriter)(nil)
