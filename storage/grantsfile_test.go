package storage_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/shardprep/shardprep/storage"
	"github.com/shardprep/shardprep/storage/storagetest"
)

func TestParseGrants(t *testing.T) {
	good := `[
  {"grantee": "usera", "location": "s3://shardprep/UserA/*", "permission": "READWRITE"},
  {"grantee": "userb", "location": "s3://*", "permission": "READ"}
]`
	grants, err := storage.ParseGrants([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.Grant{
		{Grantee: "usera", Location: "s3://shardprep/UserA/*", Permission: storage.PermReadWrite},
		{Grantee: "userb", Location: "s3://*", Permission: storage.PermRead},
	}
	if len(grants) != len(want) || grants[0] != want[0] || grants[1] != want[1] {
		t.Errorf("parsed %+v, want %+v", grants, want)
	}

	for _, tc := range []struct{ in, want string }{
		{`[{"grantee": "a", "location": "s3://b/p/", "permission": "READ"}]`, `grant 1: location "s3://b/p/"`},
		{`[{"grantee": "a", "location": "s3://b/*/x*", "permission": "READ"}]`, `grant 1: location`},
		{`[{"grantee": "a", "location": "b/p*", "permission": "READ"}]`, `grant 1: location`},
		{`[{"grantee": "a", "location": "s3:///p*", "permission": "READ"}]`, `no bucket`},
		{`[{"grantee": "a", "location": "s3://b/*", "permission": "READ"}, {"grantee": "a", "location": "s3://b/*", "permission": "ALL"}]`, `grant 2: permission "ALL"`},
		{`[{"grantee": "", "location": "s3://b/*", "permission": "READ"}]`, `grant 1: no grantee`},
		{`[{"grantee": "a", "location": "s3://b/*", "permission": "READ", "expires": 3}]`, `unknown field "expires"`},
		{"[\n{\"grantee\": \"a\",\n\"location\": \"s3://b/*\" \"permission\": \"READ\"}]", `line 3`},
		{`{"grantee": "a"}`, `not a JSON list`},
		{`[] []`, `data after`},
	} {
		_, err := storage.ParseGrants([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseGrants(%s) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}

	path := filepath.Join(t.TempDir(), "grants.json")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if g, err := storage.ReadGrantsFile(path); err != nil || len(g) != 2 {
		t.Errorf("ReadGrantsFile: %v, %v", g, err)
	}
	if _, err := storage.ReadGrantsFile(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestParseGrantsDuplicateKeys: a key given twice in one grant, in any
// spelling encoding/json matches to the same field, is refused with its
// line and both spellings, where decoding would silently keep the last.
func TestParseGrantsDuplicateKeys(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		line       int
		first, dup string
	}{
		{"same spelling", `[{"grantee": "a", "grantee": "b", "location": "s3://b/*", "permission": "READ"}]`, 1, "grantee", "grantee"},
		{"capitalized", "[\n  {\"grantee\": \"usera\",\n   \"location\": \"s3://b/*\",\n   \"Grantee\": \"userb\", \"permission\": \"READ\"}\n]", 4, "grantee", "Grantee"},
		{"upper case, second grant", "[\n{\"grantee\": \"a\", \"location\": \"s3://b/*\", \"permission\": \"READ\"},\n{\"grantee\": \"a\", \"location\": \"s3://b/p/*\",\n\"permission\": \"READ\",\n\"PERMISSION\": \"READWRITE\"}\n]", 5, "permission", "PERMISSION"},
		{"mixed case", "[{\"Location\": \"s3://b/*\",\n\"grantee\": \"a\", \"permission\": \"READ\", \"lOcAtIoN\": \"s3://*\"}]", 2, "Location", "lOcAtIoN"},
		{"after nested values", "[{\"note\": {\"grantee\": 1, \"x\": [{\"grantee\": 2}, [{\"Grantee\": 3}]]},\n\"grantee\": \"a\", \"location\": \"s3://b/*\",\n\"GRANTEE\": \"b\"}]", 3, "grantee", "GRANTEE"},
		{"unknown key twice", "[{\"grantee\": \"a\", \"location\": \"s3://b/*\", \"permission\": \"READ\",\n\"note\": 1,\n\"Note\": {\"x\": [1, {\"y\": 2}]}}]", 3, "note", "Note"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storage.ParseGrants([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseGrants accepted %s", tc.in)
			}
			for _, want := range []string{fmt.Sprintf("line %d:", tc.line), strconv.Quote(tc.first), strconv.Quote(tc.dup)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %s", err, want)
				}
			}
		})
	}
	// The same key in different objects is fine.
	ok := `[{"grantee": "a", "location": "s3://b/*", "permission": "READ"},
{"grantee": "a", "location": "s3://c/*", "permission": "READWRITE"}]`
	if g, err := storage.ParseGrants([]byte(ok)); err != nil || len(g) != 2 {
		t.Errorf("two grants with the same keys: %v, %v", g, err)
	}
	path := filepath.Join(t.TempDir(), "grants.json")
	if err := os.WriteFile(path, []byte("[{\"grantee\": \"a\",\n\"Grantee\": \"b\"}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.ReadGrantsFile(path); err == nil || !strings.Contains(err.Error(), path+": line 2:") {
		t.Errorf("ReadGrantsFile: %v, want an error naming the file and line 2", err)
	}
}

// grantsMinIO returns the MinIO server of scripts/test.sh and a fresh
// prefix under UserA/ that is emptied when the test ends.
func grantsMinIO(t *testing.T) (storagetest.MinIOEnv, string) {
	t.Helper()
	e, _ := storagetest.MinIO(t)
	if e.UserAKey == "" || e.UserASecret == "" || e.UserBKey == "" || e.UserBSecret == "" {
		t.Fatal("SHARDPREP_MINIO_USERA_/USERB_ KEY and SECRET must be set with SHARDPREP_MINIO_ENDPOINT")
	}
	var b [6]byte
	rand.Read(b[:])
	prefix := "UserA/test/" + hex.EncodeToString(b[:]) + "/"
	root := grantsS3Client(e, credentials.NewStaticCredentialsProvider(e.RootUser, e.RootPassword, ""))
	t.Cleanup(func() {
		ctx := context.Background()
		out, err := root.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &e.Bucket, Prefix: &prefix})
		if err != nil {
			t.Logf("cleaning up %s: %v", prefix, err)
			return
		}
		for _, o := range out.Contents {
			root.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.Bucket, Key: o.Key})
		}
	})
	return e, prefix
}

func grantsS3Client(e storagetest.MinIOEnv, creds aws.CredentialsProvider) *s3.Client {
	return s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: creds, RetryMaxAttempts: 1}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(e.Endpoint)
		o.UsePathStyle = true
	})
}

