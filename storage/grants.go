package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3control"
	controltypes "github.com/aws/aws-sdk-go-v2/service/s3control/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
)

// GrantOptions configures a GrantSource. A nil *GrantOptions means the
// defaults.
type GrantOptions struct {
	// AccountID is the account of the S3 Access Grants instance. Empty:
	// the caller's account, from STS GetCallerIdentity. Access grants only.
	AccountID string
	// Endpoint replaces the service endpoint. For S3 Access Grants it is
	// S3 Control's, used verbatim (no account ID host prefix). For a grants
	// file it is the server that answers STS AssumeRole: the MinIO server.
	// Empty: the endpoint the aws.Config resolves.
	Endpoint string
	// STSEndpoint replaces the STS endpoint for GetCallerIdentity. Access
	// grants only.
	STSEndpoint string
	// Duration is the lifetime asked for the temporary credentials, whole
	// seconds from 15 minutes to 12 hours; 0 means one hour.
	Duration time.Duration
	// JobName is recorded with each request: as the AuditContext of
	// GetDataAccess (CloudTrail), and as the RoleSessionName of AssumeRole
	// (reduced to the characters STS allows).
	JobName string
	// RefreshMargin is how long before their expiration credentials are
	// replaced: the ExpiryWindow of the aws.CredentialsCache that holds
	// them, which decides by the wall clock. 0: a tenth of Duration, at
	// least one minute and at most five. A margin longer than the lifetime
	// refreshes on every Retrieve.
	RefreshMargin time.Duration
	// Fallback makes Credentials answer a target no grant covers with the
	// caller's own credentials instead of a *NoGrantError; the returned
	// GrantCredentials's Fallback says so.
	Fallback bool
	// RoleARN is the RoleArn sent with AssumeRole (grants file only). MinIO
	// ignores it; the default is a placeholder it accepts.
	RoleARN string
}

const (
	minGrantDuration     = 15 * time.Minute
	maxGrantDuration     = 12 * time.Hour
	defaultGrantDuration = time.Hour
	defaultRoleARN       = "arn:aws:iam::000000000000:role/shardprep"
)

// GrantSource hands out credentials limited to a prefix, from S3 Access
// Grants (NewAccessGrants) or from a grants file and STS AssumeRole
// (NewGrantsFile). Credentials are cached by the grant they matched, so
// targets under one grant share them, each grant's in an
// aws.CredentialsCache that refreshes them RefreshMargin ahead of their
// expiration. A GrantSource is safe for concurrent use.
type GrantSource struct {
	cfg  aws.Config
	opts GrantOptions

	control *s3control.Client // access grants
	sts     *sts.Client       // GetCallerIdentity (access grants), AssumeRole (grants file)
	file    string            // grants file name; "" for access grants
	grants  []Grant

	calls atomic.Int64

	mu        sync.Mutex
	accountID string
	arn       string
	entries   map[string]*grantEntry // by grant location and permission
}

// NewAccessGrants returns a GrantSource that asks S3 Access Grants
// (s3control GetDataAccess, privilege Default) for credentials, signed with
// cfg's credentials in cfg's region. An AccessDenied answer is a
// *NoGrantError.
func NewAccessGrants(cfg aws.Config, opts *GrantOptions) (*GrantSource, error) {
	s, err := newGrantSource(cfg, opts)
	if err != nil {
		return nil, err
	}
	if s.cfg.Region == "" {
		if s.opts.Endpoint == "" {
			return nil, errors.New("storage: S3 Access Grants: no AWS region configured")
		}
		s.cfg.Region = "us-east-1"
	}
	s.control = s3control.NewFromConfig(s.cfg, func(o *s3control.Options) {
		o.ClientLogMode &= safeLogModes
		if s.opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.opts.Endpoint)
		}
		if o.BaseEndpoint != nil {
			o.EndpointResolverV2 = fixedControlEndpoint{base: *o.BaseEndpoint}
		}
	})
	s.sts = sts.NewFromConfig(s.cfg, func(o *sts.Options) {
		o.ClientLogMode &= safeLogModes
		if s.opts.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(s.opts.STSEndpoint)
		}
	})
	return s, nil
}

