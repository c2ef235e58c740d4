package container

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is a SecretStore in memory.
type memStore struct {
	mu   sync.Mutex
	objs map[string][]byte
}

func (m *memStore) NewRangeReader(_ context.Context, key, _ string, _, _ int64) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objs[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (m *memStore) Put(_ context.Context, key string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = data
	return nil
}

func (m *memStore) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; !ok {
		return fs.ErrNotExist
	}
	delete(m.objs, key)
	return nil
}

func (m *memStore) URL(key string) string { return "mem://out/" + key }

func never(context.Context) bool { return false }

func TestSecretRoundTrip(t *testing.T) {
	ctx := context.Background()
	out := &memStore{objs: map[string][]byte{}}
	published := make(chan string, 1)
	go func() {
		time.Sleep(150 * time.Millisecond) // the worker polls first
		s, err := PublishSecret(ctx, out, "_shardprep/cluster-secret-job-1")
		if err != nil {
			t.Error(err)
		}
		published <- s
	}()
	got, done, err := WaitSecret(ctx, out, "_shardprep/cluster-secret-job-1", 10*time.Second, never)
	if err != nil || done {
		t.Fatalf("WaitSecret = %q, %t, %v", got, done, err)
	}
	if want := <-published; got != want || len(got) != 64 {
		t.Errorf("worker read %q, coordinator published %q (want 64 hex digits)", got, want)
	}
	if _, ok := out.objs["_shardprep/cluster-secret-job-1"]; !ok {
		t.Errorf("no secret at the key: %v", out.objs)
	}
	for range 2 { // the second time it is gone already
		if err := DeleteSecret(ctx, out, "_shardprep/cluster-secret-job-1"); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.objs) != 0 {
		t.Errorf("left %v", out.objs)
	}
}

func TestWaitSecretEnds(t *testing.T) {
	ctx := context.Background()
	out := &memStore{objs: map[string][]byte{}}
	if _, done, err := WaitSecret(ctx, out, "_shardprep/cluster-secret-j", time.Minute, func(context.Context) bool { return true }); !done || err != nil {
		t.Errorf("a committed job: done %t, error %v; want done", done, err)
	}
	if _, _, err := WaitSecret(ctx, out, "_shardprep/cluster-secret-j", 200*time.Millisecond, never); err == nil || !strings.Contains(err.Error(), "published no cluster secret at mem://out/_shardprep/cluster-secret-j within 200ms") {
		t.Errorf("timeout: error %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := WaitSecret(cctx, out, "_shardprep/cluster-secret-j", time.Minute, never); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: error %v, want context.Canceled", err)
	}
	out.objs["_shardprep/cluster-secret-j"] = []byte("short\n")
	if _, _, err := WaitSecret(ctx, out, "_shardprep/cluster-secret-j", time.Minute, never); err == nil || !strings.Contains(err.Error(), "too short (6 bytes)") {
		t.Errorf("short secret: error %v", err)
	}
}
