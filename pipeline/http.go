package pipeline

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The coordinator protocol over HTTP (version 2).
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
// Every lease names its task, its attempt and a lease id drawn by the
// coordinator. A report is accepted only from the worker holding the
// task's live lease, for that lease and attempt, and only once (the same
// report sent again is accepted and counts once); any other is answered
// with accepted=false, and the worker drops what it staged. A transform
// attempt stages its parts under the stage "<run id>-<lease id>" and its
// report carries their descriptions, sizes and row counts; the coordinator
// publishes the accepted ones at commit.
//
// Every request carries the header
//
//	Shardprep-Auth: v=2,job=<run id>,worker=<name>,n=<nonce>,t=<unix seconds>,sig=<hex>
//
// with sig = hex HMAC-SHA256(secret, "req\n" METHOD PATH "\n" job "\n"
// worker "\n" nonce "\n" t "\n" hex(sha256(body))), the job empty at join,
// the nonce 32 to 64 random hex digits. The coordinator checks the
// header's shape, its time (at most five minutes off) and its job (409
// for another job's run id) before it reads the body, reads at most a
// per-endpoint bound (413 beyond), then checks the signature in constant
// time (401) and refuses a nonce it has seen within the time window (401:
// a replay). A malformed or out-of-range body is refused with 400, a
// worker name that differs from the envelope's too.
//
// Every answer, errors included, carries
//
//	Shardprep-Auth: v=2,job=<run id>,n=<the request's nonce>,sig=<hex>
//
// with sig = hex HMAC-SHA256(secret, "resp\n" PATH "\n" job "\n" nonce "\n"
// status "\n" hex(sha256(body))). A worker checks it before it uses the
// answer: an unsigned or wrongly signed answer is a permanent error (the
// coordinator could not prove it holds the secret), so a worker sends
// nothing of its input to a coordinator it has not authenticated, as it
// does so only in reports, after a join. An answer of another run id than
// the one the worker joined stops the worker: its coordinator was
// restarted and runs a new job.
//
// The secret itself never crosses the network. A worker gives up at once
// on 400, 401, 409 and 413; it retries other failures (503 when the
// coordinator is busy, 5xx, lost connections) for its coordinator
// timeout. No credentials cross this protocol: each worker opens storage
// with its own.

// authHeader carries a request's or an answer's signature.
const authHeader = "Shardprep-Auth"

// authVersion is the version of the envelope in authHeader.
const authVersion = "2"

const maxClockSkew = 5 * time.Minute

// Bounds of request bodies, per endpoint, and of answers.
const (
	maxSmallBody  = 64 << 10 // join, lease
	maxHeartbeat  = 1 << 20
	maxReportBody = 4 << 20
	maxAnswer     = 256 << 20 // a join answer holds the plan
)

// Bounds of the requests the handler serves at once: those whose body is
// being read and checked, and all.
const (
	maxReading  = 64
	maxRequests = 1024
)

// envelope is the content of a request's authHeader.
type envelope struct {
	job, worker, nonce string
	ts                 int64
	sig                string
}

// bodyHash is the hex SHA-256 of a body.
func bodyHash(body []byte) string {
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:])
}

func mac(secret []byte, fields ...string) string {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, strings.Join(fields, "\n"))
	return hex.EncodeToString(m.Sum(nil))
}

// requestSig signs a request.
func requestSig(secret []byte, method, path string, e envelope, body []byte) string {
	return mac(secret, "req", method+path, e.job, e.worker, e.nonce, strconv.FormatInt(e.ts, 10), bodyHash(body))
}

// answerSig signs an answer.
func answerSig(secret []byte, path, job, nonce string, status int, body []byte) string {
	return mac(secret, "resp", path, job, nonce, strconv.Itoa(status), bodyHash(body))
}

// formatRequestAuth makes a request's authHeader.
func formatRequestAuth(e envelope) string {
	return fmt.Sprintf("v=%s,job=%s,worker=%s,n=%s,t=%d,sig=%s", authVersion, e.job, e.worker, e.nonce, e.ts, e.sig)
}

