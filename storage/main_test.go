package storage_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/shardprep/shardprep/storage"
)

// TestMain checks, once every test has closed its readers and writers,
// that all the S3 buffer chunks they took were given back: the chunks
// are not garbage-collected memory, so one never given back would leak.
func TestMain(m *testing.M) {
	code := m.Run()
	if n := storage.OutstandingChunks(); n != 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "%d S3 buffer chunks were never given back\n", n)
		code = 1
	}
	os.Exit(code)
}
