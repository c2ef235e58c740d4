package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/shardprep/shardprep/features"
)

// Versions. ProtocolVersion is the version of the coordinator protocol: a
// worker whose version differs is refused at join. Version is shardprep's
// version, recorded in manifests.
const (
	Version         = "0.1.0"
	ProtocolVersion = 1
)

// Phase is the state of a job.
type Phase string

const (
	PhaseFit       Phase = "fit"
	PhaseTransform Phase = "transform"
	PhaseCommit    Phase = "commit"
	PhaseCommitted Phase = "committed"
	PhaseFailed    Phase = "failed"
)

// taskID names one unit of work: one split in one phase, and which
// attempt at it.
type taskID struct {
	Phase   Phase `json:"phase"`
	Split   int   `json:"split"`
	Attempt int   `json:"attempt"`
}

func (t taskID) String() string {
	return fmt.Sprintf("%s split %d (attempt %d)", t.Phase, t.Split, t.Attempt)
}

// Protocol messages. Every request names its worker.
type (
	joinRequest struct {
		Protocol int    `json:"protocol"`
		Worker   string `json:"worker"`
		Version  string `json:"version"`
		// Instance is random per worker process: a repeated join of the
		// same process keeps its name, another process asking for a
		// name in use gets a new one.
		Instance string `json:"instance,omitempty"`
	}
	joinResponse struct {
		Protocol int  `json:"protocol"`
		Job      *Job `json:"job"`
		// Worker is the name the worker must use in every later request:
		// the name it asked for, or that name with "#N" appended when
		// another worker holds it.
		Worker string `json:"worker"`
		// HeartbeatMillis is how often the worker must heartbeat; a
		// worker silent for LeaseMillis loses its tasks.
		HeartbeatMillis int64 `json:"heartbeat_ms"`
		LeaseMillis     int64 `json:"lease_ms"`
	}
	leaseRequest struct {
		Worker string `json:"worker"`
		Slots  int    `json:"slots"`   // tasks the worker can start now
		WaitMS int64  `json:"wait_ms"` // how long the call may wait for work
		// HaveModel says the worker already holds the fit result of an
		// earlier transform lease, so it need not be sent again.
		HaveModel bool `json:"have_model,omitempty"`
	}
	leaseResponse struct {
		State Phase    `json:"state"`
		Error string   `json:"error,omitempty"` // why the job failed
		Tasks []taskID `json:"tasks,omitempty"`
		// Model and FirstLines (the fit result) come with transform
		// tasks, unless the request said HaveModel.
		Model      *features.Model `json:"model,omitempty"`
		FirstLines []int64         `json:"first_lines,omitempty"`
	}
	reportRequest struct {
		Worker string      `json:"worker"`
		Task   taskID      `json:"task"`
		Result *taskResult `json:"result,omitempty"`
		Error  string      `json:"error,omitempty"`
		// DataError marks an error caused by the input: the job fails
		// without retrying the split elsewhere.
		DataError bool `json:"data_error,omitempty"`
	}
	reportResponse struct {
		State Phase `json:"state"`
	}
	heartbeatRequest struct {
		Worker string   `json:"worker"`
		Tasks  []taskID `json:"tasks"` // tasks the worker is running
		// Progress of the worker in Phase: input bytes read and rows
		// decoded so far.
		Phase Phase `json:"phase,omitempty"`
		Bytes int64 `json:"bytes"`
		Rows  int64 `json:"rows"`
	}
	heartbeatResponse struct {
		State Phase  `json:"state"`
		Error string `json:"error,omitempty"`
	}
)

// fitResult is what the fit phase learns, or what the user gave instead:
// the model, and the 1-based number of the first line that can belong to
// each split (0: unknown), for error messages. It travels beside the Job,
// with the transform leases.
type fitResult struct {
	model      *features.Model
	firstLines []int64
}

// firstLine returns the number of split i's first line, 0 if unknown.
func (f *fitResult) firstLine(i int) int64 {
	if f == nil || i >= len(f.firstLines) {
		return 0
	}
	return f.firstLines[i]
}

// Transport is how a worker talks to its coordinator: the *Coordinator
// itself in one process, a *Client between hosts.
type Transport interface {
	join(ctx context.Context, req *joinRequest) (*joinResponse, error)
	lease(ctx context.Context, req *leaseRequest) (*leaseResponse, error)
	report(ctx context.Context, req *reportRequest) (*reportResponse, error)
	heartbeat(ctx context.Context, req *heartbeatRequest) (*heartbeatResponse, error)
}

// ErrJobFailed wraps the coordinator's reason when the job failed.
var ErrJobFailed = errors.New("job failed")

// protocolError is a request the coordinator cannot accept as sent: a
// worker of another protocol version, a nameless worker, a malformed
// report. Retrying it cannot help.
type protocolError struct{ Msg string }

func (e *protocolError) Error() string { return e.Msg }

// permanentError is a coordinator answer that retrying cannot change
// (refused secret, wrong protocol version).
type permanentError struct{ Err error }

func (e *permanentError) Error() string { return e.Err.Error() }
func (e *permanentError) Unwrap() error { return e.Err }
