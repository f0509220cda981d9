package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// rpc is one attempt of a unary call; it passes opts on to the gRPC call.
type rpc func(ctx context.Context, lc loghousev1.LogClient, opts ...grpc.CallOption) error

// call runs fn on the servers r chooses until it succeeds, fails in a way
// that is not worth retrying, MaxAttempts attempts have failed or ctx ends.
// write marks a call that stores records: see classify. After a failure it
// follows the leader the server named, or else tries another server (a
// read) or resolves the cluster again (a write), after a back-off; a
// redirect to a named leader is tried at once (but not two in a row, so
// that servers with stale hints cannot bounce a call between them without
// a pause).
func (c *Client) call(ctx context.Context, method string, r route, write bool, fn rpc) error {
	var lastErr error
	excluded := make(map[string]bool)
	redirect := false
	for attempt := 1; ; attempt++ {
		redirected := redirect
		redirect = false
		addr, err := c.pick(ctx, r, excluded)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			lastErr = err
		} else {
			f, err := c.attempt(ctx, addr, write, fn)
			if err == nil {
				return nil
			}
			switch f.verdict {
			case final:
				return err
			case unknown:
				c.logger.Warn("write outcome unknown; not retried", "method", method, "addr", addr, "error", err)
				return indeterminate(err)
			}
			lastErr = err
			switch {
			case f.leader != "" && f.leader != addr:
				c.setLeader(f.leader)
				redirect = !redirected && (r.kind == toLeader || r.kind == toAny || c.cfg.ReadFromLeader)
				excluded[addr] = true
			default:
				excluded[addr] = true
				c.forgetLeader(addr)
			}
			c.logger.Debug("attempt failed; retrying", "method", method, "addr", addr, "attempt", attempt, "leader_hint", f.leader, "error", err)
		}
		if r.kind == toAddr || attempt >= c.cfg.MaxAttempts || ctx.Err() != nil {
			return lastErr
		}
		if !redirect {
			if err := sleep(ctx, c.backoff(attempt)); err != nil {
				return lastErr
			}
		}
	}
}

// attempt makes one call of fn to addr and classifies its failure.
func (c *Client) attempt(ctx context.Context, addr string, write bool, fn rpc) (failure, error) {
	cn, err := c.acquire(addr)
	if err != nil {
		return failure{verdict: final}, err
	}
	defer c.release(cn)
	var (
		p       peer.Peer
		trailer metadata.MD
	)
	err = fn(ctx, cn.log, grpc.Peer(&p), grpc.Trailer(&trailer))
	if err == nil {
		return failure{}, nil
	}
	return classify(err, write, p.Addr != nil, trailer), err
}

// backoff is the wait before retry n (from 1): InitialBackoff doubled n-1
// times, at most MaxBackoff, drawn at random from its upper half.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MaxBackoff
	if shift := n - 1; shift < 30 && c.cfg.InitialBackoff<<shift < d {
		d = c.cfg.InitialBackoff << shift
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits for d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
