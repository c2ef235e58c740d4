package container

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var errBusy = errors.New("busy")

// failing returns a try that fails n times, then succeeds.
func failing(n int, calls *int) func() (bool, error) {
	return func() (bool, error) {
		*calls++
		if *calls <= n {
			return false, errBusy
		}
		return true, nil
	}
}

func TestRetryBackoff(t *testing.T) {
	calls := 0
	start := time.Now()
	err := Retry(context.Background(), Backoff{First: 20 * time.Millisecond, Max: 40 * time.Millisecond, Timeout: 10 * time.Second}, failing(4, &calls))
	if err != nil || calls != 5 {
		t.Fatalf("err %v after %d calls; want success after 5", err, calls)
	}
	// Waits 20, 40, 40, 40ms: doubling, capped at Max.
	if d := time.Since(start); d < 140*time.Millisecond || d > 5*time.Second {
		t.Errorf("took %s; the waits should sum to 140ms", d)
	}
}

func TestRetryDoneWithError(t *testing.T) {
	permanent := errors.New("access denied")
	calls := 0
	err := Retry(context.Background(), Backoff{First: time.Millisecond, Timeout: time.Minute}, func() (bool, error) {
		calls++
		return true, permanent
	})
	if err != permanent || calls != 1 {
		t.Errorf("err %v after %d calls; want the try's own error after 1", err, calls)
	}
}

func TestRetryTimeout(t *testing.T) {
	calls := 0
	start := time.Now()
	err := Retry(context.Background(), Backoff{First: 50 * time.Millisecond, Max: time.Second, Timeout: 200 * time.Millisecond}, failing(1<<30, &calls))
	if !errors.Is(err, errBusy) {
		t.Fatalf("error %v does not wrap the last attempt's", err)
	}
	if !strings.Contains(err.Error(), "gave up after") || !strings.Contains(err.Error(), " attempts") {
		t.Errorf("error %q should give the time and the attempts", err)
	}
	// 0, 50, 150ms, then the deadline at 200ms: 4 attempts.
	if calls < 3 || calls > 5 {
		t.Errorf("%d attempts in 200ms", calls)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %s, want about 200ms", d)
	}
}

func TestRetrySingleAttempt(t *testing.T) {
	for _, timeout := range []time.Duration{0, -time.Second} {
		calls := 0
		err := Retry(context.Background(), Backoff{First: time.Millisecond, Timeout: timeout}, failing(1, &calls))
		if !errors.Is(err, errBusy) || calls != 1 {
			t.Errorf("timeout %s: err %v after %d calls, want one failed attempt", timeout, err, calls)
		}
	}
}

func TestRetryNotDoneWithoutError(t *testing.T) {
	err := Retry(context.Background(), Backoff{First: time.Millisecond}, func() (bool, error) { return false, nil })
	if err == nil || !strings.Contains(err.Error(), "not done") {
		t.Errorf("err %v, want one saying the attempt was not done", err)
	}
}

func TestRetryCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	err := Retry(ctx, Backoff{First: 10 * time.Millisecond, Max: 10 * time.Millisecond, Timeout: time.Minute}, failing(1<<30, &calls))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "last error: busy") {
		t.Fatalf("err = %v, want context.Canceled quoting the last error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %s to take effect", d)
	}

	// Cancelled during an attempt: no wait follows.
	ctx, cancel = context.WithCancel(context.Background())
	calls = 0
	err = Retry(ctx, Backoff{First: time.Hour, Timeout: time.Hour}, func() (bool, error) {
		calls++
		cancel()
		return false, errBusy
	})
	if !errors.Is(err, context.Canceled) || calls != 1 || !strings.Contains(err.Error(), "stopped after 1 attempts") {
		t.Errorf("err %v after %d calls, want a stop after 1 attempt", err, calls)
	}
}
