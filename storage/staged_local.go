package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A local staged object is the file ".NAME.stage-STAGE" beside its key's
// file NAME, created exclusively, written in place and synced on Close;
// Publish renames it onto NAME.

func (d *localDriver) stagePath(key, stage string) string {
	return d.url(stageKey(key, stage))
}

func (d *localDriver) newStagedWriter(_ context.Context, key, stage string) (stagedDriverWriter, error) {
	p := d.stagePath(key, stage)
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		return nil, d.fail("write", key, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, d.fail("write", stageKey(key, stage), err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		os.Remove(p)
		return nil, d.fail("write", stageKey(key, stage), err)
	}
	return &localStagedWriter{d: d, key: key, stage: stage, f: f, id: fi}, nil
}

// localStagedWriter writes a stage file in place. The file is the stage's
// from the start, so DiscardStages finds it even while it is written.
type localStagedWriter struct {
	d     *localDriver
	key   string
	stage string
	f     *os.File
	id    fs.FileInfo // of the file as created, to tell it from a successor
	size  int64
	wb    writeback
}

func (w *localStagedWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.wb.wrote(w.f, n)
	w.size += int64(n)
	if err != nil {
		return n, w.d.fail("write", stageKey(w.key, w.stage), err)
	}
	return n, nil
}

// ours reports whether the stage file is still the one this writer created.
func (w *localStagedWriter) ours() bool {
	fi, err := os.Lstat(w.f.Name())
	return err == nil && os.SameFile(fi, w.id)
}

func (w *localStagedWriter) commit() error {
	k := stageKey(w.key, w.stage)
	if err := w.wb.commit(w.f); err != nil {
		return w.d.fail("write", k, err)
	}
	syncDir(filepath.Dir(w.f.Name()))
	if !w.ours() {
		return &objectError{op: "write", url: w.d.url(k), err: errDiscarded}
	}
	return nil
}

func (w *localStagedWriter) abort() error {
	w.wb.abort(w.f)
	if !w.ours() {
		return nil // discarded already (and perhaps staged anew by another writer)
	}
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (w *localStagedWriter) staged() Staged {
	return Staged{Key: w.key, Stage: w.stage, Size: w.size}
}

func (d *localDriver) publish(_ context.Context, s Staged) error {
	k := stageKey(s.Key, s.Stage)
	p := d.url(k)
	fi, err := os.Lstat(p)
	if err != nil {
		return d.fail("publish", k, err)
	}
	if !fi.Mode().IsRegular() {
		return d.fail("publish", k, fmt.Errorf("not a regular file (%s)", fi.Mode().Type()))
	}
	if fi.Size() != s.Size {
		return d.fail("publish", k, fmt.Errorf("staged file has %d bytes, the description says %d", fi.Size(), s.Size))
	}
	if err := os.Rename(p, d.url(s.Key)); err != nil {
		return d.fail("publish", k, err)
	}
	syncDir(filepath.Dir(p))
	return nil
}

func (d *localDriver) discard(_ context.Context, s Staged) error {
	k := stageKey(s.Key, s.Stage)
	if err := os.Remove(d.url(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return d.fail("discard", k, err)
	}
	return nil
}

func (d *localDriver) discardStages(ctx context.Context, prefix string, keep func(key, stage string) bool) (int, error) {
	// Walk only the deepest folder the prefix names in full; a trailing
	// separator makes WalkDir descend into a start folder that is a link.
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	n, err := d.removeFiles(ctx, start, func(rel string) bool {
		key, stage, ok := parseStageKey(rel)
		return ok && strings.HasPrefix(key, prefix) && !keep(key, stage)
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return n, err
		}
		return n, d.fail("discard stages", prefix, err)
	}
	return n, nil
}
