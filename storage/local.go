package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// OpenLocal returns a Bucket over the folder dir (made absolute). The folder
// need not exist yet: writers create it and any subfolders as needed. It is
// an error if dir exists and is not a folder.
//
// Keys map to files under dir; keys with "." or ".." segments, empty
// segments or a trailing "/" are rejected. A writer stages its data in a
// hidden temporary file beside the target (".NAME.tmp-RANDOM"), syncs it and
// renames it into place on Close; List never shows such files. ETags are
// derived from the file's inode, size and modification time, so replacing a
// file changes its ETag.
func OpenLocal(dir string) (*Bucket, error) {
	if dir == "" {
		return nil, errors.New("storage: empty local folder path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: local folder %q: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && !fi.IsDir():
		return nil, fmt.Errorf("storage: %s is not a folder", abs)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("storage: local folder: %w", err)
	}
	return &Bucket{d: &localDriver{root: abs}}, nil
}

type localDriver struct {
	root string // absolute, cleaned
}

func (d *localDriver) url(key string) string {
	if key == "" {
		return d.root
	}
	return filepath.Join(d.root, filepath.FromSlash(key))
}

func (d *localDriver) checkKey(key string) error {
	if err := checkKeyCommon(key); err != nil {
		return err
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("storage: object key %q ends with \"/\"", key)
	}
	return checkSegments(key)
}

func (d *localDriver) checkPrefix(prefix string) error {
	if err := checkPrefixCommon(prefix); err != nil {
		return err
	}
	return checkSegments(strings.TrimSuffix(prefix, "/"))
}

// checkSegments rejects "", "." and ".." segments, which would escape the
// root or alias another key on a file system.
func checkSegments(key string) error {
	if key == "" {
		return nil
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("storage: object key %q has an empty path segment", key)
		case ".", "..":
			return fmt.Errorf("storage: object key %q has a %q segment", key, seg)
		}
	}
	if filepath.Separator != '/' && strings.ContainsRune(key, filepath.Separator) {
		return fmt.Errorf("storage: object key %q contains %q", key, filepath.Separator)
	}
	return nil
}

// isTempName reports whether a file name is a writer's staging file.
func isTempName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

func (d *localDriver) fail(op, key string, err error) error {
	var kind error
	switch {
	case errors.Is(err, fs.ErrNotExist):
		kind = fs.ErrNotExist
	case errors.Is(err, fs.ErrPermission):
		kind = fs.ErrPermission
	case errors.Is(err, fs.ErrExist):
		kind = fs.ErrExist
	}
	return &objectError{op: op, url: d.url(key), kind: kind, err: err}
}

