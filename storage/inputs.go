package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Object is an input object found by Router.Expand.
type Object struct {
	// URL is Root followed by Name: how Router.NewRangeReader and error
	// messages name the object.
	URL string
	// Name is the object's key below Root: relative to the argument's
	// folder or prefix, or the base name of an argument naming one object.
	Name string
	Size int64
	ETag string
	// Root is the root the object was listed under.
	Root string
}

// ExpandOptions configures Router.Expand. A nil *ExpandOptions means the
// defaults.
type ExpandOptions struct {
	// Output is the root (as Root gives it) of the output of the job the
	// inputs are for; the objects a listing finds under it are left out.
	Output string
	// Outputs, when set, is given the keys of each folder or prefix listing
	// and returns the folders among them (keys ending in "/") that hold
	// outputs of earlier jobs; the objects under them are left out.
	Outputs func(keys []string) []string
	// Log, when set, records the outputs left out.
	Log *slog.Logger
}

// Expand lists the objects that input arguments name, in argument order,
// then key order, each once, and routes them (see Route). An argument is a
// local file or folder, an s3://bucket/key (an object if there is one with
// that key, else a prefix as if it ended in "/"), an s3://bucket/prefix/,
// or a mounted root (all its objects) or mounted root and key (one object).
// A folder or prefix gives every object below it except hidden ones (a
// path element starting with "_" or ".", as Hadoop skips them) and those
// under the output or an earlier output (opts). An argument that gives no
// object is an error, as is one naming nothing.
func (r *Router) Expand(ctx context.Context, args []string, opts *ExpandOptions) ([]Object, error) {
	var o ExpandOptions
	if opts != nil {
		o = *opts
	}
	var objs []Object
	seen := map[string]bool{}
	for _, arg := range args {
		found, err := r.expand(ctx, arg, &o)
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("input %s: no objects there", arg)
		}
		for _, obj := range found {
			if seen[obj.URL] {
				continue
			}
			seen[obj.URL] = true
			r.Route(obj.URL, obj.Root)
			objs = append(objs, obj)
		}
	}
	return objs, nil
}

// expand lists the objects of one argument.
func (r *Router) expand(ctx context.Context, arg string, o *ExpandOptions) ([]Object, error) {
	root, single, err := r.locate(ctx, arg)
	if err != nil {
		return nil, err
	}
	b, err := r.Bucket(ctx, root, false)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", arg, err)
	}
	if single != "" {
		info, err := b.Stat(ctx, single)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", arg, err)
		}
		return []Object{newObject(root, info)}, nil
	}
	infos, err := b.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", arg, err)
	}
	return o.keep(arg, root, infos), nil
}

func newObject(root string, info ObjectInfo) Object {
	return Object{URL: root + info.Key, Name: info.Key, Size: info.Size, ETag: info.ETag, Root: root}
}

// keep returns the objects of a listing of root that are inputs, by name.
func (o *ExpandOptions) keep(arg, root string, infos []ObjectInfo) []Object {
	var outputs []string
	if o.Outputs != nil {
		keys := make([]string, len(infos))
		for i, info := range infos {
			keys[i] = info.Key
		}
		outputs = o.Outputs(keys)
	}
	var objs []Object
	for _, info := range infos {
		obj := newObject(root, info)
		if hidden(info.Key) || underAny(info.Key, outputs) || o.Output != "" && strings.HasPrefix(obj.URL, o.Output) {
			continue
		}
		objs = append(objs, obj)
	}
	if len(outputs) > 0 && o.Log != nil {
		o.Log.Info("input: leaving out earlier shardprep outputs under it", "input", arg, "outputs", outputs)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })
	return objs
}

// locate returns the root an argument is listed under and, when it names
// one object, that object's key.
func (r *Router) locate(ctx context.Context, arg string) (root, single string, err error) {
	if root, key, ok := r.mounted(arg); ok {
		return root, key, nil
	}
	loc, err := ParseLocation(arg)
	if err != nil {
		return "", "", fmt.Errorf("input %s: %w", arg, err)
	}
	switch loc.Scheme {
	case "file":
		return locateLocal(arg, loc.Path)
	case "s3":
		return r.locateS3(ctx, arg, loc)
	}
	return "", "", fmt.Errorf("input %s: unsupported location", arg)
}

func locateLocal(arg, p string) (root, single string, err error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", "", err
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("input %s: no such file or folder", arg)
	} else if err != nil {
		return "", "", fmt.Errorf("input %s: %w", arg, err)
	}
	if fi.IsDir() {
		return localRoot(abs), "", nil
	}
	return filepath.Dir(abs) + "/", filepath.Base(abs), nil
}

// locateS3 takes s3://bucket/key as the object at key if there is one,
// else as the prefix key + "/".
func (r *Router) locateS3(ctx context.Context, arg string, loc Location) (root, single string, err error) {
	bucket, p := "s3://"+loc.Bucket+"/", loc.Path
	if p == "" || strings.HasSuffix(p, "/") {
		return bucket + p, "", nil
	}
	dir, base := path.Split(p)
	b, err := r.Bucket(ctx, bucket+dir, false)
	if err != nil {
		return "", "", err
	}
	_, err = b.Stat(ctx, base)
	switch {
	case err == nil:
		return bucket + dir, base, nil
	case errors.Is(err, fs.ErrNotExist):
		return bucket + p + "/", "", nil
	}
	return "", "", fmt.Errorf("input %s: %w", arg, err)
}

func underAny(key string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(key, d) {
			return true
		}
	}
	return false
}

// hidden reports whether a path element of key starts with "_" or ".".
func hidden(key string) bool {
	for _, el := range strings.Split(key, "/") {
		if strings.HasPrefix(el, "_") || strings.HasPrefix(el, ".") {
			return true
		}
	}
	return false
}
