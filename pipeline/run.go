package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// NewRun returns the coordinator of job run in this process: its own
// worker, with opts.Workers slots (default 1), reads src and talks to it
// through the same protocol as between hosts. Its Run returns the
// manifest once the output is committed, and only after a failure has
// been cleaned up; meanwhile the caller may watch it (its metrics, its
// manifest after a failure).
func NewRun(job *Job, src Source, sink Sink, opts *CoordinatorOptions) (*Coordinator, error) {
	var o CoordinatorOptions
	if opts != nil {
		o = *opts
	}
	o.Workers = max(o.Workers, 1)
	if o.Heartbeat <= 0 {
		o.Heartbeat = 200 * time.Millisecond
	}
	return newCoordinator(job, src, sink, &o, localWorker)
}

// Run drives the job to its end: it runs the coordinator's own worker,
// expires the leases of workers that stop answering, reports progress,
// and once the transform phase is over commits (the accepted parts, model,
// manifest, then _SUCCESS in each split folder), discards the stages of
// its run left over, and returns the manifest. On failure or cancellation
// it discards every stage of its run, removes what its commit published,
// and returns the cause. The goroutines it starts have all ended when it
// returns.
func (c *Coordinator) Run(ctx context.Context) (*Manifest, error) {
	var g errgroup.Group
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	for _, w := range c.own {
		// The outcome of the job is the coordinator's to report, not
		// its workers'. But a worker of this process that stops on its
		// own (its report was malformed, say) would leave its tasks to
		// no one: the job fails with its reason rather than wait.
		g.Go(func() error {
			if err := w.Run(workCtx); err != nil && workCtx.Err() == nil && !errors.Is(err, ErrJobFailed) {
				c.mu.Lock()
				c.fail(fmt.Errorf("the worker in this process stopped: %w", err))
				// Its tasks ended with it: nothing to drain.
				for _, ws := range c.workers {
					if ws.instance == w.instance {
						ws.gone, ws.tasks = true, map[taskID]bool{}
					}
				}
				c.mu.Unlock()
			}
			return nil
		})
	}
	g.Go(func() error {
		// Stop local work at once when the job fails, so the cleanup
		// need not wait for leases to lapse.
		select {
		case <-c.failed:
			stopWork()
		case <-workCtx.Done():
		}
		return nil
	})
	tickCtx, stopTicks := context.WithCancel(ctx)
	defer stopTicks()
	g.Go(func() error { c.expireEvery(tickCtx, c.opts.LeaseTTL/4); return nil })
	progressDone := make(chan struct{})
	if c.opts.Progress != nil {
		g.Go(func() error { c.reportProgress(ctx, progressDone); return nil })
	}
	m, err := c.drive(ctx)
	stopTicks()
	close(progressDone)
	stopWork()
	g.Wait()
	return m, err
}

// drive waits for the end of the transform phase and commits, or cleans
// up after a failure.
func (c *Coordinator) drive(ctx context.Context) (*Manifest, error) {
	phase, err := c.wait(ctx)
	if err != nil {
		c.mu.Lock()
		c.fail(fmt.Errorf("interrupted: %w", err))
		c.mu.Unlock()
	}
	if phase == PhaseCommit && err == nil {
		m, err := c.commit(ctx)
		c.mu.Lock()
		if err != nil {
			c.fail(fmt.Errorf("commit: %w", err))
		} else {
			c.phase = PhaseCommitted
			c.notify()
		}
		c.mu.Unlock()
		if err == nil {
			c.discardStages(context.WithoutCancel(ctx))
			return m, nil
		}
	}
	c.mu.Lock()
	cause := c.err
	c.mu.Unlock()
	c.drain(context.WithoutCancel(ctx))
	c.cleanup(context.WithoutCancel(ctx))
	return nil, cause
}

// wait returns when the job is ready to commit, or has ended.
func (c *Coordinator) wait(ctx context.Context) (Phase, error) {
	for {
		c.mu.Lock()
		p, ch := c.phase, c.changed
		c.mu.Unlock()
		if p == PhaseCommit || p == PhaseCommitted || p == PhaseFailed {
			return p, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return p, ctx.Err()
		}
	}
}

// expireEvery expires silent workers' leases every period until ctx ends.
func (c *Coordinator) expireEvery(ctx context.Context, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			c.expire()
		case <-ctx.Done():
			return
		}
	}
}

// reportProgress calls the Progress option every ProgressEvery, and once
// more when done is closed; it stops at once when ctx ends.
func (c *Coordinator) reportProgress(ctx context.Context, done <-chan struct{}) {
	every := c.opts.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.opts.Progress(c.snapshot())
		case <-done:
			c.opts.Progress(c.snapshot())
			return
		case <-ctx.Done():
			return
		}
	}
}

// drain waits, at most one lease period, until no worker is running a
// task, so that no part is written after the cleanup.
func (c *Coordinator) drain(ctx context.Context) {
	deadline := time.NewTimer(c.opts.LeaseTTL)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		busy := false
		now := c.opts.Now()
		for _, w := range c.workers {
			if len(w.tasks) > 0 && !w.gone && now.Sub(w.lastSeen) < c.opts.LeaseTTL {
				busy = true
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if !busy {
			return
		}
		select {
		case <-ch:
		case <-time.After(c.opts.Heartbeat):
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
