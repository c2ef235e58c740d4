package storage_test

import (
	"testing"
	"time"

	"github.com/shardprep/shardprep/storage"
)

func TestS3ConfigCheck(t *testing.T) {
	ok := storage.S3Config{Credentials: "default", GrantsDuration: time.Hour, MaxRetries: 9}
	if err := ok.Check(); err != nil {
		t.Fatalf("Check of a good config: %v", err)
	}
	for _, c := range []struct {
		change func(*storage.S3Config)
		want   string
	}{
		{func(c *storage.S3Config) { c.Credentials = "iam" }, `--credentials "iam": want default or grants`},
		{func(c *storage.S3Config) { c.GrantsFile = "g.json" }, "--grants-file and --grants-fallback go with --credentials grants"},
		{func(c *storage.S3Config) { c.GrantsFallback = true }, "--grants-file and --grants-fallback go with --credentials grants"},
		{func(c *storage.S3Config) { c.GrantsDuration = 14 * time.Minute }, "--grants-duration 14m0s: must be from 15m to 12h"},
		{func(c *storage.S3Config) { c.GrantsDuration = 13 * time.Hour }, "--grants-duration 13h0m0s: must be from 15m to 12h"},
		{func(c *storage.S3Config) { c.PartSize = 1 << 20 }, "--s3-part-size 1MiB: must be from 5MiB to 5GiB"},
		{func(c *storage.S3Config) { c.PartSize = 6.5e9 }, "--s3-part-size 6.5 GB: must be from 5MiB to 5GiB"},
		{func(c *storage.S3Config) { c.MaxRetries = -1 }, "--s3-max-retries must be 0 or more"},
	} {
		cfg := ok
		c.change(&cfg)
		if err := cfg.Check(); err == nil || err.Error() != c.want {
			t.Errorf("Check: %v; want %s", err, c.want)
		}
	}
	grants := ok
	grants.Credentials, grants.GrantsFile, grants.GrantsFallback, grants.PartSize = "grants", "g.json", true, storage.MinPartSize
	if err := grants.Check(); err != nil {
		t.Errorf("Check of a grants config: %v", err)
	}
}

func TestSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want storage.Size
		text string
	}{
		{"1048576", 1 << 20, "1MiB"},
		{"64KiB", 64 << 10, "64KiB"},
		{"32M", 32 << 20, "32MiB"},
		{" 1GiB ", 1 << 30, "1GiB"},
		{"10MB", 10e6, "10.0 MB"},
		{"191900B", 191900, "191.9 kB"},
		{"2500MB", 2.5e9, "2.5 GB"},
		{"2GB", 2e9, "1953125KiB"}, // a whole number of KiB
		{"999", 999, "999 B"},
	} {
		var s storage.Size
		if err := s.Set(c.in); err != nil || s != c.want || s.String() != c.text {
			t.Errorf("Set(%q): %d %q, %v; want %d %q", c.in, s, s, err, c.want, c.text)
		}
	}
	for _, bad := range []string{"", "0", "-1", "1.5MiB", "12XB", "9999999999GiB"} {
		var s storage.Size
		if err := s.Set(bad); err == nil {
			t.Errorf("Set(%q) = %d; want an error", bad, s)
		}
	}
}
