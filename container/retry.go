package container

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backoff says how Retry waits between attempts: First after the first
// failed attempt, then twice the previous wait up to Max. No wait reaches
// past Timeout, counted from the first attempt; a Timeout <= 0 means a
// single attempt. First must be positive.
type Backoff struct {
	First, Max, Timeout time.Duration
}

// errNotDone stands for the error of an attempt that reported neither done
// nor an error.
var errNotDone = errors.New("not done")

// Retry calls try until try reports done, b.Timeout has passed or ctx ends,
// waiting between attempts as b says. try returns done and an error: done
// ends Retry with that error (nil for success, else a failure not worth
// retrying); not done asks for another attempt, the error saying why.
//
// Once the time is up, Retry returns an error that gives the time spent and
// the number of attempts and wraps the last attempt's error. When ctx ends,
// it returns one that gives the number of attempts, wraps ctx's error and
// quotes the last attempt's. Callers put their subject in front.
func Retry(ctx context.Context, b Backoff, try func() (done bool, err error)) error {
	start := time.Now()
	deadline := start.Add(b.Timeout)
	wait := b.First
	for attempt := 1; ; attempt++ {
		done, err := try()
		if done {
			return err
		}
		if err == nil {
			err = errNotDone
		}
		if ctx.Err() != nil {
			return stopped(ctx, attempt, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("gave up after %s and %d attempts: %w", time.Since(start).Round(time.Millisecond), attempt, err)
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return stopped(ctx, attempt, err)
		case <-t.C:
		}
		wait = max(min(2*wait, b.Max), b.First)
	}
}

func stopped(ctx context.Context, attempts int, last error) error {
	return fmt.Errorf("stopped after %d attempts: %w (last error: %v)", attempts, ctx.Err(), last)
}