func userConfig(key, secret string) aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""), RetryMaxAttempts: 1}
}

func put(ctx context.Context, c *s3.Client, bucket, key, body string) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body)})
	return err
}

func get(ctx context.Context, c *s3.Client, bucket, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

func list(ctx context.Context, c *s3.Client, bucket, prefix string) ([]string, error) {
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys, nil
}

func wantAccessDenied(t *testing.T, what string, err error) {
	t.Helper()
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
		t.Errorf("%s: %v, want AccessDenied from MinIO", what, err)
	}
}

func TestGrantsFileMinIOScopes(t *testing.T) {
	ctx := context.Background()
	e, userA := grantsMinIO(t)
	userB := strings.Replace(userA, "UserA/", "UserB/", 1)
	product := strings.Replace(userA, "UserA/", "Product/", 1)
	grants := []storage.Grant{
		{Grantee: e.UserAKey, Location: "s3://" + e.Bucket + "/UserA/*", Permission: storage.PermReadWrite},
		// Wrong on purpose: usera's own policy does not allow UserB/.
		{Grantee: e.UserAKey, Location: "s3://" + e.Bucket + "/UserB/*", Permission: storage.PermReadWrite},
		{Grantee: e.UserBKey, Location: "s3://" + e.Bucket + "/Product/*", Permission: storage.PermRead},
	}
	src, err := storage.NewGrantsFile(userConfig(e.UserAKey, e.UserASecret), "grants.json", grants,
		&storage.GrantOptions{Endpoint: e.Endpoint, Duration: 15 * time.Minute, JobName: "abalone prep/1"})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := src.Credentials(ctx, storage.GrantTarget{Bucket: e.Bucket, Prefix: userA, Permission: storage.PermReadWrite})
	if err != nil {
		t.Fatal(err)
	}
	if gc.Grant() != "s3://"+e.Bucket+"/UserA/*" || gc.Fallback() != nil || src.Calls() != 1 {
		t.Fatalf("grant %q fallback %v calls %d", gc.Grant(), gc.Fallback(), src.Calls())
	}
	c, err := gc.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID == e.UserAKey || c.SessionToken == "" || !c.CanExpire {
		t.Fatalf("not temporary credentials: key %s, token set %v, can expire %v", c.AccessKeyID, c.SessionToken != "", c.CanExpire)
	}
	if left := time.Until(c.Expires); left < 10*time.Minute || left > 15*time.Minute {
		t.Errorf("credentials due for refresh in %v, want a little under 15m", left)
	}

	minted := grantsS3Client(e, gc)
	if err := put(ctx, minted, e.Bucket, userA+"x.csv", "1,2\n"); err != nil {
		t.Fatalf("put under the granted prefix: %v", err)
	}
	if body, err := get(ctx, minted, e.Bucket, userA+"x.csv"); err != nil || body != "1,2\n" {
		t.Errorf("get under the granted prefix: %q, %v", body, err)
	}
	if keys, err := list(ctx, minted, e.Bucket, userA); err != nil || len(keys) != 1 || keys[0] != userA+"x.csv" {
		t.Errorf("list of the granted prefix: %v, %v", keys, err)
	}
	// MinIO enforces the session policy: usera's own keys may write
	// Product/, the minted ones may not.
	own := grantsS3Client(e, credentials.NewStaticCredentialsProvider(e.UserAKey, e.UserASecret, ""))
	if err := put(ctx, own, e.Bucket, product+"own.csv", "x"); err != nil {
		t.Fatalf("usera's own keys cannot write %s: %v", product, err)
	}
	wantAccessDenied(t, "minted put outside the grant (Product/)", put(ctx, minted, e.Bucket, product+"x.csv", "x"))
	_, err = get(ctx, minted, e.Bucket, product+"own.csv")
	wantAccessDenied(t, "minted get outside the grant (Product/)", err)
	_, err = list(ctx, minted, e.Bucket, "Product/")
	wantAccessDenied(t, "minted list outside the grant (Product/)", err)
	wantAccessDenied(t, "minted put under UserB/", put(ctx, minted, e.Bucket, userB+"x.csv", "x"))
	if _, err := minted.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.Bucket, Key: aws.String(userA + "x.csv")}); err != nil {
		t.Errorf("delete under the granted prefix: %v", err)
	}

	// The grants file wrongly gives usera UserB/: credentials are minted,
	// but MinIO grants only the intersection with usera's own policy.
	gcB, err := src.Credentials(ctx, storage.GrantTarget{Bucket: e.Bucket, Prefix: userB, Permission: storage.PermReadWrite})
	if err != nil {
		t.Fatal(err)
	}
	if gcB.Grant() != "s3://"+e.Bucket+"/UserB/*" || src.Calls() != 2 {
		t.Fatalf("grant %q, %d calls", gcB.Grant(), src.Calls())
	}
	wantAccessDenied(t, "put under a grant usera's own policy lacks", put(ctx, grantsS3Client(e, gcB), e.Bucket, userB+"x.csv", "x"))

	// A READ grant reads and lists but does not write, although userb's own
	// policy would.
	srcB, err := storage.NewGrantsFile(userConfig(e.UserBKey, e.UserBSecret), "grants.json", grants,
		&storage.GrantOptions{Endpoint: e.Endpoint, Duration: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	gcR, err := srcB.Credentials(ctx, storage.GrantTarget{Bucket: e.Bucket, Prefix: product, Permission: storage.PermRead})
	if err != nil {
		t.Fatal(err)
	}
	reader := grantsS3Client(e, gcR)
	if body, err := get(ctx, reader, e.Bucket, product+"own.csv"); err != nil || body != "x" {
		t.Errorf("READ grant get: %q, %v", body, err)
	}
	if keys, err := list(ctx, reader, e.Bucket, product); err != nil || len(keys) != 1 {
		t.Errorf("READ grant list: %v, %v", keys, err)
	}
	wantAccessDenied(t, "put with a READ grant", put(ctx, reader, e.Bucket, product+"y.csv", "y"))
	if _, err := own.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.Bucket, Key: aws.String(product + "own.csv")}); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

