package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/logging"

	"github.com/shardprep/shardprep/storage"
)

func TestGrantTargetLocation(t *testing.T) {
	for _, tc := range []struct {
		t    storage.GrantTarget
		want string
	}{
		{storage.GrantTarget{Bucket: "b", Prefix: "in/", Permission: storage.PermRead}, "s3://b/in/* (READ)"},
		{storage.GrantTarget{Bucket: "b", Prefix: "out/run", Permission: storage.PermReadWrite}, "s3://b/out/run* (READWRITE)"},
		{storage.GrantTarget{Bucket: "b", Permission: storage.PermWrite}, "s3://b/* (WRITE)"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("%#v: %q, want %q", tc.t, got, tc.want)
		}
	}
	err := &storage.NoGrantError{Principal: "access key usera", Target: storage.GrantTarget{Bucket: "b", Prefix: "p/", Permission: storage.PermRead}}
	if want := "storage: no access grant for access key usera on s3://b/p/* with permission READ"; err.Error() != want {
		t.Errorf("%q, want %q", err.Error(), want)
	}
}

// A refresh whose caller gives up does not fail the callers waiting on it:
// the refresh goes on (the SDK's cache detaches it from its first caller's
// cancellation), and they get its credentials.
func TestRetrieveOutlivesCancelledRefresh(t *testing.T) {
	// The server issues credentials as if its clock were behind: due for
	// refresh (default margin, 5 minutes of 1 hour) about a second later.
	clock := &grantsClock{t: time.Now().Add(-55*time.Minute + 2*time.Second)}
	srv := newAccessGrantsServer(t, clock, map[string]string{"s3://data/*": "READ"})
	src, err := storage.NewAccessGrants(callerConfig(), &storage.GrantOptions{
		AccountID: "123456789012", Endpoint: srv.srv.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := src.Credentials(context.Background(), storage.GrantTarget{Bucket: "data", Prefix: "in/", Permission: storage.PermRead})
	if err != nil {
		t.Fatal(err)
	}
	first, err := gc.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(first.Expires) + 10*time.Millisecond) // due
	clock.Set(time.Now())
	srv.mu.Lock()
	srv.delay = 300 * time.Millisecond
	srv.mu.Unlock()

	leaderCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var leaderErr, followerErr error
	var follower aws.Credentials
	wg.Go(func() { _, leaderErr = gc.Retrieve(leaderCtx) })
	for srv.dataAccessCalls() < 2 { // the refresh is in flight
		time.Sleep(time.Millisecond)
	}
	wg.Go(func() { follower, followerErr = gc.Retrieve(context.Background()) })
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	if !errors.Is(leaderErr, context.Canceled) {
		t.Errorf("cancelled caller: %v, want context.Canceled", leaderErr)
	}
	if followerErr != nil || follower.AccessKeyID != "ASIAGRANT0002" {
		t.Errorf("waiting caller: %s, %v; want the credentials of the second request", follower.AccessKeyID, followerErr)
	}
	if src.Calls() != 2 {
		t.Errorf("%d calls, want 2 (initial, and the refresh its cancelled caller left running)", src.Calls())
	}
}

// allLogModes turns on every SDK log mode, request and response bodies
// included.
const allLogModes = aws.LogSigning | aws.LogRetries | aws.LogRequest | aws.LogRequestWithBody |
	aws.LogResponse | aws.LogResponseWithBody | aws.LogDeprecatedUsage

// printAll formats v every way a log line or error message might.
func printAll(w *bytes.Buffer, logger *slog.Logger, vs ...any) {
	for _, v := range vs {
		fmt.Fprintf(w, "%v|%+v|%#v|%s\n", v, v, v, v)
		logger.Info("value", "v", v)
	}
}

func TestNoSecretsInOutputAccessGrants(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&out, nil))
	clock := &grantsClock{t: time.Now()}
	srv := newAccessGrantsServer(t, clock, map[string]string{"s3://data/in/*": "READ"})
	cfg := callerConfig()
	cfg.Logger = logging.NewStandardLogger(&out)
	cfg.ClientLogMode = allLogModes
	src, err := storage.NewAccessGrants(cfg, &storage.GrantOptions{
		Endpoint: srv.srv.URL, STSEndpoint: srv.srv.URL, RefreshMargin: 2 * time.Hour, JobName: "leak-check",
	})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := src.Credentials(ctx, storage.GrantTarget{Bucket: "data", Prefix: "in/", Permission: storage.PermRead})
	if err != nil {
		t.Fatal(err)
	}
	c, err := gc.Retrieve(ctx) // margin > lifetime: a refresh
	if err != nil {
		t.Fatal(err)
	}
	_, denied := src.Credentials(ctx, storage.GrantTarget{Bucket: "data", Prefix: "out/", Permission: storage.PermReadWrite})
	if denied == nil {
		t.Fatal("no error for a target without a grant")
	}
	srcFB, err := storage.NewAccessGrants(cfg, &storage.GrantOptions{AccountID: "123456789012", Endpoint: srv.srv.URL, Fallback: true})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := srcFB.Credentials(ctx, storage.GrantTarget{Bucket: "data", Prefix: "out/", Permission: storage.PermReadWrite})
	if err != nil {
		t.Fatal(err)
	}
	printAll(&out, logger, gc, fb, src, srcFB, denied, fb.Fallback(), gc.Target())

	if !strings.Contains(out.String(), "HTTP/1.1 200") || !strings.Contains(out.String(), "GetDataAccess") {
		t.Fatalf("the SDK logged nothing, so the test shows nothing:\n%s", out.String())
	}
	srv.mu.Lock()
	issued := append([]string(nil), srv.issued...)
	srv.mu.Unlock()
	if len(issued) != 4 || c.SecretAccessKey != issued[2] {
		t.Fatalf("issued %d secrets and tokens, want 4 (two GetDataAccess responses)", len(issued))
	}
	secretsAbsent(t, out.String(), append(issued, callerSecret)...)
}

