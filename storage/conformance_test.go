package storage_test

import (
	"testing"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

func TestConformanceLocal(t *testing.T) {
	storagetest.RunConformance(t, func(t *testing.T) *storage.Bucket {
		b, err := storage.OpenLocal(t.TempDir() + "/root/not/yet/created")
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestConformanceMemory(t *testing.T) {
	storagetest.RunConformance(t, func(t *testing.T) *storage.Bucket { return storage.NewMemory() })
}

func TestConformanceMinIO(t *testing.T) {
	env, _ := storagetest.MinIO(t)
	client := env.RootClient(t)
	storagetest.RunConformance(t, func(t *testing.T) *storage.Bucket {
		_, prefix := storagetest.MinIO(t)
		b, err := storage.OpenS3(env.Bucket, prefix, &storage.S3Options{Client: client, PartSize: storage.MinPartSize})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for _, k := range storagetest.AbandonedKeys {
				assertNoUploads(t, client, env.Bucket, prefix+k)
			}
		})
		return b
	})
}
