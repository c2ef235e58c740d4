package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// memStore is a Source and Sink over a map, for tests of the pipeline alone.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	stages  map[memStage][]byte // staged objects
	// onWrite, if set, runs when a writer is opened.
	onWrite func(key string) error
}

func newMemStore() *memStore {
	return &memStore{objects: map[string][]byte{}, stages: map[memStage][]byte{}}
}

// memStage names a staged object of a memStore; it is also its
// description.
type memStage struct {
	Key   string `json:"key"`
	Stage string `json:"stage"`
	Size  int64  `json:"size"`
}

type memStagedWriter struct {
	memWriter
	stage string
	done  bool
}

func (w *memStagedWriter) Close() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	w.m.stages[memStage{Key: w.key, Stage: w.stage}] = append([]byte(nil), w.buf.Bytes()...)
	w.done = true
	return nil
}

func (w *memStagedWriter) Staged() json.RawMessage {
	if !w.done {
		return nil
	}
	b, _ := json.Marshal(memStage{Key: w.key, Stage: w.stage, Size: int64(w.buf.Len())})
	return b
}

func (m *memStore) NewStagedWriter(ctx context.Context, key, stage string) (StagedWriter, error) {
	if m.onWrite != nil {
		if err := m.onWrite(key); err != nil {
			return nil, err
		}
	}
	return &memStagedWriter{memWriter: memWriter{ctx: ctx, m: m, key: key}, stage: stage}, nil
}

func (m *memStore) Publish(ctx context.Context, staged json.RawMessage) error {
	var s memStage
	if err := json.Unmarshal(staged, &s); err != nil {
		return err
	}
	size := s.Size
	s.Size = 0
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.stages[s]
	if !ok {
		return fmt.Errorf("publish %s stage %s: %w", s.Key, s.Stage, os.ErrNotExist)
	}
	if int64(len(data)) != size {
		return fmt.Errorf("publish %s: %d bytes staged, want %d", s.Key, len(data), size)
	}
	delete(m.stages, s)
	m.objects[s.Key] = data
	return nil
}

func (m *memStore) Discard(ctx context.Context, staged json.RawMessage) error {
	var s memStage
	if err := json.Unmarshal(staged, &s); err != nil {
		return err
	}
	s.Size = 0
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.stages, s)
	return nil
}

func (m *memStore) DiscardStages(ctx context.Context, prefix string, keep func(key, stage string) bool) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for s := range m.stages {
		if strings.HasPrefix(s.Key, prefix) && !keep(s.Key, s.Stage) {
			delete(m.stages, s)
			n++
		}
	}
	return n, nil
}

func (m *memStore) Size(ctx context.Context, key string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[key]
	if !ok {
		return 0, fmt.Errorf("%s: %w", key, os.ErrNotExist)
	}
	return int64(len(data)), nil
}

// stageCount is how many staged objects m holds.
func (m *memStore) stageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.stages)
}

func (m *memStore) NewRangeReader(ctx context.Context, url, etag string, off, n int64) (io.ReadCloser, error) {
	m.mu.Lock()
	data, ok := m.objects[url]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s: %w", url, os.ErrNotExist)
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	end := int64(len(data))
	if n >= 0 && off+n < end {
		end = off + n
	}
	return io.NopCloser(bytes.NewReader(data[off:end])), nil
}

type memWriter struct {
	ctx context.Context
	m   *memStore
	key string
	buf bytes.Buffer
}

func (w *memWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.buf.Write(p)
}

func (w *memWriter) Close() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	w.m.objects[w.key] = append([]byte(nil), w.buf.Bytes()...)
	return nil
}

func (m *memStore) NewWriter(ctx context.Context, key string) (io.WriteCloser, error) {
	if m.onWrite != nil {
		if err := m.onWrite(key); err != nil {
			return nil, err
		}
	}
	return &memWriter{ctx: ctx, m: m, key: key}, nil
}

func (m *memStore) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
	return nil
}

