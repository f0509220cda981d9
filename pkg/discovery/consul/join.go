package consul

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// JoinAddrs lists the gossip addresses (MetaSerfAddr) of the service's
// instances in the catalog, for a node joining the cluster, leaving out
// the node named self. It asks the health endpoint and returns the
// instances whose checks all pass; if none passes it returns every
// instance instead: servers that have not formed a cluster yet report
// critical (no leader), and they must still find each other to form one
// (bootstrap_expect). Instances without MetaSerfAddr are skipped. The
// order is random, so that joiners spread over the servers.
// ErrNoInstances says the catalog had none to offer.
func (c *Client) JoinAddrs(ctx context.Context, service, self string) ([]string, error) {
	if service == "" {
		service = DefaultServiceName
	}
	entries, _, err := c.api.Health().Service(service, "", false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul: list instances of %s: %w", service, err)
	}
	var passing, all []string
	for _, e := range entries {
		if e.Service == nil || e.Service.Meta[MetaNodeName] == self && self != "" {
			continue
		}
		addr := e.Service.Meta[MetaSerfAddr]
		if _, _, err := net.SplitHostPort(addr); err != nil {
			continue
		}
		all = append(all, addr)
		if e.Checks.AggregatedStatus() == api.HealthPassing {
			passing = append(passing, addr)
		}
	}
	out := passing
	if len(out) == 0 {
		out = all
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no instance of %s with a %s", ErrNoInstances, service, MetaSerfAddr)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

// JoinFunc joins the gossip pool through any of addrs and says how many
// answered (membership.Membership.Join).
type JoinFunc func(addrs ...string) (int, error)

// RetryJoin is the join loop for retry_join through Consul: it lists the
// servers with JoinAddrs and joins them, until a join succeeds (it returns
// nil), attempts reach maxAttempts (zero: no limit), or ctx ends. Between
// attempts it waits with jittered back-off doubling from minWait to
// maxWait. A lone first server finds nobody and keeps trying, which is
// harmless: the others join it.
func (c *Client) RetryJoin(ctx context.Context, service, self string, join JoinFunc, minWait, maxWait time.Duration, maxAttempts int, logger hclog.Logger) error {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if minWait <= 0 || maxWait < minWait {
		return fmt.Errorf("%w: join back-off %s to %s", ErrInvalidConfig, minWait, maxWait)
	}
	wait := minWait
	for attempt := 1; ; attempt++ {
		addrs, err := c.JoinAddrs(ctx, service, self)
		if err == nil {
			var n int
			if n, err = join(addrs...); err == nil {
				logger.Info("joined the cluster through Consul", "answered", n, "of", len(addrs), "attempt", attempt)
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("consul: join through the catalog: %w", ctx.Err())
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			return fmt.Errorf("consul: join through the catalog gave up after %d attempts: %w", attempt, err)
		}
		d := wait + rand.N(wait/4+1)
		logger.Warn("cannot join through Consul yet; retrying", "attempt", attempt, "in", d, "error", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("consul: join through the catalog: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}
