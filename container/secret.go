package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// A SecretStore is the job's output as the cluster secret needs it: the
// methods of shardprep's storage.Bucket, keys relative to the output.
// NewRangeReader and Delete report a missing key as fs.ErrNotExist.
type SecretStore interface {
	NewRangeReader(ctx context.Context, key, etag string, offset, length int64) (io.ReadCloser, error)
	Put(ctx context.Context, key string, data []byte) error
	Delete(ctx context.Context, key string) error
	URL(key string) string
}

// PublishSecret makes a fresh cluster secret (64 hex digits) and writes it
// at key under out (the job's output, written with its own credentials;
// the caller names the key, which belongs to the output's layout).
func PublishSecret(ctx context.Context, out SecretStore, key string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making the cluster secret: %w", err)
	}
	secret := hex.EncodeToString(b)
	if err := out.Put(ctx, key, []byte(secret)); err != nil {
		return "", fmt.Errorf("publishing the cluster secret at %s: %w", out.URL(key), err)
	}
	return secret, nil
}

// DeleteSecret deletes the cluster secret at key; one already gone is no
// error.
func DeleteSecret(ctx context.Context, out SecretStore, key string) error {
	if err := out.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// WaitSecret polls key under out until the coordinator has
// published the cluster secret (at least 16 characters, surrounding space
// trimmed), committed reports that the job committed already (done: there
// is nothing left to join), timeout passes or ctx ends. It waits 100ms
// after the first attempt, doubling up to 1s.
func WaitSecret(ctx context.Context, out SecretStore, key string, timeout time.Duration, committed func(context.Context) bool) (secret string, done bool, err error) {
	errMissing := fmt.Errorf("the coordinator published no cluster secret at %s within %s", out.URL(key), timeout)
	err = Retry(ctx, Backoff{First: 100 * time.Millisecond, Max: time.Second, Timeout: timeout}, func() (bool, error) {
		s, found, err := readSecret(ctx, out, key)
		if found || err != nil {
			secret = s
			return true, err
		}
		if committed(ctx) {
			done = true
			return true, nil
		}
		return false, errMissing
	})
	switch {
	case err == nil:
		return secret, done, nil
	case errors.Is(err, errMissing) && ctx.Err() == nil:
		return "", false, errMissing
	case ctx.Err() != nil:
		return "", false, fmt.Errorf("waiting for the cluster secret: %w", ctx.Err())
	}
	return "", false, err
}

// readSecret reads the secret at key; found is false when there is none
// yet.
func readSecret(ctx context.Context, out SecretStore, key string) (secret string, found bool, err error) {
	rc, err := out.NewRangeReader(ctx, key, "", 0, -1)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	var data []byte
	if err == nil {
		data, err = io.ReadAll(io.LimitReader(rc, 4096))
		rc.Close()
	}
	if err != nil {
		return "", false, fmt.Errorf("reading the cluster secret at %s: %w", out.URL(key), err)
	}
	if s := strings.TrimSpace(string(data)); len(s) >= 16 {
		return s, true, nil
	}
	return "", false, fmt.Errorf("the cluster secret at %s is too short (%d bytes)", out.URL(key), len(data))
}
