package pipeline

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shardprep/shardprep/features"
)

// Versions. ProtocolVersion is the version of the coordinator protocol: a
// worker whose version differs is refused at join. Version is shardprep's
// version, recorded in manifests.
const (
	Version         = "0.1.0"
	ProtocolVersion = 5
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

// taskID names one unit of work: one split in one phase, which attempt
// at it, and the lease under which a worker runs that attempt: an id the
// coordinator draws at random for each lease, so that only the worker it
// was given to can report the attempt.
type taskID struct {
	Phase Phase `json:"phase"`
	// Pass numbers the fit passes of a spec whose stages need more than
	// one (from 2 on; 0 otherwise).
	Pass int `json:"pass,omitempty"`
	// Gen numbers the transform passes (generations) of the job, from
	// 1: each transforms every split with its own model. A speculative
	// generation transforms with a model fitted on a sample of the
	// splits: its tasks count the labels of their rows and stop at the
	// first row that could make the sample's model differ from the
	// whole input's (see speculate.go).
	Gen         int    `json:"gen,omitempty"`
	Speculative bool   `json:"speculative,omitempty"`
	Split       int    `json:"split"`
	Attempt     int    `json:"attempt"`
	Lease       string `json:"lease"`
	// Validate asks a fit task to validate every column of its rows, as
	// a transform task does: to find an invalid row before one already
	// reported (see firstbad.go).
	Validate bool `json:"validate,omitempty"`
}

func (t taskID) String() string {
	switch {
	case t.Pass > 0:
		return fmt.Sprintf("%s pass %d split %d (attempt %d)", t.Phase, t.Pass, t.Split, t.Attempt)
	case t.Gen > 1:
		return fmt.Sprintf("%s %d split %d (attempt %d)", t.Phase, t.Gen, t.Split, t.Attempt)
	}
	return fmt.Sprintf("%s split %d (attempt %d)", t.Phase, t.Split, t.Attempt)
}

// Protocol messages. Every request names its worker (as does its
// envelope, see http.go).
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
		// HaveModel is the transform generation whose fit result the
		// worker holds from an earlier lease (0: none), so it need not be
		// sent again with tasks of that generation.
		HaveModel int `json:"have_model,omitempty"`
	}
	leaseResponse struct {
		State Phase    `json:"state"`
		Error string   `json:"error,omitempty"` // why the job failed
		Tasks []taskID `json:"tasks,omitempty"`
		// Model and FirstLines (the fit result) come with transform
		// tasks, unless the request said HaveModel, and with the fit
		// tasks of a pass after the first (the model fitted so far).
		Model      *features.Model `json:"model,omitempty"`
		FirstLines []int64         `json:"first_lines,omitempty"`
		// Stale is the last transform generation abandoned: the worker
		// cancels its tasks of that generation and earlier.
		Stale int `json:"stale,omitempty"`
	}
	reportRequest struct {
		Worker string      `json:"worker"`
		Task   taskID      `json:"task"`
		Result *taskResult `json:"result,omitempty"`
		// Parts are what a transform attempt staged: one part per
		// split of the spec, and one of rejected rows if it has any.
		Parts []stagedPart `json:"parts,omitempty"`
		Error string       `json:"error,omitempty"`
		// DataError marks an error caused by the input: the job fails
		// without retrying the split elsewhere.
		DataError bool `json:"data_error,omitempty"`
		// InvalidRow marks a data error that is an invalid row of the
		// input (see firstbad.go).
		InvalidRow bool `json:"invalid_row,omitempty"`
		// Mispredicted marks a speculative transform task stopped at a
		// row that the sample's model may not fit: a label it does not
		// hold, or an invalid row. Error says which.
		Mispredicted bool `json:"mispredicted,omitempty"`
	}
	// reportResponse says whether the report was taken. A report is
	// accepted once, from the worker holding the task's live lease (a
	// repeat of the accepted report is accepted again and counts once);
	// any other is refused, with the reason, and the worker drops what
	// the attempt staged.
	reportResponse struct {
		State    Phase  `json:"state"`
		Accepted bool   `json:"accepted"`
		Reason   string `json:"reason,omitempty"`
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
		Stale int    `json:"stale,omitempty"` // as in leaseResponse
	}
)

