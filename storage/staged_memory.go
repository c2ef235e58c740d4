package storage

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"
)

// A memory stage is an entry of memDriver.stages from NewStagedWriter on,
// holding its data from Close on; Publish moves the data to the objects.

type memStageID struct{ key, stage string }

type memStage struct {
	data   []byte
	closed bool
}

func (d *memDriver) newStagedWriter(_ context.Context, key, stage string) (stagedDriverWriter, error) {
	id := memStageID{key, stage}
	st := &memStage{}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stages == nil {
		d.stages = map[memStageID]*memStage{}
	}
	if d.stages[id] != nil {
		return nil, &objectError{op: "write", url: d.url(stageKey(key, stage)), kind: fs.ErrExist}
	}
	d.stages[id] = st
	return &memStagedWriter{d: d, id: id, st: st}, nil
}

type memStagedWriter struct {
	d    *memDriver
	id   memStageID
	st   *memStage
	buf  bytes.Buffer
	size int64
}

func (w *memStagedWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *memStagedWriter) commit() error {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if w.d.stages[w.id] != w.st {
		return &objectError{op: "write", url: w.d.url(stageKey(w.id.key, w.id.stage)), err: errDiscarded}
	}
	w.st.data = w.buf.Bytes() // the buffer is dropped: the stage owns the data
	w.st.closed = true
	w.size = int64(len(w.st.data))
	w.buf = bytes.Buffer{}
	return nil
}

func (w *memStagedWriter) abort() error {
	w.buf = bytes.Buffer{}
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if w.d.stages[w.id] == w.st {
		delete(w.d.stages, w.id)
	}
	return nil
}

func (w *memStagedWriter) staged() Staged {
	return Staged{Key: w.id.key, Stage: w.id.stage, Size: w.size}
}

func (d *memDriver) publish(_ context.Context, s Staged) error {
	id := memStageID{s.Key, s.Stage}
	url := d.url(stageKey(s.Key, s.Stage))
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.stages[id]
	switch {
	case st == nil:
		return &objectError{op: "publish", url: url, kind: fs.ErrNotExist}
	case !st.closed:
		return &objectError{op: "publish", url: url, err: fmt.Errorf("the stage is still being written")}
	case int64(len(st.data)) != s.Size:
		return &objectError{op: "publish", url: url,
			err: fmt.Errorf("stage has %d bytes, the description says %d", len(st.data), s.Size)}
	}
	delete(d.stages, id)
	d.objects[s.Key] = newMemObject(st.data)
	return nil
}

func (d *memDriver) discard(_ context.Context, s Staged) error {
	d.mu.Lock()
	delete(d.stages, memStageID{s.Key, s.Stage})
	d.mu.Unlock()
	return nil
}

func (d *memDriver) discardStages(_ context.Context, prefix string, keep func(key, stage string) bool) (int, error) {
	d.mu.Lock()
	var ids []memStageID
	for id := range d.stages {
		if strings.HasPrefix(id.key, prefix) {
			ids = append(ids, id)
		}
	}
	d.mu.Unlock()
	n := 0
	for _, id := range ids {
		if keep(id.key, id.stage) { // outside the lock: keep may use the bucket
			continue
		}
		d.mu.Lock()
		if d.stages[id] != nil {
			delete(d.stages, id)
			n++
		}
		d.mu.Unlock()
	}
	return n, nil
}
