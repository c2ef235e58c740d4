package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/shardprep/shardprep/storage/storagetest"
)

func minioCPU() float64 {
	b, _ := os.ReadFile(os.Getenv("SHARDPREP_MINIO_DIR") + "/minio.pid")
	st, _ := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/stat")
	f := strings.Fields(string(st))
	var u, s float64
	fmt.Sscan(f[13], &u)
	fmt.Sscan(f[14], &s)
	return (u + s) / 100
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(0, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func TestZZTiming(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	client := env.RootClient(t)
	data := testData(16 << 20)
	for _, v := range []string{"default", "unsigned", "default", "unsigned", "default", "unsigned"} {
		c0, s0 := minioCPU(), selfCPU()
		t0 := time.Now()
		ctx := context.Background()
		key := aws.String(prefix + "x")
		cin := &s3.CreateMultipartUploadInput{Bucket: &env.Bucket, Key: key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}
		up, err := client.CreateMultipartUpload(ctx, cin)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 16; i++ {
			in := &s3.UploadPartInput{Bucket: &env.Bucket, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}
			var opts []func(*s3.Options)
			if strings.HasPrefix(v, "unsigned") {
				opts = append(opts, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
			}
			if _, err := client.UploadPart(ctx, in, opts...); err != nil {
				t.Fatal(v, err)
			}
		}
		client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &env.Bucket, Key: key, UploadId: up.UploadId})
		t.Logf("%s: 256 MiB in %v, minio cpu %.2f s, self %.2f", v, time.Since(t0), minioCPU()-c0, selfCPU()-s0)
	}
}
