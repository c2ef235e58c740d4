package storage_test

import (
	"strings"
	"testing"

	"github.com/shardprep/shardprep/storage"
)

func TestParseLocation(t *testing.T) {
	for _, c := range []struct {
		in   string
		want storage.Location
	}{
		{"s3://bucket/prefix/abalone.csv", storage.Location{Scheme: "s3", Bucket: "bucket", Path: "prefix/abalone.csv"}},
		{"s3://bucket/prefix/", storage.Location{Scheme: "s3", Bucket: "bucket", Path: "prefix/"}},
		{"s3://bucket", storage.Location{Scheme: "s3", Bucket: "bucket"}},
		{"s3://bucket/", storage.Location{Scheme: "s3", Bucket: "bucket"}},
		{"S3://my.bucket-1/a b/c", storage.Location{Scheme: "s3", Bucket: "my.bucket-1", Path: "a b/c"}},
		{"s3a://bucket/x", storage.Location{Scheme: "s3", Bucket: "bucket", Path: "x"}},
		{"s3n://bucket/x", storage.Location{Scheme: "s3", Bucket: "bucket", Path: "x"}},
		{"/abs/path/in.csv", storage.Location{Scheme: "file", Path: "/abs/path/in.csv"}},
		{"rel/path/", storage.Location{Scheme: "file", Path: "rel/path/"}},
		{"in.csv", storage.Location{Scheme: "file", Path: "in.csv"}},
		{"./odd:name.csv", storage.Location{Scheme: "file", Path: "./odd:name.csv"}},
		{"file:///abs/x", storage.Location{Scheme: "file", Path: "/abs/x"}},
		{"file://localhost/abs/x", storage.Location{Scheme: "file", Path: "/abs/x"}},
		{"mem://name/key/k", storage.Location{Scheme: "mem", Bucket: "name", Path: "key/k"}},
		{"mem://name", storage.Location{Scheme: "mem", Bucket: "name"}},
	} {
		got, err := storage.ParseLocation(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, wantErr string }{
		{"", "empty"},
		{"s3://", "no bucket"},
		{"s3:///key", "no bucket"},
		{"s3://Bad_Bucket/key", `invalid S3 bucket name "Bad_Bucket"`},
		{"s3://ab/key", `invalid S3 bucket name "ab"`},
		{"s3://-ab/key", `invalid S3 bucket name "-ab"`},
		{"s3:/bucket/key", `malformed URL "s3:/bucket/key": want s3://`},
		{"s3:bucket", "malformed URL"},
		{"gs://bucket/key", `unsupported storage location "gs://bucket/key"`},
		{"https://host/bucket/key", "unsupported storage location"},
		{"file://otherhost/x", "want file:///absolute/path"},
		{"mem:///k", "no bucket"},
		{"bad\xffutf8", "not valid text"},
	} {
		_, err := storage.ParseLocation(c.in)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("ParseLocation(%q): %v, want an error containing %q", c.in, err, c.wantErr)
		}
	}
}

func TestLocationString(t *testing.T) {
	for _, s := range []string{"s3://bucket/prefix/", "s3://bucket/a/b.csv", "/abs/x", "rel/y", "mem://m/k"} {
		l, err := storage.ParseLocation(s)
		if err != nil {
			t.Fatal(err)
		}
		if l.String() != s {
			t.Errorf("ParseLocation(%q).String() = %q", s, l.String())
		}
		if again, _ := storage.ParseLocation(l.String()); again != l {
			t.Errorf("%q does not round-trip: %+v then %+v", s, l, again)
		}
	}
}