func TestNoSecretsInOutputMinIO(t *testing.T) {
	ctx := context.Background()
	e, userA := grantsMinIO(t)
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&out, nil))
	grants := []storage.Grant{{Grantee: e.UserAKey, Location: "s3://" + e.Bucket + "/UserA/*", Permission: storage.PermReadWrite}}
	cfg := userConfig(e.UserAKey, e.UserASecret)
	cfg.Logger = logging.NewStandardLogger(&out)
	cfg.ClientLogMode = allLogModes
	src, err := storage.NewGrantsFile(cfg, "grants.json", grants,
		&storage.GrantOptions{Endpoint: e.Endpoint, Duration: 15 * time.Minute, RefreshMargin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := src.Credentials(ctx, storage.GrantTarget{Bucket: e.Bucket, Prefix: userA, Permission: storage.PermReadWrite})
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for range 2 { // margin > lifetime: each Retrieve mints new credentials
		c, err := gc.Retrieve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, c.SecretAccessKey, c.SessionToken)
	}
	client := grantsS3Client(e, gc)
	if err := put(ctx, client, e.Bucket, userA+"leak.txt", "x"); err != nil {
		t.Fatal(err)
	}
	denied := put(ctx, client, e.Bucket, "Product/leak.txt", "x")
	wantAccessDenied(t, "put outside the grant", denied)

	cfgB := userConfig(e.UserBKey, e.UserBSecret)
	cfgB.Logger, cfgB.ClientLogMode = cfg.Logger, allLogModes
	srcB, err := storage.NewGrantsFile(cfgB, "grants.json", grants, &storage.GrantOptions{Endpoint: e.Endpoint, Fallback: true})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := srcB.Credentials(ctx, storage.GrantTarget{Bucket: e.Bucket, Prefix: userA, Permission: storage.PermRead})
	if err != nil {
		t.Fatal(err)
	}
	srcBad, err := storage.NewGrantsFile(userConfig(e.UserAKey, e.UserBSecret), "grants.json", grants, &storage.GrantOptions{Endpoint: e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	_, badCaller := srcBad.Credentials(ctx, storage.GrantTarget{Bucket: e.Bucket, Prefix: userA, Permission: storage.PermRead})
	if badCaller == nil {
		t.Fatal("AssumeRole signed with the wrong secret succeeded")
	}
	printAll(&out, logger, gc, fb, src, srcB, denied, fb.Fallback(), badCaller)

	if !strings.Contains(out.String(), "HTTP/1.1 200") {
		t.Fatalf("the SDK logged nothing, so the test shows nothing:\n%s", out.String())
	}
	secretsAbsent(t, out.String(), append(secrets, e.UserASecret, e.UserBSecret, e.RootPassword)...)
}