// stagedPart is one part a transform attempt staged: its key, byte size
// and rows, and the sink's description of the staged object, which the
// coordinator publishes at commit if it accepts the attempt.
type stagedPart struct {
	Key    string          `json:"key"`
	Size   int64           `json:"size"`
	Rows   int64           `json:"rows"`
	Staged json.RawMessage `json:"staged"`
}

// stagedDesc is what pipeline reads of a sink's description of a staged
// object; the rest is the sink's.
type stagedDesc struct {
	Key   string `json:"key"`
	Stage string `json:"stage"`
	Size  int64  `json:"size"`
}

// who names the worker a request comes from.
func (r *joinRequest) who() string      { return r.Worker }
func (r *leaseRequest) who() string     { return r.Worker }
func (r *reportRequest) who() string    { return r.Worker }
func (r *heartbeatRequest) who() string { return r.Worker }

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

// transport is how a worker talks to its coordinator: the *Coordinator
// itself in one process, a *client between hosts.
type transport interface {
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

// Checks of messages. A request that fails them is malformed: the
// coordinator answers 400 and the worker does not retry it.

// maxSlots bounds the tasks one lease request may ask for.
const maxSlots = 4096

// maxCompressedCount bounds the counts of a split of a compressed object,
// whose decompressed size is unknown.
const maxCompressedCount = 1 << 40

// checkLease checks a lease request.
func checkLease(req *leaseRequest) error {
	if req.Worker == "" {
		return &protocolError{"lease request without a worker name"}
	}
	if req.Slots < 0 || req.Slots > maxSlots {
		return &protocolError{fmt.Sprintf("lease request for %d slots: want 0 to %d", req.Slots, maxSlots)}
	}
	return nil
}

// checkHeartbeat checks a heartbeat.
func checkHeartbeat(req *heartbeatRequest) error {
	if req.Worker == "" {
		return &protocolError{"heartbeat without a worker name"}
	}
	if req.Bytes < 0 || req.Rows < 0 {
		return &protocolError{fmt.Sprintf("heartbeat with negative progress (%d bytes, %d rows)", req.Bytes, req.Rows)}
	}
	return nil
}

// checkReport checks that a report is well formed for the job: a known
// task, a result or an error, counts that fit the split, and the parts a
// transform attempt must stage, under its lease's stage.
func (c *Coordinator) checkReport(req *reportRequest) error {
	task := req.Task
	switch {
	case req.Worker == "":
		return &protocolError{"report without a worker name"}
	case task.Phase != PhaseFit && task.Phase != PhaseTransform:
		return &protocolError{fmt.Sprintf("report of a task of unknown phase %q", task.Phase)}
	case task.Split < 0 || task.Split >= len(c.job.Splits):
		return &protocolError{fmt.Sprintf("report of split %d: the job has splits 0 to %d", task.Split, len(c.job.Splits)-1)}
	case !validLease(task.Lease):
		return &protocolError{fmt.Sprintf("report of %s with a malformed lease id %q", task, task.Lease)}
	case req.Error == "" && req.Result == nil:
		return &protocolError{"report without result or error"}
	case req.Mispredicted && (!task.Speculative || req.Error == ""):
		return &protocolError{fmt.Sprintf("report of %s: only a failed speculative transform task is mispredicted", task)}
	case req.Error != "":
		return nil
	}
	if err := c.checkCounts(task, req.Result); err != nil {
		return &protocolError{fmt.Sprintf("report of %s: %v", task, err)}
	}
	if task.Phase == PhaseFit {
		return nil
	}
	if err := c.checkParts(task, req.Result, req.Parts); err != nil {
		return &protocolError{fmt.Sprintf("report of %s: %v", task, err)}
	}
	return nil
}

// validLease accepts the lease ids newLeaseID draws.
func validLease(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// checkCounts checks a result's counts against its split: none negative,
// none beyond what the split can hold, and consistent with each other.
func (c *Coordinator) checkCounts(task taskID, r *taskResult) error {
	obj := c.job.Objects[c.job.Splits[task.Split].Object]
	limit := obj.Size + 1 // a line takes at least one byte
	if isCompressed(obj) {
		limit = maxCompressedCount
	}
	for _, n := range []struct {
		what string
		v    int64
	}{{"lines", r.Lines}, {"rows_in", r.RowsIn}, {"rejected", r.Rejected}, {"bytes_read", r.BytesRead}} {
		if n.v < 0 || n.v > limit {
			return fmt.Errorf("%s %d out of range 0 to %d", n.what, n.v, limit)
		}
	}
	if r.RowsIn+r.Rejected > r.Lines {
		return fmt.Errorf("%d rows and %d rejected in %d lines", r.RowsIn, r.Rejected, r.Lines)
	}
	switch task.Phase {
	case PhaseFit:
		if r.Stats == nil || r.Stats.Rows() != r.RowsIn || len(r.RowsOut) != 0 || r.Columns != nil || r.Rejects != nil {
			return fmt.Errorf("fit statistics missing or not of its %d rows", r.RowsIn)
		}
	case PhaseTransform:
		if task.Speculative != (r.Stats != nil) || r.Stats != nil && r.Stats.Rows() != r.RowsIn {
			return fmt.Errorf("label counts missing, unasked for or not of its %d rows", r.RowsIn)
		}
		if len(r.RowsOut) != len(c.job.Spec.Splits) {
			return fmt.Errorf("%d output counts for %d splits of the spec", len(r.RowsOut), len(c.job.Spec.Splits))
		}
		var sum int64
		for _, n := range r.RowsOut {
			if n < 0 || n > r.RowsIn {
				return fmt.Errorf("rows_out %d out of range 0 to %d", n, r.RowsIn)
			}
			sum += n
		}
		if sum != r.RowsIn {
			return fmt.Errorf("rows_out add up to %d, rows_in is %d", sum, r.RowsIn)
		}
		return checkDescription(r)
	}
	return nil
}

// checkParts checks that a transform attempt staged one part per split of
// the spec, then one of rejected rows if it has any, each at its key with
// its row count, described as staged at that key with its size under the
// attempt's stage.
func (c *Coordinator) checkParts(task taskID, r *taskResult, parts []stagedPart) error {
	folders, rows := splitNames(c.job.Spec), r.RowsOut
	if r.Rejected > 0 {
		folders, rows = append(folders, rejectedFolder), append(rows[:len(rows):len(rows)], r.Rejected)
	}
	if len(parts) != len(folders) {
		return fmt.Errorf("%d parts staged, want %d", len(parts), len(folders))
	}
	stage, ext := stageID(c.job.RunID, task.Lease), partExtension(c.job.Spec)
	for i, p := range parts {
		var d stagedDesc
		key := partKey(folders[i], task.Split, ext)
		switch err := json.Unmarshal(p.Staged, &d); {
		case p.Key != key:
			return fmt.Errorf("part %d is %q, want %q", i, p.Key, key)
		case p.Rows != rows[i] || p.Size < 0:
			return fmt.Errorf("part %s: %d rows and %d bytes; the counts say %d rows", key, p.Rows, p.Size, rows[i])
		case err != nil:
			return fmt.Errorf("part %s: staged description: %v", key, err)
		case d.Key != key || d.Stage != stage || d.Size != p.Size:
			return fmt.Errorf("part %s: staged as %q, stage %q, %d bytes; want stage %q, %d bytes", key, d.Key, d.Stage, d.Size, stage, p.Size)
		}
	}
	return nil
}
