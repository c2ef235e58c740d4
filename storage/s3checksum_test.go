package storage_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

// Over plain http every upload body goes with UNSIGNED-PAYLOAD and its
// CRC32 header, and MinIO stores it; a body changed on the way (its CRC32
// header left as sent) is refused, and nothing of it is left.
func TestMinIOUploadsCarryCRC32(t *testing.T) {
	env, prefix := storagetest.MinIO(t)
	var mu sync.Mutex
	sent := map[string][]storagetest.S3Request{} // body requests by key
	b, proxy := proxied(t, env, prefix, func(r storagetest.S3Request) storagetest.Fault {
		if r.Op != "PutObject" && r.Op != "UploadPart" {
			return storagetest.Fault{}
		}
		mu.Lock()
		sent[r.Key] = append(sent[r.Key], r)
		mu.Unlock()
		return storagetest.Fault{Corrupt: strings.Contains(r.Key, "corrupt")}
	})
	objects := map[string][]byte{
		"small": testData(1000),                      // PutObject
		"multi": testData(2*storage.MinPartSize + 7), // three parts
	}
	for key, data := range objects {
		if err := writeObject(t.Context(), b, key, false, data); err != nil {
			t.Fatalf("writing %s: %v", key, err)
		}
		if err := writeObject(t.Context(), b, "staged-"+key, true, data); err != nil {
			t.Fatalf("writing staged-%s: %v", key, err)
		}
		for _, k := range []string{key, "staged-" + key} {
			if got := storagetest.Read(t, b, k, 0, -1); !bytes.Equal(got, data) {
				t.Errorf("%s: read back differs", k)
			}
		}
	}
	for key, reqs := range sent {
		for _, r := range reqs {
			if r.PayloadHash != "UNSIGNED-PAYLOAD" || r.CRC32 == "" {
				t.Errorf("%s %s: X-Amz-Content-Sha256 %q, X-Amz-Checksum-Crc32 %q; want UNSIGNED-PAYLOAD and a CRC32",
					r.Op, key, r.PayloadHash, r.CRC32)
			}
		}
	}
	if n := len(sent[prefix+"multi"]); n != 3 {
		t.Errorf("multi went in %d requests, want 3 parts", n)
	}
	if got, want := sent[prefix+"small"][0].CRC32, crc32Header(objects["small"]); got != want {
		t.Errorf("small: CRC32 header %s, want %s", got, want)
	}

	for key, data := range objects {
		key = "corrupt-" + key
		err := writeObject(t.Context(), b, key, false, data)
		if err == nil {
			t.Errorf("%s: a body changed on the way was stored", key)
		}
		if _, err := b.Stat(t.Context(), key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%s) after the refused write: %v, want fs.ErrNotExist", key, err)
		}
		assertNoUploads(t, env.RootClient(t), env.Bucket, prefix+key)
	}
	if proxy.Faults("PutObject corrupt") == 0 || proxy.Faults("UploadPart corrupt") == 0 {
		t.Errorf("bodies changed: %d PutObject, %d UploadPart; want both",
			proxy.Faults("PutObject corrupt"), proxy.Faults("UploadPart corrupt"))
	}
}

// crc32Header is the X-Amz-Checksum-Crc32 value of data.
func crc32Header(data []byte) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32.ChecksumIEEE(data))
	return base64.StdEncoding.EncodeToString(b[:])
}