func (m *memStore) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var k []string
	for key := range m.objects {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

const testSpec = `{"columns":[{"name":"sex","type":"string"},{"name":"length","type":"double"},{"name":"diameter","type":"double"},
{"name":"height","type":"double"},{"name":"whole_weight","type":"double"},{"name":"shucked_weight","type":"double"},
{"name":"viscera_weight","type":"double"},{"name":"shell_weight","type":"double"},{"name":"rings","type":"double"}],
"categorical":["sex"],"numeric":["length","diameter","height","whole_weight","shucked_weight","viscera_weight","shell_weight"],
"label":"rings","splits":[{"name":"train","weight":0.8},{"name":"validation","weight":0.2}]}`

// mustCoordinator is NewCoordinator, failing tb on an error.
func mustCoordinator(tb testing.TB, job *Job, src Source, sink Sink, opts *CoordinatorOptions) *Coordinator {
	tb.Helper()
	c, err := NewCoordinator(job, src, sink, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func abaloneJob(t *testing.T, src *memStore, opts *Settings) *Job {
	t.Helper()
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	src.objects["in/abalone.csv"] = data
	spec, err := features.ParseSpec([]byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	job, err := NewJob(spec, []Object{{URL: "in/abalone.csv", Name: "abalone.csv", Size: int64(len(data)), Root: "in/"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

func TestRunCommitsAndAllocatorBalances(t *testing.T) {
	store := newMemStore()
	job := abaloneJob(t, store, &Settings{Seed: 5, SplitSize: 20000})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	res, err := Run(context.Background(), job, store, store, &CoordinatorOptions{Workers: 3, Mem: mem})
	if err != nil {
		t.Fatal(err)
	}
	m := res
	if m.Totals.RowsIn != 4177 || m.Totals.RowsOut["train"]+m.Totals.RowsOut["validation"] != 4177 {
		t.Fatalf("totals %+v", m.Totals)
	}
	keys := strings.Join(store.keys(), " ")
	for _, k := range []string{"train/_SUCCESS", "validation/_SUCCESS", ManifestKey, ModelKey, "train/part-00000", "validation/part-00009"} {
		if !strings.Contains(keys, k) {
			t.Errorf("missing %s in %s", k, keys)
		}
	}
}

// TestCancelledRunLeavesNothing cancels the job as its first part is
// opened: no _SUCCESS, no parts, an error that says it was interrupted.
func TestCancelledRunLeavesNothing(t *testing.T) {
	store := newMemStore()
	job := abaloneJob(t, store, &Settings{Seed: 5, SplitSize: 20000})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store.onWrite = func(key string) error {
		if strings.Contains(key, "part-00003") {
			cancel()
		}
		return nil
	}
	_, err := Run(ctx, job, store, store, &CoordinatorOptions{Workers: 2})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	for _, k := range store.keys() {
		if !strings.HasPrefix(k, "in/") {
			t.Errorf("cancelled run left %s", k)
		}
	}
}

// TestFailingSinkLeavesNothing: a write failure fails the job after its
// retries and removes the parts already written.
func TestFailingSinkLeavesNothing(t *testing.T) {
	store := newMemStore()
	job := abaloneJob(t, store, &Settings{Seed: 5, SplitSize: 20000})
	store.onWrite = func(key string) error {
		if strings.Contains(key, "validation/part-00005") {
			return errors.New("disk on fire")
		}
		return nil
	}
	_, err := Run(context.Background(), job, store, store, &CoordinatorOptions{Workers: 2})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "3 times") {
		t.Fatalf("failing sink: %v", err)
	}
	for _, k := range store.keys() {
		if !strings.HasPrefix(k, "in/") {
			t.Errorf("failed run left %s", k)
		}
	}
}

// TestFailingCommitLeavesNothing: when one of the commit's own objects
// cannot be written, the objects written beside it are removed too, and
// no marker is written.
func TestFailingCommitLeavesNothing(t *testing.T) {
	for _, key := range []string{ModelKey, ManifestKey, ReportKey} {
		t.Run(path.Base(key), func(t *testing.T) {
			store := newMemStore()
			job := abaloneJob(t, store, &Settings{Seed: 5, SplitSize: 20000})
			store.onWrite = func(k string) error {
				if strings.Contains(k, path.Base(key)) {
					return errors.New("disk on fire")
				}
				return nil
			}
			_, err := Run(context.Background(), job, store, store, &CoordinatorOptions{Workers: 2})
			if err == nil || !strings.Contains(err.Error(), "disk on fire") {
				t.Fatalf("failing commit: %v", err)
			}
			for _, k := range store.keys() {
				if !strings.HasPrefix(k, "in/") {
					t.Errorf("failed commit left %s", k)
				}
			}
		})
	}
}

// refusingTransport answers every report of its worker as the
// coordinator answers a malformed one.
type refusingTransport struct{ transport }

func (refusingTransport) report(context.Context, *reportRequest) (*reportResponse, error) {
	return nil, &protocolError{Msg: "malformed report"}
}

// TestStoppedOwnWorkerFailsTheRun: when the only worker of a run stops on
// its own, the run fails at once with its reason and leaves nothing,
// rather than wait for a worker that cannot come.
func TestStoppedOwnWorkerFailsTheRun(t *testing.T) {
	store := newMemStore()
	job := abaloneJob(t, store, &Settings{Seed: 5, SplitSize: 20000})
	c, err := NewRun(job, store, store, &CoordinatorOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	c.own[0].t = refusingTransport{c.own[0].t}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "the worker in this process stopped") || !strings.Contains(err.Error(), "malformed report") {
		t.Fatalf("run with a stopped worker: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the run waited for its deadline")
	}
	for _, k := range store.keys() {
		if !strings.HasPrefix(k, "in/") {
			t.Errorf("failed run left %s", k)
		}
	}
}

func TestGivenModelSkipsFit(t *testing.T) {
	store := newMemStore()
	job := abaloneJob(t, store, &Settings{Seed: 5})
	res, err := Run(context.Background(), job, store, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	train := store.objects["train/part-00000"]
	job2 := abaloneJob(t, store, &Settings{Seed: 5})
	store2 := newMemStore()
	store2.objects = map[string][]byte{"in/abalone.csv": store.objects["in/abalone.csv"]}
	res2, err := Run(context.Background(), job2, store2, store2, &CoordinatorOptions{Model: res.Model})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.ModelGiven || res2.Timings.FitMS != 0 {
		t.Errorf("given model: manifest says model_given=%v fit_ms=%d", res2.ModelGiven, res2.Timings.FitMS)
	}
	if !bytes.Equal(store2.objects["train/part-00000"], train) {
		t.Error("a run with the saved model wrote different bytes")
	}
}

// Keys makes memStore an Output.
func (m *memStore) Keys(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for _, k := range m.keys() {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