// safeLogModes are the SDK log modes kept on credential calls: request
// headers and bodies carry tokens, response bodies carry secrets.
const safeLogModes = aws.LogRetries | aws.LogResponse | aws.LogDeprecatedUsage

func newGrantSource(cfg aws.Config, opts *GrantOptions) (*GrantSource, error) {
	s := &GrantSource{cfg: cfg, entries: map[string]*grantEntry{}}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Duration == 0 {
		s.opts.Duration = defaultGrantDuration
	}
	if d := s.opts.Duration; d < minGrantDuration || d > maxGrantDuration || d%time.Second != 0 {
		return nil, fmt.Errorf("storage: credentials duration %v: must be whole seconds from %v to %v", d, minGrantDuration, maxGrantDuration)
	}
	if s.opts.RefreshMargin < 0 {
		return nil, fmt.Errorf("storage: negative credentials refresh margin %v", s.opts.RefreshMargin)
	}
	if s.opts.RefreshMargin == 0 {
		s.opts.RefreshMargin = defaultMargin(s.opts.Duration)
	}
	if s.opts.RoleARN == "" {
		s.opts.RoleARN = defaultRoleARN
	}
	if cfg.Credentials == nil {
		return nil, errors.New("storage: credential source: the AWS config has no credentials to sign with")
	}
	return s, nil
}

// fixedControlEndpoint sends S3 Control requests to base as given. The
// default resolver prefixes the host with the account ID, which a custom
// endpoint (a test server, a proxy) does not answer; the AWS endpoint is
// still resolved for its signing properties.
type fixedControlEndpoint struct{ base string }

func (r fixedControlEndpoint) ResolveEndpoint(ctx context.Context, p s3control.EndpointParameters) (smithyendpoints.Endpoint, error) {
	u, err := url.Parse(r.base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return smithyendpoints.Endpoint{}, fmt.Errorf("storage: S3 Control endpoint %q is not an absolute URL", r.base)
	}
	p.Endpoint = nil
	e, err := s3control.NewDefaultEndpointResolverV2().ResolveEndpoint(ctx, p)
	if err != nil {
		return e, err
	}
	e.URI = *u
	return e, nil
}

// Calls is the number of GetDataAccess or AssumeRole requests made so far,
// failed ones included.
func (s *GrantSource) Calls() int64 { return s.calls.Load() }

// String names the kind of source, nothing secret.
func (s *GrantSource) String() string {
	if s.file != "" {
		return "grants file " + s.file
	}
	return "S3 Access Grants"
}

// GoString is String, so %#v shows no secret.
func (s *GrantSource) GoString() string { return "storage.GrantSource{" + s.String() + "}" }

// LogValue is String for log/slog.
func (s *GrantSource) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Credentials returns a credentials provider for t: temporary credentials
// of the grant that covers t, fetched now so that a missing grant or a
// refused request is reported here. When no grant covers t the error is a
// *NoGrantError, or, with the Fallback option, the result uses the
// caller's own credentials and its Fallback method returns that error.
func (s *GrantSource) Credentials(ctx context.Context, t GrantTarget) (*GrantCredentials, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	var e *grantEntry
	var err error
	if s.file != "" {
		e, err = s.fileEntry(ctx, t)
	} else {
		e, err = s.accessGrantsEntry(ctx, t)
	}
	if ng := (*NoGrantError)(nil); errors.As(err, &ng) && s.opts.Fallback {
		return &GrantCredentials{target: t, caller: s.cfg.Credentials, fallback: ng}, nil
	}
	if err != nil {
		return nil, err
	}
	return &GrantCredentials{target: t, entry: e}, nil
}

