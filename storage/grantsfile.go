package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Grant is one entry of a grants file, the stand-in for S3 Access Grants on
// servers that have none (MinIO). A grants file is a JSON array of them:
//
//	[{"grantee": "usera", "location": "s3://shardprep/UserA/*", "permission": "READWRITE"}]
//
// Grantee is the access key ID of the user the grant is for. Location is
// "s3://" and a literal prefix of "bucket/key" ending in '*' ("s3://b/p/*",
// "s3://b/*", "s3://*"); it covers every key that starts with that prefix.
// Permission is READ, WRITE or READWRITE.
type Grant struct {
	Grantee    string     `json:"grantee"`
	Location   string     `json:"location"`
	Permission Permission `json:"permission"`
}

// ReadGrantsFile reads and checks the grants file at path.
func ReadGrantsFile(path string) ([]Grant, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("storage: grants file: %w", err)
	}
	g, err := ParseGrants(data)
	if err != nil {
		return nil, fmt.Errorf("storage: grants file %s: %w", path, err)
	}
	return g, nil
}

// ParseGrants decodes and checks a grants file's content. Unknown fields,
// a location that is not "s3://...*" and an unknown permission are errors
// naming the grant (counted from 1). A key given twice in one object, in
// any spelling JSON field matching takes for the same ("grantee" and
// "Grantee"), is an error naming its line and both spellings: decoding
// would silently keep the last.
func ParseGrants(data []byte) ([]Grant, error) {
	if err := checkDuplicateKeys(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var grants []Grant
	if err := dec.Decode(&grants); err != nil {
		if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
			return nil, fmt.Errorf("line %d: %w", lineAt(data, se.Offset), err)
		}
		return nil, fmt.Errorf("not a JSON list of grants: %w", err)
	}
	if dec.More() {
		return nil, errors.New("data after the JSON list of grants")
	}
	for i, g := range grants {
		if err := g.validate(); err != nil {
			return nil, fmt.Errorf("grant %d: %w", i+1, err)
		}
	}
	return grants, nil
}

// lineAt is the line (from 1) of byte offset off in data.
func lineAt(data []byte, off int64) int {
	return 1 + bytes.Count(data[:min(max(off, 0), int64(len(data)))], []byte("\n"))
}

// checkDuplicateKeys refuses a JSON object holding one key twice, compared
// case-insensitively as encoding/json matches field names. Malformed JSON
// passes: decoding reports it.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	// One frame per open object or array; an object's frame holds the keys
	// seen so far and whether a key comes next.
	type frame struct {
		object  bool
		wantKey bool
		keys    []string
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or malformed JSON
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if key, ok := tok.(string); ok && top != nil && top.object && top.wantKey {
			for _, k := range top.keys {
				if strings.EqualFold(k, key) {
					return fmt.Errorf("line %d: key %q given twice in one object (also as %q)", lineAt(data, dec.InputOffset()), key, k)
				}
			}
			top.keys, top.wantKey = append(top.keys, key), false
			continue
		}
		if top != nil && top.object {
			top.wantKey = true // a value ends here or, for '{' and '[', begins
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, &frame{object: tok == json.Delim('{'), wantKey: true})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

func (g Grant) validate() error {
	rest, ok := strings.CutPrefix(g.Location, "s3://")
	switch {
	case g.Grantee == "":
		return errors.New("no grantee")
	case !ok || !strings.HasSuffix(rest, "*") || strings.Count(rest, "*") != 1:
		return fmt.Errorf("location %q: want s3://bucket/prefix* (one '*', at the end)", g.Location)
	case strings.HasPrefix(rest, "/"):
		return fmt.Errorf("location %q: no bucket name", g.Location)
	case !g.Permission.valid():
		return fmt.Errorf("permission %q: want READ, WRITE or READWRITE", g.Permission)
	}
	return nil
}

// matchGrant picks the caller's grant for t: of the grants to accessKey
// whose location covers t and whose permission satisfies t's, the one with
// the longest location; between equal locations, the one whose permission
// is exactly t's.
func matchGrant(grants []Grant, accessKey string, t GrantTarget) (Grant, bool) {
	var best Grant
	bestLen, found := -1, false
	for _, g := range grants {
		if g.Grantee != accessKey || !g.Permission.satisfies(t.Permission) {
			continue
		}
		n, ok := locationCovers(g.Location, t)
		if !ok {
			continue
		}
		if n > bestLen || (n == bestLen && g.Permission == t.Permission) {
			best, bestLen, found = g, n, true
		}
	}
	return best, found
}

// NewGrantsFile returns a GrantSource for servers without S3 Access Grants.
// For a target it finds the caller's grant in grants (the caller is cfg's
// credentials' access key ID) and mints temporary credentials with STS
// AssumeRole at opts.Endpoint, signed with the caller's own keys, with an
// inline session policy limited to the grant's location and permission.
// The server grants the intersection of that policy and the caller's own,
// so a grant cannot give more than the caller already has.
func NewGrantsFile(cfg aws.Config, name string, grants []Grant, opts *GrantOptions) (*GrantSource, error) {
	for i, g := range grants {
		if err := g.validate(); err != nil {
			return nil, fmt.Errorf("storage: grants file %s: grant %d: %w", name, i+1, err)
		}
	}
	s, err := newGrantSource(cfg, opts)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = "(unnamed)"
	}
	s.file, s.grants = name, grants
	if s.cfg.Region == "" {
		s.cfg.Region = "us-east-1"
	}
	s.sts = sts.NewFromConfig(s.cfg, func(o *sts.Options) {
		o.ClientLogMode &= safeLogModes
		if s.opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.opts.Endpoint)
		}
	})
	return s, nil
}