func TestGrantsFileMinIONoGrant(t *testing.T) {
	ctx := context.Background()
	e, userA := grantsMinIO(t)
	grants := []storage.Grant{
		{Grantee: e.UserAKey, Location: "s3://" + e.Bucket + "/UserA/*", Permission: storage.PermReadWrite},
		{Grantee: e.UserBKey, Location: "s3://" + e.Bucket + "/Product/*", Permission: storage.PermRead},
	}
	opts := &storage.GrantOptions{Endpoint: e.Endpoint, Duration: 15 * time.Minute}
	src, err := storage.NewGrantsFile(userConfig(e.UserBKey, e.UserBSecret), "grants.json", grants, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []storage.GrantTarget{
		{Bucket: e.Bucket, Prefix: userA, Permission: storage.PermRead},             // usera's grant
		{Bucket: e.Bucket, Prefix: "Product/x/", Permission: storage.PermReadWrite}, // only READ granted
	} {
		_, err := src.Credentials(ctx, target)
		var ng *storage.NoGrantError
		if !errors.As(err, &ng) {
			t.Fatalf("%v: %v, want a *NoGrantError", target, err)
		}
		if ng.Principal != "access key "+e.UserBKey || ng.Target != target {
			t.Errorf("NoGrantError names %q, %v", ng.Principal, ng.Target)
		}
		for _, s := range []string{e.UserBKey, target.Location(), string(target.Permission)} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not mention %q", err, s)
			}
		}
	}
	if src.Calls() != 0 {
		t.Errorf("%d AssumeRole calls without a grant", src.Calls())
	}

	opts.Fallback = true
	src, err = storage.NewGrantsFile(userConfig(e.UserBKey, e.UserBSecret), "grants.json", grants, opts)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := src.Credentials(ctx, storage.GrantTarget{Bucket: e.Bucket, Prefix: userA, Permission: storage.PermRead})
	if err != nil {
		t.Fatal(err)
	}
	var ng *storage.NoGrantError
	if !errors.As(gc.Fallback(), &ng) || gc.Grant() != "" || src.Calls() != 0 {
		t.Fatalf("fallback %v, grant %q, calls %d", gc.Fallback(), gc.Grant(), src.Calls())
	}
	c, err := gc.Retrieve(ctx)
	if err != nil || c.AccessKeyID != e.UserBKey || c.SecretAccessKey != e.UserBSecret {
		t.Fatalf("fallback Retrieve: key %s, %v; want userb's own credentials", c.AccessKeyID, err)
	}
	// They are userb's own: MinIO applies userb's policy to them.
	_, err = list(ctx, grantsS3Client(e, gc), e.Bucket, userA)
	wantAccessDenied(t, "userb listing UserA/ with its own keys", err)
}