// entry returns the cache entry for a grant, creating it with p when there
// is none, and makes sure it holds credentials.
func (s *GrantSource) entry(ctx context.Context, grant string, perm Permission, p *grantProvider) (*grantEntry, error) {
	key := grant + " " + string(perm)
	s.mu.Lock()
	e := s.entries[key]
	if e == nil {
		e = newGrantEntry(grant, perm, s.opts.RefreshMargin, p)
		s.entries[key] = e
	}
	s.mu.Unlock()
	if _, err := e.retrieve(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// cachedEntry returns the most specific cached grant that covers t with a
// permission that satisfies it, or nil.
func (s *GrantSource) cachedEntry(t GrantTarget) *grantEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *grantEntry
	bestLen := -1
	for _, e := range s.entries {
		if n, ok := locationCovers(e.grant, t); ok && e.perm.satisfies(t.Permission) && n > bestLen {
			best, bestLen = e, n
		}
	}
	return best
}

func (s *GrantSource) accessGrantsEntry(ctx context.Context, t GrantTarget) (*grantEntry, error) {
	if e := s.cachedEntry(t); e != nil {
		return e, nil
	}
	account, err := s.account(ctx)
	if err != nil {
		return nil, err
	}
	creds, grant, err := s.getDataAccess(ctx, account, t)
	if err != nil {
		return nil, err
	}
	// The credentials just fetched seed the grant's cache; later ones are
	// asked for this target, which the grant covers.
	return s.entry(ctx, grant, t.Permission, &grantProvider{seed: &creds, fetch: func(ctx context.Context) (aws.Credentials, error) {
		c, _, err := s.getDataAccess(ctx, account, t)
		return c, err
	}})
}

// account returns the Access Grants account: the option, or the caller's.
func (s *GrantSource) account(ctx context.Context) (string, error) {
	if s.opts.AccountID != "" {
		return s.opts.AccountID, nil
	}
	s.mu.Lock()
	id := s.accountID
	s.mu.Unlock()
	if id != "" {
		return id, nil
	}
	out, err := s.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("storage: S3 Access Grants: finding the caller's account (STS GetCallerIdentity): %w; pass --account-id, or check the network and --region", &sdkError{err})
	}
	if aws.ToString(out.Account) == "" {
		return "", errors.New("storage: S3 Access Grants: STS GetCallerIdentity returned no account")
	}
	s.mu.Lock()
	s.accountID, s.arn = aws.ToString(out.Account), aws.ToString(out.Arn)
	s.mu.Unlock()
	return aws.ToString(out.Account), nil
}

// principal names the caller for errors: its ARN when known, otherwise its
// access key ID.
func (s *GrantSource) principal(ctx context.Context) string {
	s.mu.Lock()
	arn := s.arn
	s.mu.Unlock()
	if arn != "" {
		return arn
	}
	c, err := s.cfg.Credentials.Retrieve(ctx)
	if err != nil || c.AccessKeyID == "" {
		return "the caller (unknown access key)"
	}
	return "access key " + c.AccessKeyID
}

// getDataAccess asks S3 Access Grants for credentials for t. It returns the
// credentials (Expires is their real expiration) and the matched grant.
func (s *GrantSource) getDataAccess(ctx context.Context, account string, t GrantTarget) (aws.Credentials, string, error) {
	in := &s3control.GetDataAccessInput{
		AccountId:       aws.String(account),
		Target:          aws.String(t.Location()),
		Permission:      controltypes.Permission(t.Permission),
		DurationSeconds: aws.Int32(int32(s.opts.Duration / time.Second)),
		Privilege:       controltypes.PrivilegeDefault,
	}
	if s.opts.JobName != "" {
		in.AuditContext = aws.String(s.opts.JobName)
	}
	s.calls.Add(1)
	out, err := s.control.GetDataAccess(ctx, in)
	if err != nil {
		if api := smithy.APIError(nil); errors.As(err, &api) && api.ErrorCode() == "AccessDenied" {
			return aws.Credentials{}, "", &NoGrantError{Principal: s.principal(ctx), Target: t, Err: err}
		}
		return aws.Credentials{}, "", fmt.Errorf("storage: S3 Access Grants for %s: %w", t, &sdkError{err})
	}
	c := out.Credentials
	if c == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" {
		return aws.Credentials{}, "", fmt.Errorf("storage: S3 Access Grants for %s: the response carries no credentials", t)
	}
	exp := aws.ToTime(c.Expiration)
	if c.Expiration == nil {
		exp = time.Now().Add(s.opts.Duration)
	}
	grant := aws.ToString(out.MatchedGrantTarget)
	if grant == "" {
		grant = t.Location()
	}
	return aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "S3 Access Grants " + grant,
		CanExpire:       true,
		Expires:         exp,
		AccountID:       account,
	}, grant, nil
}
