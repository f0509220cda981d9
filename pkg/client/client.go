package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// Client is a leader-aware client of one Loghouse cluster. It is safe for
// concurrent use. Close it to end its background resolution and close its
// connections.
type Client struct {
	cfg      Config
	logger   hclog.Logger
	dialOpts []grpc.DialOption

	// ctx ends when Close begins; it bounds the background resolution.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	conns     map[string]*conn     // by server address
	servers   []*loghousev1.Server // as last resolved; never modified in place
	leader    string               // the leader's address; "" if unknown
	rr        uint64               // round-robin position of reads
	resolving *flight              // the resolution under way, if any

	closeOnce sync.Once
	closeErr  error
}

// conn is the connection to one server address.
type conn struct {
	addr string
	cc   *grpc.ClientConn
	log  loghousev1.LogClient
	// users counts the calls using the connection and stale marks an
	// address that is no longer a server or seed: the connection is closed
	// when both say so. Guarded by Client.mu.
	users int
	stale bool
}

// New checks cfg, asks the seeds for the cluster's servers (bounded by
// ctx) and starts the background resolution. It fails if no seed answers.
func New(ctx context.Context, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = cfg.InitialBackoff, cfg.MaxBackoff
	c := &Client{
		cfg:    cfg,
		logger: cfg.Logger,
		dialOpts: append([]grpc.DialOption{
			grpc.WithTransportCredentials(credentials.NewTLS(cfg.TLS)),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: cfg.ConnectTimeout}),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(Codec{})),
		}, cfg.DialOptions...),
		conns: make(map[string]*conn),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.resolve(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	if cfg.ResolveInterval > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.resolveLoop()
		}()
	}
	return c, nil
}

// Close stops the background resolution, waits for it, and closes every
// connection; calls still running fail. Later calls return ErrClosed.
// Close is idempotent and returns every error joined.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		conns := c.conns
		c.conns = nil
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		var errs []error
		for _, cn := range conns {
			if err := cn.cc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("client: close connection to %s: %w", cn.addr, err))
			}
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// Leader returns the leader's RPC address as the Client last learnt it, or
// "" if it knows none.
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// acquire returns the connection to addr, made if needed, for one call;
// release it after.
func (c *Client) acquire(addr string) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	cn := c.conns[addr]
	if cn == nil {
		// passthrough: this connection is to this one address; the
		// dialer resolves a host name.
		cc, err := grpc.NewClient("passthrough:///"+addr, c.dialOpts...)
		if err != nil {
			return nil, fmt.Errorf("client: connection to %s: %w", addr, err)
		}
		cn = &conn{addr: addr, cc: cc, log: loghousev1.NewLogClient(cc)}
		c.conns[addr] = cn
	}
	cn.users++
	return cn, nil
}

// release ends a call's use of cn, closing it if it is stale and unused.
func (c *Client) release(cn *conn) {
	c.mu.Lock()
	cn.users--
	drop := cn.stale && cn.users == 0 && c.conns[cn.addr] == cn
	if drop {
		delete(c.conns, cn.addr)
	}
	c.mu.Unlock()
	if drop {
		c.closeConn(cn)
	}
}

func (c *Client) closeConn(cn *conn) {
	if err := cn.cc.Close(); err != nil {
		c.logger.Debug("closing a connection", "addr", cn.addr, "error", err)
	}
}

// setLeader records the leader a server named.
func (c *Client) setLeader(addr string) {
	c.mu.Lock()
	old := c.leader
	c.leader = addr
	c.mu.Unlock()
	if old != addr {
		c.logger.Info("leader changed", "from", old, "to", addr, "source", "server hint")
	}
}

// forgetLeader drops addr as the leader, if it still is, so that the next
// write resolves the cluster first.
func (c *Client) forgetLeader(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == addr {
		c.leader = ""
	}
}

// routeKind says where a call goes.
type routeKind int

const (
	// toLeader: the leader, resolving the cluster if none is known.
	toLeader routeKind = iota
	// toReader: a follower in turn, or the leader with ReadFromLeader.
	toReader
	// toAny: the leader if one is known, else as toReader.
	toAny
	// toAddr: route.addr only.
	toAddr
)

type route struct {
	kind routeKind
	addr string // for toAddr
}

// pick chooses the server for the next attempt of a call, skipping those
// in excluded (which it empties when it would skip them all).
func (c *Client) pick(ctx context.Context, r route, excluded map[string]bool) (string, error) {
	switch r.kind {
	case toAddr:
		return r.addr, nil
	case toLeader:
		return c.leaderAddr(ctx)
	case toAny:
		if l := c.Leader(); l != "" {
			return l, nil
		}
	case toReader:
		if c.cfg.ReadFromLeader {
			return c.leaderAddr(ctx)
		}
	}
	if addr := c.reader(excluded); addr != "" {
		return addr, nil
	}
	clear(excluded)
	if addr := c.reader(excluded); addr != "" {
		return addr, nil
	}
	return c.leaderAddr(ctx)
}

// leaderAddr returns the leader's address, resolving the cluster if none
// is known.
func (c *Client) leaderAddr(ctx context.Context) (string, error) {
	if l := c.Leader(); l != "" {
		return l, nil
	}
	if err := c.resolve(ctx); err != nil {
		return "", err
	}
	if l := c.Leader(); l != "" {
		return l, nil
	}
	return "", errNoLeader()
}

// reader returns the next follower in turn, not in excluded, preferring
// those whose connection is not failing; the leader if there is no such
// follower; a seed if no server is known; "" if all are excluded.
func (c *Client) reader(excluded map[string]bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []string
	for _, s := range c.servers {
		if s.RpcAddr != c.leader && !s.IsLeader && !excluded[s.RpcAddr] {
			all = append(all, s.RpcAddr)
		}
	}
	if len(all) == 0 {
		switch {
		case c.leader != "" && !excluded[c.leader]:
			all = append(all, c.leader)
		case len(c.servers) == 0:
			for _, s := range c.cfg.Seeds {
				if !excluded[s] {
					all = append(all, s)
				}
			}
		}
	}
	if len(all) == 0 {
		return ""
	}
	healthy := all[:0:0]
	for _, a := range all {
		if cn := c.conns[a]; cn == nil || cn.cc.GetState() != connectivity.TransientFailure {
			healthy = append(healthy, a)
		}
	}
	if len(healthy) > 0 {
		all = healthy
	}
	c.rr++
	return all[c.rr%uint64(len(all))]
}
