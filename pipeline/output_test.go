package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

func (m *memStore) Create(ctx context.Context, key string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[key]; ok {
		return fmt.Errorf("%s: %w", key, fs.ErrExist)
	}
	m.objects[key] = append([]byte(nil), data...)
	return nil
}

var quiet = slog.New(slog.DiscardHandler)

// TestClaimOutput: a second job is refused while the first holds the
// output, naming it; the claim of a dead process of this host is taken
// over; a released output can be claimed again.
func TestClaimOutput(t *testing.T) {
	ctx := context.Background()
	src, out := newMemStore(), newMemStore()
	job := abaloneJob(t, src, &Settings{Name: "j1", Seed: 5})
	opts := &ClaimOptions{Name: "out", Host: "h1", Log: quiet}
	first, err := ClaimOutput(ctx, out, job, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Owns("train/part-00000") || !first.Owns(ClaimKey) || first.Owns("notes.txt") {
		t.Error("Owns does not name the job's keys only")
	}
	second := abaloneJob(t, src, &Settings{Name: "j2", Seed: 5})
	_, err = ClaimOutput(ctx, out, second, opts)
	if err == nil || !strings.Contains(err.Error(), "in use by job j1 (run "+job.RunID) || !strings.Contains(err.Error(), "shardprep clean out") {
		t.Fatalf("a second job: %v, want a refusal naming j1", err)
	}
	dead := *opts
	dead.Alive = func(int) bool { return false }
	taker, err := ClaimOutput(ctx, out, second, &dead)
	if err != nil {
		t.Fatalf("taking over a dead holder's claim: %v", err)
	}
	if err := first.Release(ctx); err == nil {
		t.Error("the first job released a claim that is no longer its own")
	}
	if err := taker.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := out.keys(); len(keys) != 0 {
		t.Errorf("after release the output holds %v", keys)
	}
}

// TestClaimOfACommittedRun: a job stopped after its commit but before it
// gave its claim back, on another host, does not block the next job: its
// run committed, so its claim is stale, and --overwrite replaces its
// output. A live job's claim on another host still blocks.
func TestClaimOfACommittedRun(t *testing.T) {
	ctx := context.Background()
	src, out := newMemStore(), newMemStore()
	job := abaloneJob(t, src, &Settings{Name: "j1", Seed: 5})
	if _, err := Run(ctx, job, src, out, nil); err != nil {
		t.Fatal(err)
	}
	elsewhere := &ClaimOptions{Name: "out", Host: "other-host", Log: quiet}
	held, err := ClaimOutput(ctx, out, abaloneJob(t, src, &Settings{Name: "j1", Seed: 5}), elsewhere)
	if err == nil {
		held.Release(ctx)
		t.Fatal("claimed a committed output without --overwrite")
	}
	// Put back the committed run's claim, as if it had been killed before
	// releasing it.
	stale, _ := json.Marshal(claimRecord{RunID: job.RunID, Job: "j1", Host: "h1", PID: 1, Started: time.Now()})
	out.objects[ClaimKey] = stale
	next := abaloneJob(t, src, &Settings{Name: "j2", Seed: 5})
	opts := &ClaimOptions{Name: "out", Host: "h2", Overwrite: true, Log: quiet}
	taker, err := ClaimOutput(ctx, out, next, opts)
	if err != nil {
		t.Fatalf("the claim of a committed run blocked --overwrite: %v", err)
	}
	if err := taker.Release(ctx); err != nil {
		t.Fatal(err)
	}
	live, _ := json.Marshal(claimRecord{RunID: "another-run", Job: "j3", Host: "h1", PID: 1, Started: time.Now()})
	out.objects[ClaimKey] = live
	if _, err := ClaimOutput(ctx, out, next, opts); err == nil || !strings.Contains(err.Error(), "in use by job j3") {
		t.Fatalf("a live claim on another host: %v, want a refusal naming j3", err)
	}
}

// TestOverwriteDeletesOnlyShardprepObjects: --overwrite deletes what the
// earlier job's manifest names, markers first and the manifest last, and
// refuses, deleting nothing, when anything else is there. A published
// cluster secret stays.
func TestOverwriteDeletesOnlyShardprepObjects(t *testing.T) {
	ctx := context.Background()
	src, out := newMemStore(), newMemStore()
	if _, err := Run(ctx, abaloneJob(t, src, &Settings{Name: "j1", Seed: 5}), src, out, nil); err != nil {
		t.Fatal(err)
	}
	out.objects[ClusterSecretKey("j2")] = []byte("secret")
	written := out.keys()
	job := abaloneJob(t, src, &Settings{Name: "j2", Seed: 5})
	opts := &ClaimOptions{Name: "out", Log: quiet}
	if _, err := ClaimOutput(ctx, out, job, opts); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("without overwrite: %v", err)
	}
	opts.Overwrite = true
	for _, k := range []string{"notes.txt", "train/keep.dat", ".hidden"} {
		out.objects[k] = nil
	}
	_, err := ClaimOutput(ctx, out, job, opts)
	if err == nil || !strings.Contains(err.Error(), "3 objects shardprep did not write (.hidden, notes.txt, train/keep.dat)") {
		t.Fatalf("with foreign objects: %v", err)
	}
	if got := out.keys(); len(got) != len(written)+3 {
		t.Fatalf("a refused overwrite changed the output: %v", got)
	}
	for _, k := range []string{"notes.txt", "train/keep.dat", ".hidden"} {
		delete(out.objects, k)
	}
	var deleted []string
	del := &deleteLog{memStore: out, deleted: &deleted}
	claim, err := ClaimOutput(ctx, del, job, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != len(written)-1 || path0(deleted[0]) != SuccessName || deleted[len(deleted)-1] != ManifestKey {
		t.Errorf("deleted %v, want every object but the secret, markers first, manifest last", deleted)
	}
	if got := out.keys(); !slices.Equal(got, []string{ClaimKey, ClusterSecretKey("j2")}) {
		t.Errorf("left %v, want the claim and the secret", got)
	}
	claim.Release(ctx)
}

func path0(k string) string { return k[strings.LastIndex(k, "/")+1:] }

type deleteLog struct {
	*memStore
	deleted *[]string
}

func (d *deleteLog) Delete(ctx context.Context, key string) error {
	*d.deleted = append(*d.deleted, key)
	return d.memStore.Delete(ctx, key)
}

// TestFindLeftovers: an uncommitted job's claim, parts and secret are
// leftovers, a user's file is not; a committed output is refused.
func TestFindLeftovers(t *testing.T) {
	ctx := context.Background()
	src, out := newMemStore(), newMemStore()
	job := abaloneJob(t, src, &Settings{Name: "j1", Seed: 5})
	dead := &ClaimOptions{Name: "out", Alive: func(int) bool { return false }, Host: "elsewhere", Log: quiet}
	if _, err := ClaimOutput(ctx, out, job, dead); err != nil {
		t.Fatal(err)
	}
	out.objects["train/part-00000"] = []byte("1\n")
	out.objects[ClusterSecretKey("j1")] = []byte("s")
	out.objects["notes.txt"] = nil
	l, err := FindLeftovers(ctx, out, dead)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"train/part-00000", ClusterSecretKey("j1"), ClaimKey}
	if !slices.Equal(l.Objects, want) {
		t.Errorf("objects %v, want %v", l.Objects, want)
	}
	if !slices.Equal(l.Foreign, []string{"notes.txt"}) || !l.Owns("validation/part-00000") || l.Holder == nil || l.Holder.Job != "j1" {
		t.Errorf("foreign %v, claim %+v", l.Foreign, l.Holder)
	}
	if err := l.Remove(ctx, out, "out"); err != nil {
		t.Fatal(err)
	}
	if got := out.keys(); !slices.Equal(got, []string{"notes.txt"}) {
		t.Errorf("left %v", got)
	}
	if _, err := Run(ctx, job, src, out, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := FindLeftovers(ctx, out, dead); err == nil || !strings.Contains(err.Error(), "committed output of job j1") {
		t.Errorf("a committed output: %v", err)
	}
}

// TestCommitted: an output counts as committed by a job when its manifest
// names the job and every split has its _SUCCESS marker.
func TestCommitted(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	job := abaloneJob(t, store, &Settings{Name: "j1", Seed: 5})
	if _, err := Run(ctx, job, store, store, nil); err != nil {
		t.Fatal(err)
	}
	if !Committed(ctx, store, "j1") || Committed(ctx, store, "j2") {
		t.Errorf("committed by j1: %v, by j2: %v; want true, false", Committed(ctx, store, "j1"), Committed(ctx, store, "j2"))
	}
	delete(store.objects, "validation/"+SuccessName)
	if Committed(ctx, store, "j1") {
		t.Error("an output without a split's marker counts as committed")
	}
}

// TestOutputFolders: folders with a _shardprep/ folder, or split folders
// of parts beside _rejected/ or with a _SUCCESS marker, are outputs,
// committed or not; a folder of plain part files is not.
func TestOutputFolders(t *testing.T) {
	keys := []string{
		"a.csv", "claimed/_shardprep/claim.json", "claimed/train/part-00000",
		"rej/train/part-00000", "rej/_rejected/part-00000",
		"done/x/train/part-00001", "done/x/train/_SUCCESS",
		"plain/part-00000", "data/part-00000.csv", "data/_SUCCESS",
	}
	got := OutputFolders(keys)
	if want := []string{"claimed/", "rej/", "done/x/"}; !slices.Equal(got, want) {
		t.Errorf("OutputFolders = %q, want %q", got, want)
	}
	if got := OutputFolders([]string{"_shardprep/claim.json", "train/part-00000"}); !slices.Equal(got, []string{""}) {
		t.Errorf("a listed root that is an output: %q", got)
	}
}

// TestPartBufferKeepsItsCapacity writes many batches of text lines to a
// part as emit does: the buffer never grows past the capacity partBufs
// hands out, so that it goes back to the pool, and the part holds every
// line.
func TestPartBufferKeepsItsCapacity(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := features.ParseSpec([]byte(testSpec))
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	store.objects["in/a.csv"] = data
	obj := Object{URL: "in/a.csv", Name: "a.csv", Size: int64(len(data)), Root: "in/"}
	job, err := NewJob(spec, []Object{obj}, &Settings{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&splitTask{job: job, split: job.Splits[0], src: store, mem: mem, ctr: &counters{}}).runFit(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	model, err := res.Stats.Model()
	if err != nil {
		t.Fatal(err)
	}
	dec := newDecoder(spec, mem, &decodeOptions{Text: true})
	defer dec.Release()
	off := int64(0)
	for line := range bytes.Lines(data) {
		if fe := dec.Add(bytes.TrimRight(line, "\r\n"), off); fe != nil {
			t.Fatal(fe)
		}
		off += int64(len(line))
	}
	rec := dec.Flush()
	defer rec.Release()
	out, err := model.Transform(rec, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	rows := make([]int, out.NumRows())
	for i := range rows {
		rows[i] = i
	}
	// emit's chunk of lines is longer than the buffer's slack past
	// partBuffer: appended whole just below partBuffer, it would grow the
	// buffer.
	if n := len(features.AppendRows(nil, out, rows[:min(len(rows), emitChunk)])); n <= partBufs.size-partBuffer {
		t.Fatalf("a chunk of lines is %d bytes, no more than the slack", n)
	}
	p, err := newPartWriter(context.Background(), store, "out/part", "s")
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for range 12 { // about 3 MB
		want = features.AppendRows(want, out, rows)
		for rs := rows; len(rs) > 0; {
			n := p.appendRows(features.TextOf(out), rs[:min(len(rs), emitChunk)])
			rs = rs[n:]
			if cap(p.buf) != partBufs.size {
				t.Fatalf("the part's buffer grew to %d bytes (its pool's are %d)", cap(p.buf), partBufs.size)
			}
			if err := p.flushIfFull(); err != nil {
				t.Fatal(err)
			}
		}
	}
	part, err := p.close(int64(12 * len(rows)))
	if err != nil {
		t.Fatal(err)
	}
	var st memStage
	if err := json.Unmarshal(part.Staged, &st); err != nil {
		t.Fatal(err)
	}
	st.Size = 0
	if got := store.stages[st]; !bytes.Equal(got, want) {
		t.Errorf("the part holds %d bytes, want the %d of the lines", len(got), len(want))
	}
}
