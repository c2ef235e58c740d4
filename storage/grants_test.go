package storage_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"

	"github.com/shardprep/shardprep/storage"
)

// grantsClock is a settable clock for refresh decisions.
type grantsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *grantsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *grantsClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// accessGrantsServer speaks the S3 Control GetDataAccess REST/XML protocol
// and STS GetCallerIdentity, as S3 Access Grants would answer them for the
// grants it holds.
type accessGrantsServer struct {
	t      *testing.T
	srv    *httptest.Server
	clock  *grantsClock
	grants map[string]string // location "s3://b/p*" -> READ|WRITE|READWRITE
	arn    string

	mu       sync.Mutex
	requests []*http.Request
	issued   []string // secrets and tokens handed out
	identity int      // GetCallerIdentity calls
	delay    time.Duration
}

func newAccessGrantsServer(t *testing.T, clock *grantsClock, grants map[string]string) *accessGrantsServer {
	s := &accessGrantsServer{clock: clock, grants: grants,
		arn: "arn:aws:iam::123456789012:user/alice"}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *accessGrantsServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost { // STS query protocol
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "GetCallerIdentity" {
			http.Error(w, "unexpected STS request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.identity++
		s.mu.Unlock()
		fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<GetCallerIdentityResult><Arn>%s</Arn><UserId>AIDEXAMPLE</UserId><Account>123456789012</Account></GetCallerIdentityResult>
<ResponseMetadata><RequestId>id-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`, s.arn)
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, r.Clone(context.Background()))
	n := len(s.requests)
	delay := s.delay
	s.mu.Unlock()
	time.Sleep(delay)
	if r.URL.Path != "/v20180820/accessgrantsinstance/dataaccess" {
		http.Error(w, "unexpected path "+r.URL.Path, http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	target, perm := q.Get("target"), q.Get("permission")
	best := ""
	for loc, p := range s.grants {
		lit := strings.TrimSuffix(loc, "*")
		if strings.HasPrefix(strings.TrimSuffix(target, "*"), lit) && (p == perm || p == "READWRITE") && len(loc) > len(best) {
			best = loc
		}
	}
	if best == "" {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><ErrorResponse><Error><Code>AccessDenied</Code><Message>You do not have permission to access this target</Message></Error><RequestId>req-denied</RequestId></ErrorResponse>`)
		return
	}
	secret := fmt.Sprintf("grantsecret%04dXYZ", n)
	token := fmt.Sprintf("granttoken%04dXYZ", n)
	s.mu.Lock()
	s.issued = append(s.issued, secret, token)
	s.mu.Unlock()
	secs, err := strconv.Atoi(q.Get("durationSeconds"))
	if err != nil {
		secs = 3600
	}
	exp := s.clock.Now().Add(time.Duration(secs) * time.Second).UTC().Format(time.RFC3339)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<GetDataAccessResult xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">
<Credentials><AccessKeyId>ASIAGRANT%04d</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>
<MatchedGrantTarget>%s</MatchedGrantTarget>
<Grantee><GranteeType>IAM</GranteeType><GranteeIdentifier>%s</GranteeIdentifier></Grantee>
</GetDataAccessResult>`, n, secret, token, exp, best, s.arn)
}

func (s *accessGrantsServer) dataAccessCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *accessGrantsServer) identityCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identity
}

func (s *accessGrantsServer) request(i int) *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[i]
}

const (
	callerKey    = "AKIACALLEREXAMPLE"
	callerSecret = "callerSecretKeyDoNotLeak0123456789"
)

func callerConfig() aws.Config {
	return aws.Config{
		Region:           "eu-west-1",
		Credentials:      credentials.NewStaticCredentialsProvider(callerKey, callerSecret, ""),
		RetryMaxAttempts: 1,
	}
}

func TestAccessGrantsRequestAndCache(t *testing.T) {
	ctx := context.Background()
	clock := &grantsClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	srv := newAccessGrantsServer(t, clock, map[string]string{"s3://data/jobs/*": "READWRITE"})
	src, err := storage.NewAccessGrants(callerConfig(), &storage.GrantOptions{
		AccountID: "123456789012", Endpoint: srv.srv.URL, Duration: 2 * time.Hour,
		JobName: "abalone-prep", RefreshMargin: 10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	target := storage.GrantTarget{Bucket: "data", Prefix: "jobs/in/", Permission: storage.PermRead}
	gc, err := src.Credentials(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if srv.dataAccessCalls() != 1 || src.Calls() != 1 {
		t.Fatalf("server saw %d GetDataAccess calls, source counted %d; want 1", srv.dataAccessCalls(), src.Calls())
	}
	r := srv.request(0)
	if r.Method != http.MethodGet {
		t.Errorf("method %s, want GET", r.Method)
	}
	if host, want := r.Host, strings.TrimPrefix(srv.srv.URL, "http://"); host != want {
		t.Errorf("Host %q, want %q (no account prefix on a custom endpoint)", host, want)
	}
	if got := r.Header.Get("X-Amz-Account-Id"); got != "123456789012" {
		t.Errorf("x-amz-account-id %q", got)
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+callerKey+"/") || !strings.Contains(auth, "/eu-west-1/s3/aws4_request") {
		t.Errorf("request not signed by the caller for s3 in eu-west-1: %q", auth)
	}
	want := url.Values{
		"target": {"s3://data/jobs/in/*"}, "permission": {"READ"}, "durationSeconds": {"7200"},
		"privilege": {"Default"}, "auditContext": {"abalone-prep"},
	}
	for k, v := range want {
		if got := r.URL.Query().Get(k); got != v[0] {
			t.Errorf("query %s = %q, want %q", k, got, v[0])
		}
	}

	c, err := gc.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID != "ASIAGRANT0001" || c.SecretAccessKey != "grantsecret0001XYZ" || c.SessionToken != "granttoken0001XYZ" {
		t.Errorf("Retrieve returned %s / secret %q / token %q", c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	}
	if wantExp := clock.Now().Add(2*time.Hour - 10*time.Minute); !c.CanExpire || !c.Expires.Equal(wantExp) {
		t.Errorf("Expires %v (CanExpire %v), want the expiration minus the margin, %v", c.Expires, c.CanExpire, wantExp)
	}
	if gc.Grant() != "s3://data/jobs/*" || gc.Fallback() != nil {
		t.Errorf("Grant %q Fallback %v", gc.Grant(), gc.Fallback())
	}

	// Another target under the same grant, with a permission the cached
	// credentials carry, is served from the cache.
	gc2, err := src.Credentials(ctx, storage.GrantTarget{Bucket: "data", Prefix: "jobs/in/more/", Permission: storage.PermRead})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := gc2.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c2.AccessKeyID != c.AccessKeyID || src.Calls() != 1 {
		t.Errorf("second target under the grant: key %s, %d calls; want the cached %s, 1 call", c2.AccessKeyID, src.Calls(), c.AccessKeyID)
	}
	// A wider permission under the same grant needs its own credentials.
	gc3, err := src.Credentials(ctx, storage.GrantTarget{Bucket: "data", Prefix: "jobs/out/", Permission: storage.PermReadWrite})
	if err != nil {
		t.Fatal(err)
	}
	c3, _ := gc3.Retrieve(ctx)
	if c3.AccessKeyID != "ASIAGRANT0002" || src.Calls() != 2 {
		t.Errorf("READWRITE target: key %s, %d calls; want ASIAGRANT0002, 2", c3.AccessKeyID, src.Calls())
	}
	if got := srv.request(1).URL.Query().Get("permission"); got != "READWRITE" {
		t.Errorf("second request permission %q", got)
	}
}

// dueSoon is a server clock reading that makes the credentials of a
// lifetime, refreshed margin before their expiration, due for refresh
// between one and two seconds from now (the server gives whole seconds).
func dueSoon(lifetime, margin time.Duration) time.Time {
	return time.Now().Add(-lifetime + margin + 2*time.Second).Truncate(time.Second)
}

func TestAccessGrantsRefreshOncePerExpiry(t *testing.T) {
	ctx := context.Background()
	// The SDK's cache decides by the wall clock: the server issues
	// credentials that are due for refresh within two seconds.
	start := dueSoon(15*time.Minute, 90*time.Second)
	clock := &grantsClock{t: start}
	srv := newAccessGrantsServer(t, clock, map[string]string{"s3://data/*": "READ"})
	srv.delay = 50 * time.Millisecond // keep the refresh in flight while others arrive
	src, err := storage.NewAccessGrants(callerConfig(), &storage.GrantOptions{
		AccountID: "123456789012", Endpoint: srv.srv.URL, Duration: 15 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := src.Credentials(ctx, storage.GrantTarget{Bucket: "data", Prefix: "in/", Permission: storage.PermRead})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := gc.Retrieve(ctx)
	// Default margin: a tenth of 15 minutes.
	if want := start.Add(15*time.Minute - 90*time.Second); !first.Expires.Equal(want) {
		t.Fatalf("Expires %v, want %v", first.Expires, want)
	}
	if c, _ := gc.Retrieve(ctx); c.AccessKeyID != first.AccessKeyID || src.Calls() != 1 { // before the refresh time
		t.Fatalf("refreshed too early: %s, %d calls", c.AccessKeyID, src.Calls())
	}

	// Three expiries in a row, each met by 64 concurrent Retrieve calls:
	// exactly one GetDataAccess per expiry, and everyone gets the new keys.
	due := first.Expires
	for round := 1; round <= 3; round++ {
		time.Sleep(time.Until(due) + 10*time.Millisecond)
		clock.Set(dueSoon(15*time.Minute, 90*time.Second))
		var wg sync.WaitGroup
		keys := make([]string, 64)
		errs := make([]error, 64)
		exps := make([]time.Time, 64)
		for i := range keys {
			wg.Go(func() {
				c, err := gc.Retrieve(ctx)
				keys[i], errs[i], exps[i] = c.AccessKeyID, err, c.Expires
			})
		}
		wg.Wait()
		want := fmt.Sprintf("ASIAGRANT%04d", round+1)
		for i := range keys {
			if errs[i] != nil || keys[i] != want {
				t.Fatalf("round %d caller %d: %q, %v; want %s", round, i, keys[i], errs[i], want)
			}
		}
		if src.Calls() != int64(round+1) || srv.dataAccessCalls() != round+1 {
			t.Fatalf("round %d: %d calls counted, %d served; want %d", round, src.Calls(), srv.dataAccessCalls(), round+1)
		}
		due = exps[0]
	}
}

func TestAccessGrantsNoGrant(t *testing.T) {
	ctx := context.Background()
	clock := &grantsClock{t: time.Now()}
	srv := newAccessGrantsServer(t, clock, map[string]string{"s3://data/team/*": "READ"})
	opts := &storage.GrantOptions{STSEndpoint: srv.srv.URL, Endpoint: srv.srv.URL}
	src, err := storage.NewAccessGrants(callerConfig(), opts)
	if err != nil {
		t.Fatal(err)
	}
	target := storage.GrantTarget{Bucket: "data", Prefix: "team/out/", Permission: storage.PermReadWrite}
	_, err = src.Credentials(ctx, target)
	var ng *storage.NoGrantError
	if !errors.As(err, &ng) {
		t.Fatalf("error %v (%T), want a *NoGrantError", err, err)
	}
	if ng.Principal != srv.arn || ng.Target != target {
		t.Errorf("NoGrantError names %q and %v", ng.Principal, ng.Target)
	}
	for _, s := range []string{srv.arn, "s3://data/team/out/*", "READWRITE", "AccessDenied"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
		t.Errorf("the service's AccessDenied is not reachable with errors.As: %v", err)
	}
	if n := srv.identityCalls(); n != 1 || srv.request(0).Header.Get("X-Amz-Account-Id") != "123456789012" {
		t.Errorf("account not taken from GetCallerIdentity (%d calls, header %q)", n, srv.request(0).Header.Get("X-Amz-Account-Id"))
	}

	// With the fallback option the caller's own credentials are used.
	opts.Fallback = true
	src, err = storage.NewAccessGrants(callerConfig(), opts)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := src.Credentials(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.As(gc.Fallback(), &ng) || gc.Grant() != "" {
		t.Fatalf("Fallback %v Grant %q", gc.Fallback(), gc.Grant())
	}
	c, err := gc.Retrieve(ctx)
	if err != nil || c.AccessKeyID != callerKey {
		t.Errorf("fallback Retrieve: %s, %v; want the caller's %s", c.AccessKeyID, err, callerKey)
	}
}

func TestAccessGrantsOtherErrors(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `<ErrorResponse><Error><Code>InvalidRequest</Code><Message>duration too long</Message></Error></ErrorResponse>`)
	}))
	defer srv.Close()
	src, err := storage.NewAccessGrants(callerConfig(), &storage.GrantOptions{AccountID: "123456789012", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Credentials(ctx, storage.GrantTarget{Bucket: "b", Prefix: "p/", Permission: storage.PermRead})
	var ng *storage.NoGrantError
	if err == nil || errors.As(err, &ng) || !strings.Contains(err.Error(), "InvalidRequest") || !strings.Contains(err.Error(), "s3://b/p/*") {
		t.Errorf("error %v: want a plain error naming the target and the service's code", err)
	}

	for _, d := range []time.Duration{10 * time.Minute, 13 * time.Hour, 1000*time.Second + time.Millisecond} {
		if _, err := storage.NewAccessGrants(callerConfig(), &storage.GrantOptions{Duration: d}); err == nil {
			t.Errorf("duration %v accepted", d)
		}
	}
	noRegion := callerConfig()
	noRegion.Region = ""
	if _, err := storage.NewAccessGrants(noRegion, nil); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("no region: %v", err)
	}
	if _, err := storage.NewAccessGrants(aws.Config{Region: "us-east-1"}, nil); err == nil {
		t.Error("a config without credentials was accepted")
	}
	for _, bad := range []storage.GrantTarget{
		{Bucket: "", Prefix: "p/", Permission: storage.PermRead},
		{Bucket: "b", Prefix: "p*", Permission: storage.PermRead},
		{Bucket: "b", Prefix: "p/", Permission: "ALL"},
	} {
		if _, err := src.Credentials(ctx, bad); err == nil {
			t.Errorf("target %+v accepted", bad)
		}
	}
}