func (s *GrantSource) fileEntry(ctx context.Context, t GrantTarget) (*grantEntry, error) {
	caller, err := s.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: the caller's credentials: %w", s, err)
	}
	g, ok := matchGrant(s.grants, caller.AccessKeyID, t)
	if !ok {
		return nil, &NoGrantError{Principal: "access key " + caller.AccessKeyID, Target: t}
	}
	return s.entry(ctx, g.Location, g.Permission, &grantProvider{fetch: func(ctx context.Context) (aws.Credentials, error) {
		return s.assumeRole(ctx, g)
	}})
}

// assumeRole mints credentials for grant g.
func (s *GrantSource) assumeRole(ctx context.Context, g Grant) (aws.Credentials, error) {
	policy, err := sessionPolicy(g)
	if err != nil {
		return aws.Credentials{}, err
	}
	s.calls.Add(1)
	out, err := s.sts.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(s.opts.RoleARN),
		RoleSessionName: aws.String(sessionName(s.opts.JobName)),
		DurationSeconds: aws.Int32(int32(s.opts.Duration / time.Second)),
		Policy:          aws.String(policy),
	})
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("storage: STS AssumeRole for grant %s (%s) of %s: %w", g.Location, g.Permission, s, &sdkError{err})
	}
	c := out.Credentials
	if c == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" {
		return aws.Credentials{}, fmt.Errorf("storage: STS AssumeRole for grant %s: the response carries no credentials", g.Location)
	}
	exp := aws.ToTime(c.Expiration)
	if c.Expiration == nil {
		exp = time.Now().Add(s.opts.Duration)
	}
	return aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "AssumeRole for grant " + g.Location,
		CanExpire:       true,
		Expires:         exp,
	}, nil
}

// sessionName reduces a job name to what STS allows in RoleSessionName:
// 2 to 64 of [A-Za-z0-9+=,.@_-].
func sessionName(job string) string {
	b := []byte(job)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("+=,.@_-", c) >= 0) {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) < 2 {
		return "shardprep"
	}
	return string(b)
}

type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// sessionPolicy is the inline policy of credentials for grant g: objects
// under its location, listing restricted to it. READ allows GetObject;
// WRITE allows PutObject, DeleteObject, AbortMultipartUpload and
// ListMultipartUploadParts; READWRITE both. Every permission may list.
func sessionPolicy(g Grant) (string, error) {
	pattern := strings.TrimPrefix(g.Location, "s3://") // "bucket/prefix*"
	var actions []string
	if g.Permission.satisfies(PermRead) {
		actions = append(actions, "s3:GetObject")
	}
	if g.Permission.satisfies(PermWrite) {
		actions = append(actions, "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
	}
	list := policyStatement{Effect: "Allow", Action: []string{"s3:ListBucket"}}
	if bucket, prefix, ok := strings.Cut(pattern, "/"); ok {
		list.Resource = []string{"arn:aws:s3:::" + bucket}
		if prefix != "*" {
			list.Condition = map[string]map[string][]string{"StringLike": {"s3:prefix": {prefix}}}
		}
	} else {
		list.Resource = []string{"arn:aws:s3:::" + pattern} // a bucket-name wildcard: whole buckets
	}
	doc := policyDocument{
		Version: "2012-10-17",
		Statement: []policyStatement{
			{Effect: "Allow", Action: actions, Resource: []string{"arn:aws:s3:::" + pattern}},
			list,
		},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("storage: session policy for grant %s: %w", g.Location, err)
	}
	return string(b), nil
}
