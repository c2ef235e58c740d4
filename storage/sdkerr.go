package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"

	"github.com/aws/smithy-go"
)

// sdkError is an AWS SDK error said in one line: that its endpoint could
// not be reached, or the service's error code and message, without the
// SDK's operation, attempt and request details. errors.Is and errors.As
// see the SDK's error.
type sdkError struct{ err error }

func (e *sdkError) Error() string { return sdkCause(e.err) }
func (e *sdkError) Unwrap() error { return e.err }

// sdkCause is err in one short line (see sdkError).
func sdkCause(err error) string {
	if ep, reason, ok := unreachable(err); ok {
		return fmt.Sprintf("cannot reach %s (%s)", ep, reason)
	}
	for _, ce := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ce) {
			return ce.Error()
		}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if msg := api.ErrorMessage(); msg != "" {
			return api.ErrorCode() + ": " + msg
		}
		return api.ErrorCode()
	}
	return err.Error()
}

// unreachable reports whether err is a failure to connect to an endpoint
// (refused, no such host, a timeout while dialling), and which endpoint
// (scheme://host) and why.
func unreachable(err error) (endpoint, reason string, ok bool) {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &dns):
		reason = "no such host"
		if !dns.IsNotFound {
			reason = "DNS lookup failed: " + dns.Err
		}
	case errors.As(err, &op) && op.Op == "dial":
		switch {
		case errors.Is(op.Err, syscall.ECONNREFUSED):
			reason = "connection refused"
		case op.Timeout():
			reason = "connection timed out"
		default:
			reason = op.Err.Error()
		}
	default:
		return "", "", false
	}
	endpoint = "the endpoint"
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			endpoint = u.Scheme + "://" + u.Host
		}
	}
	return endpoint, reason, true
}

// NoCredentialsError is the error of an S3 or grants request made
// without any usable AWS credentials: none of the places the SDK looks in
// gave some.
type NoCredentialsError struct{ Err error }

func (e *NoCredentialsError) Error() string {
	return "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE for a profile in " +
		"~/.aws/credentials or ~/.aws/config (also looked up: a web identity token, the ECS container and EC2 instance roles)"
}

func (e *NoCredentialsError) Unwrap() error { return e.Err }
