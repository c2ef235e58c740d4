package pipeline

import (
	"context"
	"sort"
	"time"
)

// Snapshot is a point-in-time view of a job's progress.
type Snapshot struct {
	Phase       Phase
	SplitsDone  int
	SplitsTotal int
	BytesDone   int64 // input bytes read in this phase (finished tasks and live workers)
	BytesTotal  int64
	Rows        int64
	Workers     int
}

// snapshot returns the job's progress.
func (c *Coordinator) snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Snapshot{Phase: c.phase, SplitsTotal: len(c.tasks), SplitsDone: c.ndone}
	for _, o := range c.job.Objects {
		s.BytesTotal += o.Size
	}
	doneBytes, doneRows := c.doneBytes, c.doneRows
	var liveBytes, liveRows int64
	for _, w := range c.workers {
		if !w.gone {
			s.Workers++
		}
		p := w.progress[c.phase]
		liveBytes += p[0]
		liveRows += p[1]
	}
	// Heartbeats lag behind reports: show whichever is further along.
	s.BytesDone, s.Rows = max(doneBytes, liveBytes), max(doneRows, liveRows)
	if s.BytesDone > s.BytesTotal {
		s.BytesDone = s.BytesTotal
	}
	return s
}

// workerShare is one worker's share of a job. The manifest records the
// fields with a JSON name, as of the commit.
type workerShare struct {
	Worker string `json:"worker"`
	Tasks  int    `json:"tasks"`          // tasks completed, both phases
	Rows   int64  `json:"rows"`           // valid rows transformed
	Bytes  int64  `json:"bytes"`          // input bytes transformed
	Lost   bool   `json:"lost,omitempty"` // it lost a lease at least once

	Running int  `json:"-"` // tasks it holds now
	Gone    bool `json:"-"` // it is silent now
	// Active is the time from its join to its last completed task.
	Active time.Duration `json:"-"`
}

// Workers returns every worker's status, by name.
func (c *Coordinator) Workers() []workerShare {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workerStatus()
}

// workerStatus returns every worker's status, by name; mu must be held.
func (c *Coordinator) workerStatus() []workerShare {
	out := make([]workerShare, 0, len(c.workers))
	for _, w := range c.workers {
		s := workerShare{Worker: w.id, Tasks: w.done, Rows: w.doneRows, Bytes: w.doneBytes, Running: len(w.tasks), Lost: w.lost, Gone: w.gone}
		if w.done > 0 {
			s.Active = w.lastDone.Sub(w.joined)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Worker < out[j].Worker })
	return out
}

// WaitInformed waits, at most timeout, until every worker has learned
// the job's outcome from the coordinator, so that it can exit with the
// right status. Workers in this process and workers silent for a lease
// period (gone) are not waited for.
func (c *Coordinator) WaitInformed(ctx context.Context, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		waiting := false
		now := c.opts.Now()
		for _, w := range c.workers {
			if !w.informed && !w.gone && !w.inProcess && now.Sub(w.lastSeen) <= c.opts.LeaseTTL {
				waiting = true
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if !waiting {
			return
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
