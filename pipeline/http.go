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
// Four endpoints take and return JSON: POST /v1/join (joinRequest ->
// joinResponse), /v1/lease (leaseRequest -> leaseResponse; the call may
// wait up to WaitMS for work), /v1/report (reportRequest ->
// reportResponse) and /v1/heartbeat (heartbeatRequest ->
// heartbeatResponse). A worker joins once, then leases tasks, heartbeats
// every joinResponse.HeartbeatMillis while it runs them, and reports each
// one. A worker silent for LeaseMillis loses its tasks to others. When a
// response's State is "committed" the worker exits 0; when it is "failed"
// the worker stops its tasks and exits non-zero.
//
// The name in joinResponse.Worker is the worker's name in every later
// request (a name already held by another worker process gets "#N").
// Transform leases carry the model and the first line numbers of the
// splits until the worker says it has them (leaseRequest.HaveModel).
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

// authHeader carries a request's signature.
const authHeader = "Shardprep-Auth"

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
	h := &handler{c: c, secret: secret, log: log}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/join", h.endpoint("/v1/join", call(h.join)))
	mux.Handle("POST /v1/lease", h.endpoint("/v1/lease", call(func(ctx context.Context, req *leaseRequest) (*leaseResponse, error) {
		req.WaitMS = min(req.WaitMS, 20000)
		return c.lease(ctx, req)
	})))
	mux.Handle("POST /v1/report", h.endpoint("/v1/report", call(c.report)))
	mux.Handle("POST /v1/heartbeat", h.endpoint("/v1/heartbeat", call(c.heartbeat)))
	return mux
}

// handler serves the protocol endpoints of one coordinator.
type handler struct {
	c      *Coordinator
	secret []byte
	log    *slog.Logger

	// The job a worker gets at join is the same for all (its size grows
	// with the splits): it is encoded once.
	jobOnce sync.Once
	jobJSON json.RawMessage
	jobErr  error
}

// call adapts a protocol method to a handler of JSON request bodies.
func call[Req, Resp any](f func(context.Context, *Req) (Resp, error)) func(context.Context, []byte) (any, error) {
	return func(ctx context.Context, body []byte) (any, error) {
		var req Req
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		return f(ctx, &req)
	}
}

// endpoint serves path: it checks the request's signature, runs f on its
// body and writes f's answer as JSON, or its error with a status code.
func (h *handler) endpoint(path string, f func(ctx context.Context, body []byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			http.Error(w, "reading request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := verify(h.secret, r.Header.Get(authHeader), path, body, time.Now()); err != nil {
			h.log.Warn("refused a request", "remote", r.RemoteAddr, "path", path, "reason", err.Error())
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		resp, err := f(r.Context(), body)
		if err != nil {
			if r.Context().Err() == nil {
				http.Error(w, err.Error(), errorStatus(path, err))
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	}
}

// errorStatus is the status code of a failed request: 409 for a refused
// join, 400 for a malformed request, 500 otherwise.
func errorStatus(path string, err error) int {
	var pe *protocolError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &pe) && path == "/v1/join":
		return http.StatusConflict
	case errors.As(err, &pe), errors.As(err, &se), errors.As(err, &te):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// join is the coordinator's join, with the job encoded once.
func (h *handler) join(ctx context.Context, req *joinRequest) (*joinWire, error) {
	resp, err := h.c.join(ctx, req)
	if err != nil {
		return nil, err
	}
	h.jobOnce.Do(func() { h.jobJSON, h.jobErr = json.Marshal(resp.Job) })
	if h.jobErr != nil {
		return nil, h.jobErr
	}
	return &joinWire{joinResponse: resp, Job: h.jobJSON}, nil
}

// joinWire is a joinResponse with its job already encoded.
type joinWire struct {
	*joinResponse
	Job json.RawMessage `json:"job"` // shadows joinResponse.Job
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
		return &permanentError{err}
	}
	ts := time.Now().Unix()
	hr.Header.Set(authHeader, "t="+strconv.FormatInt(ts, 10)+",sig="+sign(cl.secret, ts, path, body))
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
		return &permanentError{fmt.Errorf("coordinator %s refused %s: %s", cl.base, path, strings.TrimSpace(string(data)))}
	case r.StatusCode != http.StatusOK:
		return fmt.Errorf("coordinator %s: %s: %s", cl.base, r.Status, strings.TrimSpace(string(data)))
	}
	return json.Unmarshal(data, resp)
}

// post calls the endpoint path with req and returns the answer.
func post[Resp any](ctx context.Context, cl *Client, path string, req any) (*Resp, error) {
	var resp Resp
	return &resp, cl.call(ctx, path, req, &resp)
}

func (cl *Client) join(ctx context.Context, req *joinRequest) (*joinResponse, error) {
	return post[joinResponse](ctx, cl, "/v1/join", req)
}

func (cl *Client) lease(ctx context.Context, req *leaseRequest) (*leaseResponse, error) {
	return post[leaseResponse](ctx, cl, "/v1/lease", req)
}

func (cl *Client) report(ctx context.Context, req *reportRequest) (*reportResponse, error) {
	return post[reportResponse](ctx, cl, "/v1/report", req)
}

func (cl *Client) heartbeat(ctx context.Context, req *heartbeatRequest) (*heartbeatResponse, error) {
	return post[heartbeatResponse](ctx, cl, "/v1/heartbeat", req)
}
