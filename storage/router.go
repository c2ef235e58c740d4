package storage

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
)

// Router opens Buckets by their root and routes reads of objects to the
// Bucket of the root they were listed under, so that a job reads every
// input with the Bucket (and so the credentials) of its --input argument.
// It is the Source a pipeline reads through. A Router is safe for
// concurrent use.
//
// A root is "s3://bucket/prefix/" ("s3://bucket/" for a whole bucket), an
// absolute local folder ending in "/" (see Root), or a mounted root; an
// object's URL is its root followed by its key.
type Router struct {
	openS3 func(ctx context.Context, bucket, prefix string, write bool) (*Bucket, error)
	mounts map[string]*Bucket

	mu      sync.Mutex
	buckets map[string]*Bucket // by write flag and root
	routes  map[string]string  // object URL -> root
}

// RouterOptions configures a Router. A nil *RouterOptions means local
// folders only.
type RouterOptions struct {
	// OpenS3 opens the Bucket at s3://bucket/prefix (prefix "" or ending in
	// "/"); write says the caller writes there, so that it may get
	// credentials scoped to that. nil: s3:// roots are refused.
	OpenS3 func(ctx context.Context, bucket, prefix string, write bool) (*Bucket, error)
	// Mounts serves roots of any form ("bundled:") from the given Buckets,
	// for reading and writing; the object at key of such a Bucket has the
	// URL root+key. Expand takes an argument of a mounted root followed by
	// a key as that one object, and the mounted root alone as all of them.
	Mounts map[string]*Bucket
}

// NewRouter returns a Router that opens Buckets as opts says.
func NewRouter(opts *RouterOptions) *Router {
	r := &Router{mounts: map[string]*Bucket{}, buckets: map[string]*Bucket{}, routes: map[string]string{}}
	if opts != nil {
		r.openS3 = opts.OpenS3
		for root, b := range opts.Mounts {
			r.mounts[root] = b
		}
	}
	return r
}

// Bucket returns the Bucket rooted at root, opening it on first use; a root
// is opened once for reading and once for writing (write true).
func (r *Router) Bucket(ctx context.Context, root string, write bool) (*Bucket, error) {
	if b := r.mounts[root]; b != nil {
		return b, nil
	}
	key := fmt.Sprintf("%t %s", write, root)
	r.mu.Lock()
	b := r.buckets[key]
	r.mu.Unlock()
	if b != nil {
		return b, nil
	}
	b, err := r.open(ctx, root, write)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev := r.buckets[key]; prev != nil {
		return prev, nil
	}
	r.buckets[key] = b
	return b, nil
}

func (r *Router) open(ctx context.Context, root string, write bool) (*Bucket, error) {
	loc, err := ParseLocation(root)
	if err != nil {
		return nil, err
	}
	switch {
	case loc.Scheme == "s3" && r.openS3 != nil:
		return r.openS3(ctx, loc.Bucket, loc.Path, write)
	case loc.Scheme == "file":
		return OpenLocal(loc.Path)
	}
	return nil, fmt.Errorf("%s: unsupported location (use a local path or s3://bucket/prefix)", root)
}

// mounted returns the longest mounted root that arg starts with and the
// rest of arg.
func (r *Router) mounted(arg string) (root, key string, ok bool) {
	for m := range r.mounts {
		if strings.HasPrefix(arg, m) && len(m) > len(root) {
			root, ok = m, true
		}
	}
	return root, strings.TrimPrefix(arg, root), ok
}

// Route sends reads of the object at url to the Bucket at root; url is root
// followed by the object's key. Expand routes the objects it returns.
func (r *Router) Route(url, root string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[url] = root
}

// NewRangeReader reads a routed object through the Bucket of its root, as
// Bucket.NewRangeReader does. An object that was never routed is an error.
func (r *Router) NewRangeReader(ctx context.Context, url, etag string, offset, length int64) (io.ReadCloser, error) {
	r.mu.Lock()
	root, ok := r.routes[url]
	r.mu.Unlock()
	key, under := strings.CutPrefix(url, root)
	if !ok || !under {
		return nil, fmt.Errorf("%s: not a routed input (see Router.Route)", url)
	}
	b, err := r.Bucket(ctx, root, false)
	if err != nil {
		return nil, err
	}
	return b.NewRangeReader(ctx, key, etag, offset, length)
}

// Root returns the root of a folder argument, the form object URLs start
// with: "s3://bucket/prefix/" ("s3://bucket/" for a whole bucket) or the
// absolute local path ending in "/". It returns "" for an argument that
// is neither an s3:// location nor a local path.
func Root(arg string) string {
	if arg == "" {
		return ""
	}
	loc, err := ParseLocation(arg)
	if err != nil {
		return ""
	}
	switch loc.Scheme {
	case "s3":
		p := loc.Path
		if p != "" && !strings.HasSuffix(p, "/") {
			p += "/"
		}
		return "s3://" + loc.Bucket + "/" + p
	case "file":
		abs, err := filepath.Abs(loc.Path)
		if err != nil {
			return ""
		}
		return localRoot(abs)
	}
	return ""
}

// localRoot is the root of the local folder at the absolute path abs.
func localRoot(abs string) string {
	return strings.TrimSuffix(abs, string(filepath.Separator)) + "/"
}

// RealPath returns a local object URL or root with the symbolic links of
// its path resolved (those of its longest existing leading part, so that a
// root yet to be made resolves too), so that two names of one file compare
// equal; a trailing "/" is kept. Other URLs (s3://, mounted roots) are
// returned as they are.
func RealPath(url string) string {
	if !filepath.IsAbs(url) {
		return url
	}
	p, rest := filepath.Clean(url), ""
	for {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = filepath.Join(real, rest)
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			p = filepath.Join(p, rest)
			break
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
	if strings.HasSuffix(url, "/") {
		return localRoot(p)
	}
	return p
}
