package pipeline

import "errors"

// An invalid row under PolicyError fails the job, and the row reported is
// the first invalid row of the input in file order (splits are numbered in
// file order), whichever worker found what first:
//
//   - The first report of an invalid row, in split k, does not fail the job
//     at once. Splits after k are no longer handed out; a report of an
//     invalid row in an earlier split replaces it.
//   - In the transform phase every column of a row is validated, so the job
//     fails when every split before k is done.
//   - The fit phase parses only what the fit needs, so a split before k
//     that passed it may still hold a bad number: those splits are run
//     again with every column validated (taskID.Validate), and the job
//     fails when each of them has passed that check (or the earliest
//     failure is known).
//
// A worker validates its own split up to its first invalid row, so the
// error of the lowest failing split is the first of the input.

// badRow is the earliest invalid row reported so far.
type badRow struct {
	split int
	err   string
}

// invalidRow records an invalid row that t's attempt reported; mu must
// be held.
func (c *Coordinator) invalidRow(t *taskState, req *reportRequest) {
	c.log.Info("invalid row; checking the splits before it", "task", req.Task.String(), "worker", req.Worker, "error", req.Error)
	c.ended(t, attemptFailed)
	t.state = done
	if c.bad == nil || t.task.Split < c.bad.split {
		c.bad = &badRow{split: t.task.Split, err: req.Error}
	}
	c.settleInvalidRow()
}

// settleInvalidRow fails the job with the earliest invalid row once every
// split before it is known to be valid, and otherwise queues those that
// still need a check; mu must be held.
func (c *Coordinator) settleInvalidRow() {
	waiting := false
	for _, t := range c.tasks[:c.bad.split] {
		switch {
		case t.state == done && (t.task.Phase == PhaseTransform || t.task.Validate):
		case t.state == done:
			// Fitted without every column checked: check them now.
			t.task.Validate = true
			c.requeue(t)
			waiting = true
		case t.state == pending:
			t.task.Validate = t.task.Phase == PhaseFit
			waiting = true
		default:
			// Leased: if it was leased without the check, it is
			// queued again with it when it is done.
			waiting = true
		}
	}
	if !waiting {
		c.log.Error("data error; the job fails", "split", c.bad.split, "error", c.bad.err)
		c.fail(errors.New(c.bad.err))
		return
	}
	c.notify()
}

// needed reports whether split i still matters: not after an invalid row.
func (c *Coordinator) needed(i int) bool {
	return c.bad == nil || i < c.bad.split
}
