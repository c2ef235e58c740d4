package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardprep/shardprep/storage"
)

// MinIOEnv describes the MinIO server started by scripts/minio.sh (and so by
// scripts/test.sh), read from its SHARDPREP_MINIO_* environment variables.
// Bucket holds Product/, UserA/ and UserB/; user A may read and write
// Product/* and UserA/*, user B Product/* and UserB/*.
type MinIOEnv struct {
	Endpoint     string // SHARDPREP_MINIO_ENDPOINT, e.g. http://127.0.0.1:9000
	RootUser     string // SHARDPREP_MINIO_ROOT_USER
	RootPassword string // SHARDPREP_MINIO_ROOT_PASSWORD
	Bucket       string // SHARDPREP_MINIO_BUCKET ("shardprep")
	UserAKey     string // SHARDPREP_MINIO_USERA_KEY
	UserASecret  string // SHARDPREP_MINIO_USERA_SECRET
	UserBKey     string // SHARDPREP_MINIO_USERB_KEY
	UserBSecret  string // SHARDPREP_MINIO_USERB_SECRET
	Bin          string // SHARDPREP_MINIO_BIN: the folder holding minio and mc
}

// MinIO returns the running MinIO server's settings and a fresh key prefix
// under Product/ ("Product/test/NAME-RANDOM/") for this test alone; objects
// left under it are deleted when the test ends. Without
// SHARDPREP_MINIO_ENDPOINT the test fails when CI is set and is skipped
// otherwise.
func MinIO(t testing.TB) (MinIOEnv, string) {
	t.Helper()
	e := MinIOEnv{
		Endpoint:     os.Getenv("SHARDPREP_MINIO_ENDPOINT"),
		RootUser:     os.Getenv("SHARDPREP_MINIO_ROOT_USER"),
		RootPassword: os.Getenv("SHARDPREP_MINIO_ROOT_PASSWORD"),
		Bucket:       os.Getenv("SHARDPREP_MINIO_BUCKET"),
		UserAKey:     os.Getenv("SHARDPREP_MINIO_USERA_KEY"),
		UserASecret:  os.Getenv("SHARDPREP_MINIO_USERA_SECRET"),
		UserBKey:     os.Getenv("SHARDPREP_MINIO_USERB_KEY"),
		UserBSecret:  os.Getenv("SHARDPREP_MINIO_USERB_SECRET"),
		Bin:          os.Getenv("SHARDPREP_MINIO_BIN"),
	}
	if e.Endpoint == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("MinIO not running (SHARDPREP_MINIO_ENDPOINT unset) although CI is set: run tests with scripts/test.sh")
		}
		t.Skip("MinIO not running: use scripts/test.sh")
	}
	if e.RootUser == "" || e.RootPassword == "" || e.Bucket == "" {
		t.Fatal("SHARDPREP_MINIO_ENDPOINT is set but SHARDPREP_MINIO_ROOT_USER, _ROOT_PASSWORD or _BUCKET is not")
	}
	var b [6]byte
	rand.Read(b[:])
	prefix := "Product/test/" + keySafe(t.Name()) + "-" + hex.EncodeToString(b[:]) + "/"
	client := e.RootClient(t)
	t.Cleanup(func() { removeAll(t, client, e.Bucket, prefix) })
	return e, prefix
}

// Client returns a path-style S3 client for the server signed with the
// given access key and secret.
func (e MinIOEnv) Client(t testing.TB, key, secret string) *s3.Client {
	t.Helper()
	if key == "" || secret == "" {
		t.Fatal("MinIOEnv.Client: empty access key or secret (is the MinIO env file complete?)")
	}
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""),
	}
	return storage.NewS3Client(cfg, e.Endpoint, true)
}

// RootClient returns a client signed as the server's root user.
func (e MinIOEnv) RootClient(t testing.TB) *s3.Client {
	t.Helper()
	return e.Client(t, e.RootUser, e.RootPassword)
}

// removeAll deletes the objects and aborts the multipart uploads under
// prefix; failures are logged, not fatal.
func removeAll(t testing.TB, client *s3.Client, bucket, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Logf("cleaning up s3://%s/%s: %v", bucket, prefix, err)
			return
		}
		for _, o := range page.Contents {
			if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
				t.Logf("cleaning up s3://%s/%s: %v", bucket, aws.ToString(o.Key), err)
			}
		}
	}
	ups, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		t.Logf("cleaning up uploads under s3://%s/%s: %v", bucket, prefix, err)
		return
	}
	for _, u := range ups.Uploads {
		client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
	}
}

// keySafe maps a test name to key characters that need no escaping.
func keySafe(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, name)
}
