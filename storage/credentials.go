package storage

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Permission is the access a job asks for on a prefix, spelled as S3 Access
// Grants spells it.
type Permission string

const (
	PermRead      Permission = "READ"
	PermWrite     Permission = "WRITE"
	PermReadWrite Permission = "READWRITE"
)

// valid reports whether p is one of the three permissions.
func (p Permission) valid() bool {
	return p == PermRead || p == PermWrite || p == PermReadWrite
}

// satisfies reports whether a grant of permission p allows access want:
// READWRITE satisfies all three, READ and WRITE only themselves.
func (p Permission) satisfies(want Permission) bool {
	return p == want || p == PermReadWrite
}

// GrantTarget is what a job asks credentials for: a prefix of a bucket and
// the access it needs there. An empty Prefix means the whole bucket.
type GrantTarget struct {
	Bucket     string
	Prefix     string
	Permission Permission
}

// Location is the target in S3 Access Grants form: "s3://bucket/prefix*"
// ("s3://bucket/*" for the whole bucket).
func (t GrantTarget) Location() string {
	if t.Prefix == "" {
		return "s3://" + t.Bucket + "/*"
	}
	return "s3://" + t.Bucket + "/" + t.Prefix + "*"
}

// String is the location and the permission: "s3://b/p* (READ)".
func (t GrantTarget) String() string {
	return t.Location() + " (" + string(t.Permission) + ")"
}

func (t GrantTarget) validate() error {
	switch {
	case t.Bucket == "" || strings.ContainsAny(t.Bucket, "/*"):
		return fmt.Errorf("storage: credentials target %s: invalid bucket name %q", t, t.Bucket)
	case strings.Contains(t.Prefix, "*"):
		return fmt.Errorf("storage: credentials target %s: prefix may not contain '*'", t)
	case !t.Permission.valid():
		return fmt.Errorf("storage: credentials target %s: permission %q is not READ, WRITE or READWRITE", t, t.Permission)
	}
	return nil
}

// path is the target as "bucket/prefix", the string grant locations are
// matched against.
func (t GrantTarget) path() string { return t.Bucket + "/" + t.Prefix }

// locationCovers reports whether grant location loc ("s3://bucket/prefix*",
// "s3://*") covers target t, and how specific it is (the length of its
// literal part; longer wins). A location without a trailing '*' covers only
// the identical path.
func locationCovers(loc string, t GrantTarget) (int, bool) {
	rest, ok := strings.CutPrefix(loc, "s3://")
	if !ok {
		return 0, false
	}
	if lit, wild := strings.CutSuffix(rest, "*"); wild {
		return len(lit), strings.HasPrefix(t.path(), lit)
	}
	return len(rest) + 1, rest == t.path() || rest+"/" == t.path()
}

// NoGrantError reports that no grant gives Principal the access Target asks
// for. Err, when set, is the service's answer (an AccessDenied
// smithy.APIError for S3 Access Grants).
type NoGrantError struct {
	Principal string // the caller: its IAM ARN, or its access key ID
	Target    GrantTarget
	Err       error
}

func (e *NoGrantError) Error() string {
	msg := fmt.Sprintf("storage: no access grant for %s on %s with permission %s",
		e.Principal, e.Target.Location(), e.Target.Permission)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *NoGrantError) Unwrap() error { return e.Err }

// GrantCredentials is an aws.CredentialsProvider for one GrantTarget, as
// handed out by GrantSource.Credentials. Give it to the s3.Client that
// serves the target.
//
// Retrieve returns temporary credentials scoped to the matched grant, or,
// when the source fell back, the caller's own. Their Expires is the time
// the source means to refresh them (the real expiration minus the refresh
// margin), so the SDK's credential cache asks again in time. Its String,
// GoString and LogValue show the target and the grant, never a secret.
type GrantCredentials struct {
	target   GrantTarget
	entry    *grantEntry             // nil when falling back
	caller   aws.CredentialsProvider // used when entry is nil
	fallback error                   // why the caller's own credentials are used
}

// Retrieve returns credentials valid for the target, refreshing them when
// they are within the refresh margin of their expiration. Concurrent calls
// share one refresh, which a caller giving up does not abandon.
func (c *GrantCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if c.entry == nil {
		return c.caller.Retrieve(ctx)
	}
	return c.entry.retrieve(ctx)
}

// Target is the target these credentials were asked for.
func (c *GrantCredentials) Target() GrantTarget { return c.target }

// Grant is the location of the grant that matched, "" when falling back.
func (c *GrantCredentials) Grant() string {
	if c.entry == nil {
		return ""
	}
	return c.entry.grant
}

// Fallback is nil when a grant matched. Otherwise the caller's own
// credentials are in use and Fallback is the *NoGrantError that caused it.
func (c *GrantCredentials) Fallback() error { return c.fallback }

// String describes the credentials without secrets.
func (c *GrantCredentials) String() string {
	if c.entry == nil {
		return c.target.String() + " via the caller's own credentials (no grant)"
	}
	return c.target.String() + " via grant " + c.entry.String()
}

// GoString is String, so %#v shows no secret either.
func (c *GrantCredentials) GoString() string { return "storage.GrantCredentials{" + c.String() + "}" }

// LogValue describes the credentials for log/slog without secrets.
func (c *GrantCredentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("target", c.target.Location()),
		slog.String("permission", string(c.target.Permission)),
		slog.String("grant", c.Grant()),
		slog.Bool("fallback", c.entry == nil),
	)
}

// grantEntry holds the temporary credentials of one grant in an
// aws.CredentialsCache, which owns their expiry (by the wall clock) and
// lets concurrent callers share one refresh. Its ExpiryWindow is the
// refresh margin, without jitter, so Expires is exactly the refresh time;
// a margin longer than the lifetime makes every Retrieve a refresh.
type grantEntry struct {
	grant string     // grant location
	perm  Permission // permission the credentials carry
	cache *aws.CredentialsCache
}

func newGrantEntry(grant string, perm Permission, margin time.Duration, p *grantProvider) *grantEntry {
	cache := aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = margin
		o.ExpiryWindowJitterFrac = 0
	})
	return &grantEntry{grant: grant, perm: perm, cache: cache}
}

func (e *grantEntry) retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := e.cache.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("storage: credentials for grant %s: %w", e, err)
	}
	return c, nil
}

// String names the grant and its permission, never the credentials.
func (e *grantEntry) String() string { return e.grant + " (" + string(e.perm) + ")" }

// GoString is String, so %#v shows no secret.
func (e *grantEntry) GoString() string { return "storage.grantEntry{" + e.String() + "}" }

// LogValue is String for log/slog.
func (e *grantEntry) LogValue() slog.Value { return slog.StringValue(e.String()) }

// grantProvider fetches a grant's credentials for its cache. A seed, when
// set, is what its first Retrieve returns: the credentials of the request
// that found the grant.
type grantProvider struct {
	fetch func(ctx context.Context) (aws.Credentials, error)

	mu   sync.Mutex
	seed *aws.Credentials
}

func (p *grantProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p.mu.Lock()
	seed := p.seed
	p.seed = nil
	p.mu.Unlock()
	if seed != nil {
		return *seed, nil
	}
	return p.fetch(ctx)
}

// defaultMargin is the refresh margin used when none is configured: a tenth
// of the credentials' lifetime, at least one minute and at most five.
func defaultMargin(lifetime time.Duration) time.Duration {
	return min(max(lifetime/10, time.Minute), 5*time.Minute)
}
