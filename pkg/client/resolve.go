package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// flight is one resolution under way; callers that need one meanwhile wait
// for it instead of starting their own.
type flight struct {
	done chan struct{}
	err  error
}

// resolve asks the known servers (the leader first), then the seeds, for
// the cluster's servers with GetServers, and takes the first answer that
// names a leader, or else the first answer. It fails if no server answers
// before ctx ends.
func (c *Client) resolve(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if f := c.resolving; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.resolving = f
	addrs := c.resolveOrderLocked()
	c.mu.Unlock()
	addrs = dedup(append(addrs, c.lookupDNSSeeds(ctx)...))

	f.err = c.resolveFrom(ctx, addrs)
	c.mu.Lock()
	c.resolving = nil
	c.mu.Unlock()
	close(f.done)
	return f.err
}

// resolveOrderLocked lists the addresses to ask: the leader, the other
// servers, the seeds; those whose connection is failing go last.
func (c *Client) resolveOrderLocked() []string {
	addrs := []string{c.leader}
	for _, s := range c.servers {
		addrs = append(addrs, s.RpcAddr)
	}
	addrs = dedup(append(addrs, c.cfg.Seeds...))
	failing := func(a string) bool {
		cn := c.conns[a]
		return cn != nil && cn.cc.GetState() == connectivity.TransientFailure
	}
	slices.SortStableFunc(addrs, func(a, b string) int {
		switch fa, fb := failing(a), failing(b); {
		case fa == fb:
			return 0
		case fa:
			return 1
		}
		return -1
	})
	return addrs
}

func (c *Client) resolveFrom(ctx context.Context, addrs []string) error {
	if len(addrs) == 0 {
		return status.Error(codes.Unavailable, "client: no server to ask: none is known, and the DNS seeds name none")
	}
	var (
		lastErr  error
		fallback *loghousev1.GetServersResponse
		from     string
	)
	for _, addr := range addrs {
		if ctx.Err() != nil {
			break
		}
		resp, err := c.getServers(ctx, addr)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return err
			}
			c.logger.Debug("no servers from", "addr", addr, "error", err)
			lastErr = err
			continue
		}
		if len(resp.Servers) == 0 {
			lastErr = fmt.Errorf("client: %s knows no servers (is the cluster bootstrapped?)", addr)
			continue
		}
		for _, s := range resp.Servers {
			if s.IsLeader {
				c.apply(resp, addr)
				return nil
			}
		}
		if fallback == nil {
			fallback, from = resp, addr
		}
	}
	if fallback != nil {
		c.apply(fallback, from)
		return nil
	}
	if lastErr == nil {
		lastErr = status.FromContextError(ctx.Err()).Err()
	}
	return fmt.Errorf("client: find the cluster's servers (asked %s): %w", strings.Join(addrs, ", "), lastErr)
}

// getServers asks one server, for at most ConnectTimeout.
func (c *Client) getServers(ctx context.Context, addr string) (*loghousev1.GetServersResponse, error) {
	cn, err := c.acquire(addr)
	if err != nil {
		return nil, err
	}
	defer c.release(cn)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	return cn.log.GetServers(ctx, &loghousev1.GetServersRequest{})
}

// apply makes resp, from addr, the known cluster, and closes the unused
// connections to addresses that are no longer in it.
func (c *Client) apply(resp *loghousev1.GetServersResponse, from string) {
	servers := make([]*loghousev1.Server, len(resp.Servers))
	leader := ""
	keep := make(map[string]bool, len(resp.Servers)+len(c.cfg.Seeds))
	for i, s := range resp.Servers {
		servers[i] = proto.Clone(s).(*loghousev1.Server)
		keep[s.RpcAddr] = true
		if s.IsLeader {
			leader = s.RpcAddr
		}
	}
	for _, s := range c.cfg.Seeds {
		keep[s] = true
	}
	var drop []*conn
	c.mu.Lock()
	old := c.leader
	c.servers, c.leader = servers, leader
	for addr, cn := range c.conns {
		cn.stale = !keep[addr]
		if cn.stale && cn.users == 0 {
			delete(c.conns, addr)
			drop = append(drop, cn)
		}
	}
	c.mu.Unlock()
	for _, cn := range drop {
		c.closeConn(cn)
	}
	if old != leader {
		c.logger.Info("leader changed", "from", old, "to", leader, "source", from)
	}
}

// resolveLoop resolves the cluster every ResolveInterval until Close.
func (c *Client) resolveLoop() {
	t := time.NewTicker(c.cfg.ResolveInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ResolveInterval)
		if err := c.resolve(ctx); err != nil && c.ctx.Err() == nil {
			c.logger.Warn("cannot refresh the cluster's servers", "error", err)
		}
		cancel()
	}
}