// authFields splits an authHeader into its fields; a field given twice,
// an unknown one or a malformed one is an error.
func authFields(header string, names ...string) (map[string]string, error) {
	if header == "" {
		return nil, errors.New("request is not signed")
	}
	f := map[string]string{}
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(part, "=")
		if _, dup := f[k]; !ok || dup {
			return nil, errors.New("malformed " + authHeader + " header")
		}
		f[k] = v
	}
	if len(f) != len(names) || f["v"] != authVersion {
		return nil, fmt.Errorf("%s header is not of protocol version %d", authHeader, ProtocolVersion)
	}
	for _, n := range names {
		if _, ok := f[n]; !ok {
			return nil, fmt.Errorf("%s header lacks %s", authHeader, n)
		}
	}
	return f, nil
}

// parseRequestAuth parses a request's authHeader and checks the shape of
// its fields.
func parseRequestAuth(header string) (envelope, error) {
	f, err := authFields(header, "v", "job", "worker", "n", "t", "sig")
	if err != nil {
		return envelope{}, err
	}
	e := envelope{job: f["job"], worker: f["worker"], nonce: f["n"], sig: f["sig"]}
	e.ts, err = strconv.ParseInt(f["t"], 10, 64)
	switch {
	case err != nil:
		return e, errors.New("request time is not a number")
	case !isHex(e.nonce, 32, 64):
		return e, errors.New("request nonce is not 32 to 64 hex digits")
	case !isHex(e.sig, 64, 64):
		return e, errors.New("request signature is not 64 hex digits")
	case e.job != "" && !isHex(e.job, 1, 64):
		return e, errors.New("request job id is not hex")
	case e.worker == "" || len(e.worker) > 256:
		return e, errors.New("request names no worker")
	}
	return e, nil
}

