package sagemaker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/shardprep/shardprep/container"
)

// service is one AWS API that speaks the JSON 1.1 protocol: every call is
// a POST of a JSON document to the endpoint, the operation named by the
// X-Amz-Target header, signed with Signature Version 4.
type service struct {
	title    string // in errors: "SageMaker", "CloudWatch Logs"
	sdkID    string // the SDK's service ID, for endpoints from the shared config
	signing  string // SigV4 signing name
	target   string // X-Amz-Target prefix
	hostname string // the endpoint's host in region REGION
	envVar   string // the variable that sets the endpoint
}

var (
	sageMakerAPI = service{title: "SageMaker", sdkID: "SageMaker", signing: "sagemaker", target: "SageMaker",
		hostname: "api.sagemaker.REGION", envVar: "AWS_ENDPOINT_URL_SAGEMAKER"}
	logsAPI = service{title: "CloudWatch Logs", sdkID: "CloudWatch Logs", signing: "logs", target: "Logs_20140328",
		hostname: "logs.REGION", envVar: "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"}
)

// jsonClient calls the operations of one service. Like the SDK's
// standard retryer, it retries throttling, timeouts, HTTP 429 and 5xx
// answers and failed connections, up to attempts in all, waiting 50ms,
// 100ms, ... between them, and a throttled call 1s, 2s, ... more.
type jsonClient struct {
	svc      service
	endpoint string
	region   string
	creds    aws.CredentialsProvider
	http     aws.HTTPClient
	signer   *v4.Signer
	attempts int
	backoff  container.Backoff
}

// newClient is a client of svc with cfg's region, credentials, HTTP client
// and retry limit, sending to endpoint, else to the endpoint the shared
// config or AWS_ENDPOINT_URL sets for svc, else to AWS's.
func newClient(cfg aws.Config, svc service, endpoint string) *jsonClient {
	if endpoint == "" {
		endpoint = configuredEndpoint(cfg, svc.sdkID)
	}
	if endpoint == "" {
		endpoint = "https://" + strings.ReplaceAll(svc.hostname, "REGION", cfg.Region) + dnsSuffix(cfg.Region)
	}
	c := &jsonClient{svc: svc, endpoint: endpoint, region: cfg.Region, creds: cfg.Credentials, http: cfg.HTTPClient,
		signer: v4.NewSigner(), attempts: cfg.RetryMaxAttempts,
		backoff: container.Backoff{First: 50 * time.Millisecond, Max: retry.DefaultMaxBackoff, Timeout: 2 * time.Minute}}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.attempts <= 0 {
		c.attempts = retry.DefaultMaxAttempts
	}
	return c
}

// configuredEndpoint is the endpoint that cfg's sources (the environment,
// the profile's services section, its endpoint_url) set for the service
// of the SDK ID sdkID; "" for none.
func configuredEndpoint(cfg aws.Config, sdkID string) string {
	type provider interface {
		GetServiceBaseEndpoint(ctx context.Context, sdkID string) (string, bool, error)
	}
	for _, src := range cfg.ConfigSources {
		if p, ok := src.(provider); ok {
			if ep, found, err := p.GetServiceBaseEndpoint(context.Background(), sdkID); found && err == nil && ep != "" {
				return ep
			}
		}
	}
	return aws.ToString(cfg.BaseEndpoint)
}

// dnsSuffix is the domain of AWS's endpoints in region.
func dnsSuffix(region string) string {
	if strings.HasPrefix(region, "cn-") {
		return ".amazonaws.com.cn"
	}
	return ".amazonaws.com"
}

// throttleDelay is the first wait after a throttled call, on top of the
// backoff.
const throttleDelay = time.Second

// modeled are the error codes the API models declare for the operations
// shardprep calls; the SDK says "api error" before the others.
var modeled = map[string]bool{"ResourceInUse": true, "ResourceLimitExceeded": true, "ResourceNotFound": true,
	"InvalidParameterException": true, "ResourceNotFoundException": true, "ServiceUnavailableException": true}

// apiError is an error answer of an AWS API.
type apiError struct {
	status    int
	requestID string
	code      string
	message   string
}

