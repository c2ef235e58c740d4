package pipeline

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The coordinator protocol over HTTP (version 1).
//
// Four endpoints take and return JSON: POST /v1/join (JoinRequest ->
// JoinResponse), /v1/lease (LeaseRequest -> LeaseResponse; the call may
// wait up to WaitMS for work), /v1/report (ReportRequest ->
// ReportResponse) and /v1/heartbeat (HeartbeatRequest ->
// HeartbeatResponse). A worker joins once, then leases tasks, heartbeats
// every JoinResponse.HeartbeatMillis while it runs them, and reports each
// one. A worker silent for LeaseMillis loses its tasks to others. When a
// response's State is "committed" the worker exits 0; when it is "failed"
// the worker stops its tasks and exits non-zero.
//
// The name in JoinResponse.Worker is the worker's name in every later
// request (a name already held by another worker process gets "#N").
// Transform leases carry the model and the first line numbers of the
// splits until the worker says it has them (LeaseRequest.HaveModel).
//
// Every request carries the header
//
//	Shardprep-Auth: t=<unix seconds>,sig=<hex HMAC-SHA256(secret, t "\n" path "\n" body)>
//
// made with the cluster secret, which itself never crosses the network.
// The coordinator refuses (401) a missing or wrong signature, or a time
// more than five minutes off; it compares signatures in constant time.
// A protocol version mismatch is refused at join (409), a malformed
// request with 400; a worker gives up on any of these at once, while it
// retries other failures for its coordinator timeout. No credentials
// cross this protocol: each worker opens storage with its own.

// AuthHeader carries a request's signature.
const AuthHeader = "Shardprep-Auth"

const maxClockSkew = 5 * time.Minute

// maxBody bounds a request or response body.
const maxBody = 64 << 20

func sign(secret []byte, ts int64, path string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%d\n%s\n", ts, path)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func verify(secret []byte, header, path string, body []byte, now time.Time) error {
	var ts int64
	var sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts, _ = strconv.ParseInt(v, 10, 64)
		case "sig":
			sig = v
		}
	}
	if ts == 0 || sig == "" {
		return errors.New("request is not signed")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxClockSkew || d < -maxClockSkew {
		return errors.New("request signature is too old or from the future")
	}
	want := sign(secret, ts, path, body)
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return errors.New("wrong cluster secret")
	}
	return nil
}

// NewHandler serves the coordinator protocol for c, refusing requests not
// signed with secret.
func NewHandler(c *Coordinator, secret []byte, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	handle := func(path string, call func(ctx context.Context, body []byte) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
			if err != nil {
				http.Error(w, "reading request: "+err.Error(), http.StatusBadRequest)
				return
			}
			if err := verify(secret, r.Header.Get(AuthHeader), path, body, time.Now()); err != nil {
				log.Warn("refused a request", "remote", r.RemoteAddr, "path", path, "reason", err.Error())
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			resp, err := call(r.Context(), body)
			if err != nil {
				code := http.StatusInternalServerError
				var pe *ProtocolError
				var se *json.SyntaxError
				var te *json.UnmarshalTypeError
				switch {
				case errors.As(err, &pe) && path == "/v1/join":
					code = http.StatusConflict
				case errors.As(err, &pe), errors.As(err, &se), errors.As(err, &te):
					code = http.StatusBadRequest
				}
				if r.Context().Err() == nil {
					http.Error(w, err.Error(), code)
				}
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(resp)
		})
	}
	// The job a worker gets at join is the same for all (its size grows
	// with the splits): encode it once.
	var jobOnce sync.Once
	var jobJSON json.RawMessage
	var jobErr error
	handle("/v1/join", func(ctx context.Context, body []byte) (any, error) {
		var req JoinRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		resp, err := c.Join(ctx, &req)
		if err != nil {
			return nil, err
		}
		jobOnce.Do(func() { jobJSON, jobErr = json.Marshal(resp.Job) })
		if jobErr != nil {
			return nil, jobErr
		}
		return &joinWire{JoinResponse: resp, Job: jobJSON}, nil
	})
	handle("/v1/lease", func(ctx context.Context, body []byte) (any, error) {
		var req LeaseRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		if req.WaitMS > 20000 {
			req.WaitMS = 20000
		}
		return c.Lease(ctx, &req)
	})
	handle("/v1/report", func(ctx context.Context, body []byte) (any, error) {
		var req ReportRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		return c.Report(ctx, &req)
	})
	handle("/v1/heartbeat", func(ctx context.Context, body []byte) (any, error) {
		var req HeartbeatRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		return c.Heartbeat(ctx, &req)
	})
	return mux
}

// joinWire is a JoinResponse with its job already encoded.
type joinWire struct {
	*JoinResponse
	Job json.RawMessage `json:"job"` // shadows JoinResponse.Job
}

// Client is a Transport to a coordinator over HTTP.
type Client struct {
	base   string
	secret []byte
	hc     *http.Client
}

// NewClient returns a client for the coordinator at base
// ("http://host:port").
func NewClient(base string, secret []byte, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{base: strings.TrimSuffix(base, "/"), secret: secret, hc: hc}
}

func (cl *Client) call(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.base+path, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{err}
	}
	ts := time.Now().Unix()
	hr.Header.Set(AuthHeader, "t="+strconv.FormatInt(ts, 10)+",sig="+sign(cl.secret, ts, path, body))
	hr.Header.Set("Content-Type", "application/json")
	r, err := cl.hc.Do(hr)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return err
	}
	switch {
	case r.StatusCode == http.StatusUnauthorized || r.StatusCode == http.StatusConflict || r.StatusCode == http.StatusBadRequest:
		return &PermanentError{fmt.Errorf("coordinator %s refused %s: %s", cl.base, path, strings.TrimSpace(string(data)))}
	case r.StatusCode != http.StatusOK:
		return fmt.Errorf("coordinator %s: %s: %s", cl.base, r.Status, strings.TrimSpace(string(data)))
	}
	return json.Unmarshal(data, resp)
}

func (cl *Client) Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error) {
	var resp JoinResponse
	return &resp, cl.call(ctx, "/v1/join", req, &resp)
}

func (cl *Client) Lease(ctx context.Context, req *LeaseRequest) (*LeaseResponse, error) {
	var resp LeaseResponse
	return &resp, cl.call(ctx, "/v1/lease", req, &resp)
}

func (cl *Client) Report(ctx context.Context, req *ReportRequest) (*ReportResponse, error) {
	var resp ReportResponse
	return &resp, cl.call(ctx, "/v1/report", req, &resp)
}

func (cl *Client) Heartbeat(ctx context.Context, req *HeartbeatRequest) (*HeartbeatResponse, error) {
	var resp HeartbeatResponse
	return &resp, cl.call(ctx, "/v1/heartbeat", req, &resp)
}