// isHex reports whether s is lowercase hex of min to max digits.
func isHex(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// newNonce draws a request nonce.
func newNonce() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// nonceCache remembers the nonces of accepted requests for as long as
// their time is within the skew window, so that a replay is refused. It
// holds at most max nonces; when full of live ones, requests are refused
// as busy until some expire.
type nonceCache struct {
	mu        sync.Mutex
	seen      map[[16]byte]int64 // nonce (its first 32 digits) -> unix time its request leaves the window
	max       int
	lastPrune int64
}

var (
	errReplay = errors.New("replayed request: its nonce was already used")
	errBusy   = errors.New("coordinator busy: too many requests in the replay window")
)

// add records the nonce of a request of time ts, or says why it cannot.
func (c *nonceCache) add(nonce string, ts, now int64) error {
	var key [16]byte
	if _, err := hex.Decode(key[:], []byte(nonce[:32])); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.seen[key]; ok && now <= until {
		return errReplay
	}
	if len(c.seen) >= c.max && now > c.lastPrune {
		c.lastPrune = now
		for n, until := range c.seen {
			if now > until {
				delete(c.seen, n)
			}
		}
	}
	if len(c.seen) >= c.max {
		return errBusy
	}
	c.seen[key] = ts + int64(maxClockSkew/time.Second)
	return nil
}

// maxNonces bounds the nonce cache: about 850 requests a second over the
// ten-minute window, in about 25 MB.
const maxNonces = 1 << 19

// Server returns an HTTP server of the coordinator protocol for c, and
// of its metrics, with the time limits a server facing a network needs:
// on reading the header and the whole request, on writing the answer (a
// lease call waits at most 20s), and on idle connections. Requests must
// be signed with secret, and answers are.
func (c *Coordinator) Server(secret []byte, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           newHandler(c, secret, log),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// newHandler serves the coordinator protocol for c, refusing requests not
// signed with secret, and signing its answers with it.
func newHandler(c *Coordinator, secret []byte, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{c: c, secret: secret, log: log, job: c.job.RunID,
		reading: make(chan struct{}, maxReading), serving: make(chan struct{}, maxRequests),
		nonces: &nonceCache{seen: map[[16]byte]int64{}, max: maxNonces}}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/join", h.endpoint("/v1/join", maxSmallBody, call(h.join)))
	mux.Handle("POST /v1/lease", h.endpoint("/v1/lease", maxSmallBody, call(func(ctx context.Context, req *leaseRequest) (*leaseResponse, error) {
		if err := checkLease(req); err != nil {
			return nil, err
		}
		req.WaitMS = min(req.WaitMS, 20000)
		return c.lease(ctx, req)
	})))
	mux.Handle("POST /v1/report", h.endpoint("/v1/report", maxReportBody, call(c.report)))
	mux.Handle("POST /v1/heartbeat", h.endpoint("/v1/heartbeat", maxHeartbeat, call(func(ctx context.Context, req *heartbeatRequest) (*heartbeatResponse, error) {
		if err := checkHeartbeat(req); err != nil {
			return nil, err
		}
		return c.heartbeat(ctx, req)
	})))
	mux.Handle("GET /metrics", c.MetricsHandler())
	return mux
}

// handler serves the protocol endpoints of one coordinator.
type handler struct {
	c      *Coordinator
	secret []byte
	log    *slog.Logger
	job    string // the run id

	reading chan struct{} // a slot per request being read and checked
	serving chan struct{} // a slot per request being served
	nonces  *nonceCache

	// The job a worker gets at join is the same for all (its size grows
	// with the splits): it is encoded once.
	jobOnce sync.Once
	jobJSON json.RawMessage
	jobErr  error
}

// request is what the endpoints' functions get: the checked envelope and
// the body.
type request struct {
	env  envelope
	body []byte
}

// call adapts a protocol method to a handler of JSON request bodies. A
// body that does not decode, or names another worker than its envelope,
// is malformed.
func call[Req any, PReq interface {
	*Req
	who() string
}, Resp any](f func(context.Context, PReq) (Resp, error)) func(context.Context, request) (any, error) {
	return func(ctx context.Context, r request) (any, error) {
		req := PReq(new(Req))
		if err := json.Unmarshal(r.body, req); err != nil {
			return nil, &protocolError{"malformed request: " + err.Error()}
		}
		if req.who() != r.env.worker {
			return nil, &protocolError{fmt.Sprintf("request of worker %q in an envelope of worker %q", req.who(), r.env.worker)}
		}
		return f(ctx, req)
	}
}

// refusal is a request refused before it was served: its status and
// reason.
type refusal struct {
	status int
	err    error
}

func (e *refusal) Error() string { return e.err.Error() }

// endpoint serves path, whose bodies are at most limit bytes: it checks
// the request (see admit), runs f and writes f's answer as JSON, or its
// error with a status code, signed.
func (h *handler) endpoint(path string, limit int64, f func(context.Context, request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case h.serving <- struct{}{}:
			defer func() { <-h.serving }()
		default:
			env, _ := parseRequestAuth(r.Header.Get(authHeader)) // for the nonce: the worker checks the answer
			h.refuse(w, r, path, env.nonce, &refusal{http.StatusServiceUnavailable, errors.New("coordinator busy: too many requests; retry")})
			return
		}
		env, body, ref := h.admit(w, r, path, limit)
		if ref != nil {
			h.refuse(w, r, path, env.nonce, ref)
			return
		}
		resp, err := f(r.Context(), request{env: env, body: body})
		if err != nil {
			if r.Context().Err() == nil {
				status := errorStatus(path, err)
				if status == http.StatusBadRequest {
					h.log.Warn("refused a malformed request", "remote", r.RemoteAddr, "path", path, "worker", env.worker, "reason", err.Error())
				}
				h.answer(w, path, env.nonce, status, []byte(err.Error()+"\n"))
			}
			return
		}
		data, err := json.Marshal(resp)
		if err != nil {
			h.answer(w, path, env.nonce, http.StatusInternalServerError, []byte(err.Error()+"\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		h.answer(w, path, env.nonce, http.StatusOK, data)
	}
}

// admit checks a request and reads its body. The envelope's shape, time
// and job are checked before anything of the body is read; then at most
// limit bytes are read, by at most maxReading requests at once, and the
// signature and the nonce are checked.
func (h *handler) admit(w http.ResponseWriter, r *http.Request, path string, limit int64) (envelope, []byte, *refusal) {
	env, err := parseRequestAuth(r.Header.Get(authHeader))
	if err != nil {
		return env, nil, &refusal{http.StatusUnauthorized, err}
	}
	now := time.Now()
	if d := now.Sub(time.Unix(env.ts, 0)); d > maxClockSkew || d < -maxClockSkew {
		return env, nil, &refusal{http.StatusUnauthorized, errors.New("request signature is too old or from the future (are the clocks in sync?)")}
	}
	if env.job != h.job && (env.job != "" || path != "/v1/join") {
		return env, nil, &refusal{http.StatusConflict, fmt.Errorf("request of another job (run %q); this coordinator runs %s: the coordinator was restarted, start the worker again", env.job, h.job)}
	}
	if r.ContentLength > limit {
		return env, nil, &refusal{http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes; %s takes at most %d", r.ContentLength, path, limit)}
	}
	select {
	case h.reading <- struct{}{}:
		defer func() { <-h.reading }()
	default:
		return env, nil, &refusal{http.StatusServiceUnavailable, errors.New("coordinator busy: too many requests being read; retry")}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return env, nil, &refusal{http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes, the bound of %s", limit, path)}
	case err != nil:
		return env, nil, &refusal{http.StatusBadRequest, fmt.Errorf("reading request: %w", err)}
	}
	want := requestSig(h.secret, r.Method, path, env, body)
	if !hmac.Equal([]byte(want), []byte(env.sig)) {
		return env, nil, &refusal{http.StatusUnauthorized, errors.New("wrong cluster secret")}
	}
	switch err := h.nonces.add(env.nonce, env.ts, now.Unix()); {
	case errors.Is(err, errBusy):
		return env, nil, &refusal{http.StatusServiceUnavailable, err}
	case err != nil:
		return env, nil, &refusal{http.StatusUnauthorized, err}
	}
	return env, body, nil
}

// refuse logs a refused request and answers it; the connection is closed
// rather than drained of a body that was not read.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, path, nonce string, ref *refusal) {
	h.log.Warn("refused a request", "remote", r.RemoteAddr, "path", path, "status", ref.status, "reason", ref.Error())
	w.Header().Set("Connection", "close")
	h.answer(w, path, nonce, ref.status, []byte(ref.Error()+"\n"))
}

// answer writes a signed answer.
func (h *handler) answer(w http.ResponseWriter, path, nonce string, status int, body []byte) {
	sig := answerSig(h.secret, path, h.job, nonce, status, body)
	w.Header().Set(authHeader, fmt.Sprintf("v=%s,job=%s,n=%s,sig=%s", authVersion, h.job, nonce, sig))
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}

// errorStatus is the status code of a failed request: 409 for a refused
// join, 400 for a malformed request, 500 otherwise.
func errorStatus(path string, err error) int {
	var pe *protocolError
	switch {
	case errors.As(err, &pe) && path == "/v1/join":
		return http.StatusConflict
	case errors.As(err, &pe):
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

// client is a transport to a coordinator over HTTP. It signs requests,
// checks the signature of every answer, and holds the run id of the job
// it joined: an answer of another run is an error.
type client struct {
	base   string
	secret []byte
	hc     *http.Client

	mu  sync.Mutex
	job string // the run id joined; "" before the join
}

// CoordinatorURL returns the base URL of a coordinator given as
// "http://host:port", "https://host:port" or "host:port" (http assumed).
func CoordinatorURL(s string) (string, error) {
	raw := s
	if !strings.Contains(s, "://") {
		raw = "http://" + s
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" ||
		strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("coordinator %q: want http://HOST:PORT or HOST:PORT, as the coordinator prints it", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// newClient returns a transport to the coordinator at base
// ("http://host:port").
func newClient(base string, secret []byte, hc *http.Client) transport {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &client{base: strings.TrimSuffix(base, "/"), secret: secret, hc: hc}
}

func (cl *client) joined() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.job
}

// call posts req, from worker, to path and decodes the checked answer
// into resp; it returns the answer's run id.
func (cl *client) call(ctx context.Context, path, worker string, req, resp any) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.base+path, bytes.NewReader(body))
	if err != nil {
		return "", &permanentError{err}
	}
	env := envelope{job: cl.joined(), worker: worker, nonce: newNonce(), ts: time.Now().Unix()}
	env.sig = requestSig(cl.secret, http.MethodPost, path, env, body)
	hr.Header.Set(authHeader, formatRequestAuth(env))
	hr.Header.Set("Content-Type", "application/json")
	r, err := cl.hc.Do(hr)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	data, err := io.ReadAll(io.LimitReader(r.Body, maxAnswer))
	if err != nil {
		return "", err
	}
	job, err := cl.check(r, path, env.nonce, data)
	if err != nil {
		return "", err
	}
	switch {
	case r.StatusCode == http.StatusUnauthorized || r.StatusCode == http.StatusConflict ||
		r.StatusCode == http.StatusBadRequest || r.StatusCode == http.StatusRequestEntityTooLarge:
		return "", &permanentError{fmt.Errorf("coordinator %s refused %s: %s", cl.base, path, strings.TrimSpace(string(data)))}
	case r.StatusCode != http.StatusOK:
		return "", fmt.Errorf("coordinator %s: %s: %s", cl.base, r.Status, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return "", &permanentError{fmt.Errorf("coordinator %s: malformed answer to %s: %w", cl.base, path, err)}
	}
	return job, nil
}

// check checks an answer's signature, for the request of nonce, and its
// run id against the one joined; it returns the run id.
func (cl *client) check(r *http.Response, path, nonce string, body []byte) (string, error) {
	f, err := authFields(r.Header.Get(authHeader), "v", "job", "n", "sig")
	if err == nil && (f["n"] != nonce ||
		!hmac.Equal([]byte(f["sig"]), []byte(answerSig(cl.secret, path, f["job"], nonce, r.StatusCode, body)))) {
		err = errors.New("wrong signature")
	}
	if err != nil {
		what := fmt.Sprintf("the coordinator at %s could not prove it holds the cluster secret (its answer to %s: %s, %v)",
			cl.base, path, r.Status, err)
		if r.StatusCode == http.StatusUnauthorized {
			what += fmt.Sprintf("; it refused this worker: %q: check that SHARDPREP_CLUSTER_SECRET is the coordinator's",
				truncate(strings.TrimSpace(string(body)), 200))
		} else {
			what += ": check --coordinator and SHARDPREP_CLUSTER_SECRET"
		}
		return "", &permanentError{errors.New(what)}
	}
	if job := cl.joined(); job != "" && f["job"] != job {
		return "", &permanentError{fmt.Errorf("the coordinator at %s now runs another job (run %s; this worker joined run %s): it was restarted, so this worker stops; start it again to work on the new job",
			cl.base, f["job"], job)}
	}
	return f["job"], nil
}

func (cl *client) join(ctx context.Context, req *joinRequest) (*joinResponse, error) {
	var resp joinResponse
	job, err := cl.call(ctx, "/v1/join", req.Worker, req, &resp)
	if err != nil {
		return nil, err
	}
	if resp.Job == nil || resp.Job.RunID != job || job == "" {
		return nil, &permanentError{fmt.Errorf("the coordinator at %s answered the join with a job that is not its run %q", cl.base, job)}
	}
	cl.mu.Lock()
	cl.job = job
	cl.mu.Unlock()
	return &resp, nil
}

func (cl *client) lease(ctx context.Context, req *leaseRequest) (*leaseResponse, error) {
	var resp leaseResponse
	_, err := cl.call(ctx, "/v1/lease", req.Worker, req, &resp)
	return &resp, err
}

func (cl *client) report(ctx context.Context, req *reportRequest) (*reportResponse, error) {
	var resp reportResponse
	_, err := cl.call(ctx, "/v1/report", req.Worker, req, &resp)
	return &resp, err
}

func (cl *client) heartbeat(ctx context.Context, req *heartbeatRequest) (*heartbeatResponse, error) {
	var resp heartbeatResponse
	_, err := cl.call(ctx, "/v1/heartbeat", req.Worker, req, &resp)
	return &resp, err
}