func (e *apiError) Error() string {
	api := "api error "
	if modeled[e.code] {
		api = ""
	}
	return fmt.Sprintf("https response error StatusCode: %d, RequestID: %s, %s%s: %s", e.status, e.requestID, api, e.code, e.message)
}

// retryable says whether the SDK's standard retryer would try again.
func (e *apiError) retryable() bool {
	_, transient := retry.DefaultRetryableErrorCodes[e.code]
	_, status := retry.DefaultRetryableHTTPStatusCodes[e.status]
	return e.throttle() || transient || status || e.status == http.StatusTooManyRequests
}

// throttle says whether e is one of the SDK's throttling errors.
func (e *apiError) throttle() bool {
	_, ok := retry.DefaultThrottleErrorCodes[e.code]
	return ok
}

// call sends the operation op with the request in and decodes its answer
// into out. Its error is one line, "operation error SERVICE: OP, ...", and
// wraps an *apiError when the service answered with one.
func (c *jsonClient) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("operation error %s: %s, serializing the request: %w", c.svc.title, op, err)
	}
	var answer []byte
	attempt, pause := 0, time.Duration(0)
	err = container.Retry(ctx, c.backoff, func() (bool, error) {
		if !sleep(ctx, pause) {
			return false, err // Retry reports the stop
		}
		attempt++
		var again bool
		answer, again, err = c.send(ctx, body, op)
		if ae := (*apiError)(nil); errors.As(err, &ae) && ae.throttle() {
			pause = throttleDelay << (attempt - 1)
		}
		if err != nil && again && attempt >= c.attempts {
			return true, fmt.Errorf("exceeded maximum number of attempts, %d, %w", c.attempts, err)
		}
		return !again, err
	})
	if err != nil {
		return fmt.Errorf("operation error %s: %s, %w", c.svc.title, op, err)
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("operation error %s: %s, decoding the answer: %w", c.svc.title, op, err)
	}
	return nil
}

// sleep waits d, or less if ctx ends first; it says whether ctx is still
// going.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// send makes one attempt at op and returns the body of a successful
// answer, or an error and whether another attempt may succeed.
func (c *jsonClient) send(ctx context.Context, body []byte, op string) (answer []byte, again bool, err error) {
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("failed to retrieve credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	if req.URL.Path == "" {
		req.URL.Path = "/"
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", c.svc.target+"."+op)
	req.Header.Set("User-Agent", "shardprep")
	sum := sha256.Sum256(body)
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), c.svc.signing, c.region, time.Now().UTC()); err != nil {
		return nil, false, fmt.Errorf("signing the request: %w", err)
	}
	resp, err := c.http.Do(req)
	if err == nil {
		answer, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err != nil {
		return nil, ctx.Err() == nil, fmt.Errorf("https response error StatusCode: 0, RequestID: , request send failed, %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return answer, false, nil
	}
	e := parseError(resp, answer)
	return nil, e.retryable(), e
}

// parseError reads the error code and message of an error answer as the
// SDK does: the code from the X-Amzn-ErrorType header, else the body's
// "code" or "__type", without a namespace before '#' or details after ':'.
func parseError(resp *http.Response, body []byte) *apiError {
	var doc struct {
		Code    string `json:"code"`
		Type    string `json:"__type"`
		Message string `json:"message"`
		Upper   string `json:"Message"`
	}
	_ = json.Unmarshal(body, &doc) // a body that is not JSON leaves the code to the status
	code := resp.Header.Get("X-Amzn-ErrorType")
	for _, c := range []string{doc.Code, doc.Type} {
		if code == "" {
			code = c
		}
	}
	code, _, _ = strings.Cut(code, ":")
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if code == "" {
		code = "UnknownError"
	}
	msg := doc.Message
	if msg == "" {
		msg = doc.Upper
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &apiError{status: resp.StatusCode, requestID: resp.Header.Get("X-Amzn-RequestId"), code: code,
		message: strings.Join(strings.Fields(msg), " ")}
}

// isCode says whether err is an answer of the service with the error code
// code.
func isCode(err error, code string) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.code == code
}