func TestGrantsFileMinIORefresh(t *testing.T) {
	ctx := context.Background()
	e, userA := grantsMinIO(t)
	grants := []storage.Grant{{Grantee: e.UserAKey, Location: "s3://" + e.Bucket + "/UserA/*", Permission: storage.PermReadWrite}}
	// The SDK's cache decides by the wall clock: a margin of all but three
	// seconds of the lifetime makes credentials due that soon.
	src, err := storage.NewGrantsFile(userConfig(e.UserAKey, e.UserASecret), "grants.json", grants,
		&storage.GrantOptions{Endpoint: e.Endpoint, Duration: 15 * time.Minute, RefreshMargin: 15*time.Minute - 3*time.Second})
	if err != nil {
		t.Fatal(err)
	}
	target := storage.GrantTarget{Bucket: e.Bucket, Prefix: userA, Permission: storage.PermReadWrite}
	gc, err := src.Credentials(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	first, err := gc.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Another target under the same grant shares its credentials.
	gc2, err := src.Credentials(ctx, storage.GrantTarget{Bucket: e.Bucket, Prefix: userA + "out/", Permission: storage.PermRead})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := gc2.Retrieve(ctx); c.AccessKeyID != first.AccessKeyID || src.Calls() != 1 {
		t.Fatalf("second target under the grant: key %s (first %s), %d calls", c.AccessKeyID, first.AccessKeyID, src.Calls())
	}

	// Wait for the refresh time of the first credentials (their expiration
	// less the margin); MinIO's next credentials expire later, so one
	// refresh serves every concurrent caller.
	time.Sleep(time.Until(first.Expires) + 10*time.Millisecond)
	var wg sync.WaitGroup
	got := make([]aws.Credentials, 32)
	errs := make([]error, len(got))
	for i := range got {
		wg.Go(func() { got[i], errs[i] = gc.Retrieve(ctx) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i].AccessKeyID == first.AccessKeyID || got[i].AccessKeyID != got[0].AccessKeyID {
			t.Fatalf("caller %d: key %s, %v; want one new key (first %s, caller 0 %s)", i, got[i].AccessKeyID, errs[i], first.AccessKeyID, got[0].AccessKeyID)
		}
	}
	if src.Calls() != 2 {
		t.Fatalf("%d AssumeRole calls, want 2: one refresh for 32 concurrent callers", src.Calls())
	}
	if c, _ := gc2.Retrieve(ctx); c.AccessKeyID != got[0].AccessKeyID {
		t.Errorf("the other target did not get the refreshed credentials")
	}
	if err := put(ctx, grantsS3Client(e, gc), e.Bucket, userA+"after-refresh", "ok"); err != nil {
		t.Errorf("refreshed credentials do not work: %v", err)
	}

	// A margin longer than the lifetime refreshes on every Retrieve.
	eager, err := storage.NewGrantsFile(userConfig(e.UserAKey, e.UserASecret), "grants.json", grants,
		&storage.GrantOptions{Endpoint: e.Endpoint, Duration: 15 * time.Minute, RefreshMargin: 20 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	gcE, err := eager.Credentials(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 3 {
		c, err := gcE.Retrieve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen[c.AccessKeyID] = true
	}
	if len(seen) != 3 || eager.Calls() != 4 {
		t.Errorf("margin > lifetime: %d distinct keys, %d calls; want 3 and 4", len(seen), eager.Calls())
	}
}

func TestGrantsFileMinIOBadCaller(t *testing.T) {
	ctx := context.Background()
	e, userA := grantsMinIO(t)
	const wrongSecret = "wrongSecretValueThatMustNotLeak42"
	grants := []storage.Grant{{Grantee: e.UserAKey, Location: "s3://" + e.Bucket + "/UserA/*", Permission: storage.PermReadWrite}}
	src, err := storage.NewGrantsFile(userConfig(e.UserAKey, wrongSecret), "grants.json", grants,
		&storage.GrantOptions{Endpoint: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Credentials(ctx, storage.GrantTarget{Bucket: e.Bucket, Prefix: userA, Permission: storage.PermRead})
	var ng *storage.NoGrantError
	if err == nil || errors.As(err, &ng) || !strings.Contains(err.Error(), "AssumeRole") {
		t.Fatalf("AssumeRole with a wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), wrongSecret) {
		t.Errorf("error shows the secret: %v", err)
	}
	if src.Calls() != 1 {
		t.Errorf("%d calls, want 1", src.Calls())
	}
}

// secretsAbsent fails the test if any secret occurs in out.
func secretsAbsent(t *testing.T, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("output shows a secret (%d characters starting %.4q)", len(s), s)
		}
	}
}
