package pipeline

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Metrics: a coordinator's live state in the Prometheus text format
// (version 0.0.4), for GET /metrics. It holds counts only: no object
// names, worker names, keys or secrets, so it is served without
// authentication, read-only.
//
//	shardprep_info{version="0.1.0"} 1
//	shardprep_phase{phase="fit|transform|commit|committed|failed"} 0 or 1
//	shardprep_splits{phase="fit|transform"} splits of the job
//	shardprep_splits_done{phase="fit|transform"} splits done in the phase
//	shardprep_input_bytes input objects' total size
//	shardprep_bytes_read{phase} input bytes read in the phase so far
//	shardprep_rows_read{phase} rows read in the phase so far
//	shardprep_rows_rejected_total rows rejected by finished transform tasks
//	shardprep_workers_alive workers heard from within a lease period
//	shardprep_leases_expired_total leases taken back from silent workers
//	shardprep_task_retries_total attempts that failed or expired and were retried
//	shardprep_grant_calls_total credential calls of the coordinator's process
//	shardprep_elapsed_seconds time since the job started

// metricsSnapshot is what writeMetrics prints.
type metricsSnapshot struct {
	phase                   Phase
	splits                  int
	done                    [2]int
	bytes, rows             [2]int64
	inputBytes              int64
	rejected                int64
	alive                   int
	expired, retried, grant int64
	elapsed                 time.Duration
}

func (c *Coordinator) metrics() metricsSnapshot {
	snap := c.snapshot()
	c.mu.Lock()
	defer c.mu.Unlock()
	m := metricsSnapshot{phase: c.phase, splits: len(c.job.Splits), inputBytes: snap.BytesTotal, alive: snap.Workers,
		expired: c.expired, retried: c.retried, elapsed: c.opts.Now().Sub(c.started)}
	m.done[0] = c.fitDone
	if c.phase != PhaseFit && c.stats != nil {
		// The fit is over: every byte was read once, for these rows.
		m.bytes[0], m.rows[0] = snap.BytesTotal, c.stats.Rows()
		if c.sampleTasks != nil {
			// The fit read the sample only.
			m.bytes[0], m.rows[0] = 0, 0
			for _, t := range c.sampleTasks {
				m.bytes[0] += t.result.BytesRead
				m.rows[0] += t.result.RowsIn
			}
		}
	}
	for _, t := range c.tasks {
		if t.state == done && t.task.Phase == PhaseTransform {
			m.done[1]++
			m.rejected += t.result.Rejected
			m.bytes[1] += t.result.BytesRead
			m.rows[1] += t.result.RowsIn + t.result.Rejected
		}
	}
	if i := phaseIndex(c.phase); c.phase == PhaseFit || c.phase == PhaseTransform {
		// Heartbeats tell of the tasks under way too.
		m.bytes[i], m.rows[i] = max(m.bytes[i], snap.BytesDone), max(m.rows[i], snap.Rows)
	}
	if c.opts.GrantCalls != nil {
		m.grant = c.opts.GrantCalls()
	}
	return m
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeMetrics writes the coordinator's metrics in the Prometheus text
// format.
func (c *Coordinator) writeMetrics(w io.Writer) error {
	m := c.metrics()
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	gauge := func(name, help string) { p("# HELP %s %s\n# TYPE %s gauge\n", name, help, name) }
	gauge("shardprep_info", "shardprep's version.")
	p("shardprep_info{version=%q} 1\n", Version)
	gauge("shardprep_phase", "1 for the job's current phase.")
	for _, ph := range []Phase{PhaseFit, PhaseTransform, PhaseCommit, PhaseCommitted, PhaseFailed} {
		p("shardprep_phase{phase=%q} %d\n", ph, boolInt(m.phase == ph))
	}
	names := [2]Phase{PhaseFit, PhaseTransform}
	for _, s := range []struct {
		name, help string
		v          func(i int) int64
	}{
		{"shardprep_splits", "Splits of the job, per phase.", func(int) int64 { return int64(m.splits) }},
		{"shardprep_splits_done", "Splits done, per phase.", func(i int) int64 { return int64(m.done[i]) }},
		{"shardprep_bytes_read", "Input bytes read, per phase.", func(i int) int64 { return m.bytes[i] }},
		{"shardprep_rows_read", "Input rows read, per phase.", func(i int) int64 { return m.rows[i] }},
	} {
		gauge(s.name, s.help)
		for i, ph := range names {
			p("%s{phase=%q} %d\n", s.name, ph, s.v(i))
		}
	}
	for _, s := range []struct {
		name, kind, help string
		v                float64
	}{
		{"shardprep_input_bytes", "gauge", "Total size of the input objects.", float64(m.inputBytes)},
		{"shardprep_workers_alive", "gauge", "Workers heard from within a lease period.", float64(m.alive)},
		{"shardprep_rows_rejected_total", "counter", "Rows rejected by finished transform tasks.", float64(m.rejected)},
		{"shardprep_leases_expired_total", "counter", "Leases taken back from workers that stopped answering.", float64(m.expired)},
		{"shardprep_task_retries_total", "counter", "Attempts that failed or expired and were tried again.", float64(m.retried)},
		{"shardprep_grant_calls_total", "counter", "Credential calls of the coordinator's process.", float64(m.grant)},
		{"shardprep_elapsed_seconds", "gauge", "Time since the job started.", m.elapsed.Seconds()},
	} {
		p("# HELP %s %s\n# TYPE %s %s\n%s %s\n", s.name, s.help, s.name, s.kind, s.name, strconv.FormatFloat(s.v, 'g', -1, 64))
	}
	return err
}

// MetricsHandler serves c's metrics (GET /metrics) in the Prometheus text
// format, without authentication: they hold no names and no secrets.
func (c *Coordinator) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		c.writeMetrics(w)
	})
}
