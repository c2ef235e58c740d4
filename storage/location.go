package storage

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Location is a parsed command-line storage argument.
type Location struct {
	// Scheme is "s3", "file" or "mem".
	Scheme string
	// Bucket is the S3 bucket or the memory bucket's name; empty for files.
	Bucket string
	// Path is the key or key prefix within the bucket ("" for the whole
	// bucket; a trailing "/" is kept), or the local path as given.
	Path string
}

// ParseLocation parses a storage argument:
//
//	s3://bucket/key/or/prefix   S3 (s3a:// and s3n://, as Spark writes them, too)
//	/abs/path, rel/path         a local path, kept as given
//	file:///abs/path            a local path
//	mem://name/key              a memory bucket (tests)
//
// Errors name the argument and what is wrong with it: an empty argument, an
// unknown scheme, a malformed or invalid bucket name, a "file://host/" URL.
func ParseLocation(s string) (Location, error) {
	if s == "" {
		return Location{}, errors.New("empty storage location")
	}
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return Location{}, fmt.Errorf("storage location %q is not valid text", s)
	}
	scheme, rest, found := strings.Cut(s, "://")
	if !found || strings.ContainsAny(scheme, "/\\") {
		if name, _, ok := strings.Cut(s, ":"); ok && knownScheme(strings.ToLower(name)) {
			return Location{}, fmt.Errorf("malformed URL %q: want %s://...", s, strings.ToLower(name))
		}
		return Location{Scheme: "file", Path: s}, nil
	}
	switch strings.ToLower(scheme) {
	case "s3", "s3a", "s3n":
		bucket, path, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return Location{}, fmt.Errorf("malformed URL %q: no bucket name (want s3://bucket/key)", s)
		}
		if err := checkBucketName(bucket); err != nil {
			return Location{}, fmt.Errorf("malformed URL %q: invalid S3 bucket name %q (3-63 characters: a-z, 0-9, '.', '-')", s, bucket)
		}
		return Location{Scheme: "s3", Bucket: bucket, Path: path}, nil
	case "file":
		host, path, ok := strings.Cut(rest, "/")
		if !ok || host != "" && host != "localhost" {
			return Location{}, fmt.Errorf("malformed URL %q: want file:///absolute/path", s)
		}
		return Location{Scheme: "file", Path: "/" + path}, nil
	case "mem":
		name, path, _ := strings.Cut(rest, "/")
		if name == "" {
			return Location{}, fmt.Errorf("malformed URL %q: no bucket name (want mem://name/key)", s)
		}
		return Location{Scheme: "mem", Bucket: name, Path: path}, nil
	}
	return Location{}, fmt.Errorf("unsupported storage location %q: want s3://bucket/key, a local path, file:///path or mem://name/key", s)
}

func knownScheme(s string) bool {
	switch s {
	case "s3", "s3a", "s3n", "file", "mem", "http", "https", "gs", "hdfs":
		return true
	}
	return false
}

// String formats l back as an argument: "s3://bucket/path", "mem://name/path"
// or the local path.
func (l Location) String() string {
	switch l.Scheme {
	case "s3", "mem":
		return l.Scheme + "://" + l.Bucket + "/" + l.Path
	}
	return l.Path
}
