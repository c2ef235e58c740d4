package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Backoff between name lookups in ResolveHost: it starts at
// resolveFirstWait and doubles up to resolveMaxWait.
const (
	resolveFirstWait = 100 * time.Millisecond
	resolveMaxWait   = 2 * time.Second
)

// ResolveHost looks host up until it has at least one address or timeout has
// passed, waiting between attempts with a doubling backoff (100ms up to 2s).
// SageMaker registers the names of a job's instances ("algo-1", "algo-2",
// ...) while the containers start, so a peer's name may not resolve at once.
//
// lookup is the resolver (net.DefaultResolver.LookupHost when nil). A
// timeout <= 0 means a single attempt. The error after the last attempt
// names the host, the time spent and the number of attempts, and wraps the
// last lookup error; a cancelled ctx returns ctx's error wrapped likewise.
func ResolveHost(ctx context.Context, host string, lookup func(context.Context, string) ([]string, error), timeout time.Duration) ([]string, error) {
	if host == "" {
		return nil, errors.New("container: resolve: empty host name")
	}
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	var addrs []string
	err := Retry(ctx, Backoff{First: resolveFirstWait, Max: resolveMaxWait, Timeout: timeout}, func() (bool, error) {
		var err error
		addrs, err = lookup(ctx, host)
		if err == nil && len(addrs) == 0 {
			err = errors.New("no addresses")
		}
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("container: resolve %s: %w", host, err)
	}
	return addrs, nil
}