func (d *localDriver) list(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	// Walk only the deepest folder the prefix names in full.
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	// A trailing separator makes WalkDir descend into a start folder that
	// is a symbolic link (WalkDir follows no links, not even its root's).
	if !strings.HasSuffix(start, string(filepath.Separator)) {
		start += string(filepath.Separator)
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the root or a folder vanished: nothing there
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if de.IsDir() {
			return nil
		}
		if isTempName(de.Name()) || isStageName(de.Name()) {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := os.Stat(p) // follows symlinks
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted since the folder was read
			}
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		out = append(out, localInfo(key, fi))
		return nil
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return nil, err
		}
		return nil, d.fail("list", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func localInfo(key string, fi fs.FileInfo) ObjectInfo {
	return ObjectInfo{
		Key:     key,
		Size:    fi.Size(),
		ETag:    fmt.Sprintf("%x-%x-%x", fileID(fi), fi.ModTime().UnixNano(), fi.Size()),
		ModTime: fi.ModTime(),
	}
}

func (d *localDriver) stat(_ context.Context, key string) (ObjectInfo, error) {
	fi, err := os.Stat(d.url(key))
	if err != nil {
		return ObjectInfo{}, d.fail("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, d.fail("stat", key, fmt.Errorf("not a regular file (%s): %w", fi.Mode().Type(), fs.ErrNotExist))
	}
	return localInfo(key, fi), nil
}

func (d *localDriver) newRangeReader(ctx context.Context, key, etag string, offset, length int64) (io.ReadCloser, error) {
	f, err := os.Open(d.url(key))
	if err != nil {
		return nil, d.fail("read", key, err)
	}
	// Stat the open file: the data read below is this version even if the
	// path is replaced meanwhile (writers rename, never write in place).
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, d.fail("read", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, d.fail("read", key, fmt.Errorf("not a regular file (%s): %w", fi.Mode().Type(), fs.ErrNotExist))
	}
	if etag != "" && localInfo(key, fi).ETag != etag {
		f.Close()
		return nil, &objectError{op: "read", url: d.url(key), kind: ErrChanged}
	}
	size := fi.Size()
	if offset > size {
		offset = size
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return &localReader{ctx: ctx, f: f, r: io.NewSectionReader(f, offset, n)}, nil
}

// localReader reads a section of a file. It keeps the ctx it was opened
// with because io.Reader has no other way to be cancelled.
type localReader struct {
	ctx context.Context
	f   *os.File
	r   *io.SectionReader
}

func (r *localReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func (r *localReader) Close() error { return r.f.Close() }

func (d *localDriver) newWriter(_ context.Context, key string) (driverWriter, error) {
	target := d.url(key)
	dir, base := filepath.Split(target)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, d.fail("write", key, err)
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, d.fail("write", key, err)
	}
	return &localWriter{d: d, key: key, target: target, f: f}, nil
}

// localWriter stages an object in a hidden temporary file beside its
// target and renames it into place on commit.
type localWriter struct {
	d      *localDriver
	key    string
	target string
	f      *os.File
	wb     writeback
}

func (w *localWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.wb.wrote(w.f, n)
	if err != nil {
		return n, w.d.fail("write", w.key, err)
	}
	return n, nil
}

func (w *localWriter) commit() error {
	if err := w.wb.commit(w.f); err != nil {
		return w.d.fail("write", w.key, err)
	}
	if err := os.Rename(w.f.Name(), w.target); err != nil {
		return w.d.fail("write", w.key, err)
	}
	syncDir(filepath.Dir(w.target))
	return nil
}

// abort removes the temporary file (closing it first, if still open).
func (w *localWriter) abort() error {
	w.wb.abort(w.f)
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// syncDir makes a rename in dir durable where the platform allows it.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync() // best effort: not every platform or file system supports it
		f.Close()
	}
}

func (d *localDriver) delete(_ context.Context, key string) error {
	p := d.url(key)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.IsDir()) {
		return nil // no object there (a folder is not an object)
	}
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return d.fail("delete", key, err)
	}
	return nil
}

// tempTarget returns the name of the file that a writer's staging file
// ".NAME.tmp-RANDOM" is for.
func tempTarget(name string) (string, bool) {
	i := strings.LastIndex(name, ".tmp-")
	if !strings.HasPrefix(name, ".") || i < 2 || isStageName(name) {
		return "", false
	}
	return name[1:i], true
}

// sweep removes the staging files of writers that never finished, those a
// killed process left behind, for the keys owned reports. Only call it when
// no writer of those keys is active.
func (d *localDriver) sweep(ctx context.Context, owned func(key string) bool) (int, error) {
	return d.removeFiles(ctx, d.root, func(rel string) bool {
		dir, name := path.Split(rel)
		target, ok := tempTarget(name)
		return ok && owned(dir+target)
	})
}

// removeFiles removes the regular files under the folder start (a link
// too) whose slash-separated path below the root pick chooses, and returns
// how many it removed.
func (d *localDriver) removeFiles(ctx context.Context, start string, pick func(rel string) bool) (int, error) {
	n := 0
	// A trailing separator makes WalkDir descend into a start folder that
	// is a link.
	err := filepath.WalkDir(start+string(filepath.Separator), func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if de.IsDir() || !de.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil || !pick(filepath.ToSlash(rel)) {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		return nil
	})
	return n, err
}
