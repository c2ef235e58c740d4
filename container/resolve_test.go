package container

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var errNoHost = errors.New("no such host")

// flakyLookup fails the first n calls, then resolves.
func flakyLookup(n int, calls *int) func(context.Context, string) ([]string, error) {
	return func(_ context.Context, host string) ([]string, error) {
		*calls++
		if *calls <= n {
			return nil, errNoHost
		}
		return []string{"10.0.0.2"}, nil
	}
}

func TestResolveHostRetries(t *testing.T) {
	calls := 0
	start := time.Now()
	addrs, err := ResolveHost(context.Background(), "algo-2", flakyLookup(3, &calls), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0] != "10.0.0.2" || calls != 4 {
		t.Errorf("addrs %q after %d calls; want [10.0.0.2] after 4", addrs, calls)
	}
	// Three waits: 100ms, 200ms, 400ms.
	if d := time.Since(start); d < 700*time.Millisecond || d > 5*time.Second {
		t.Errorf("took %s; the backoff should sum to 700ms", d)
	}
}

func TestResolveHostEmptyAnswerRetried(t *testing.T) {
	calls := 0
	lookup := func(context.Context, string) ([]string, error) {
		calls++
		if calls == 1 {
			return nil, nil
		}
		return []string{"10.0.0.3"}, nil
	}
	if addrs, err := ResolveHost(context.Background(), "algo-3", lookup, time.Second); err != nil || len(addrs) != 1 {
		t.Errorf("ResolveHost = %q, %v", addrs, err)
	}
}

func TestResolveHostTimeout(t *testing.T) {
	calls := 0
	start := time.Now()
	_, err := ResolveHost(context.Background(), "algo-9", flakyLookup(1<<30, &calls), 350*time.Millisecond)
	if !errors.Is(err, errNoHost) {
		t.Fatalf("error %v does not wrap the lookup error", err)
	}
	if !strings.Contains(err.Error(), "algo-9") || !strings.Contains(err.Error(), "attempts") {
		t.Errorf("error %q should name the host and the attempts", err)
	}
	if d := time.Since(start); d < 350*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %s, want about 350ms", d)
	}
	// 0, 100, 300ms, then the deadline at 350ms: 4 attempts.
	if calls < 3 || calls > 5 {
		t.Errorf("%d attempts in 350ms", calls)
	}
}

func TestResolveHostSingleAttempt(t *testing.T) {
	calls := 0
	if _, err := ResolveHost(context.Background(), "algo-2", flakyLookup(1, &calls), 0); !errors.Is(err, errNoHost) || calls != 1 {
		t.Errorf("timeout 0: err %v after %d calls, want one failed attempt", err, calls)
	}
}

func TestResolveHostCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	lookup := func(context.Context, string) ([]string, error) {
		calls++
		if calls == 2 {
			cancel()
		}
		return nil, errNoHost
	}
	start := time.Now()
	_, err := ResolveHost(ctx, "algo-2", lookup, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %s to take effect", d)
	}
}

func TestResolveHostRealResolver(t *testing.T) {
	addrs, err := ResolveHost(context.Background(), "localhost", nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) == 0 {
		t.Fatal("localhost has no addresses")
	}
	if _, err := ResolveHost(context.Background(), "", nil, time.Second); err == nil {
		t.Error("empty host name accepted")
	}
}
