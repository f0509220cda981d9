package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/auth"
	"github.com/loghouse/loghouse/pkg/replication"
	"github.com/loghouse/loghouse/pkg/server"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// logWriter sends hclog output to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func testLogger(t testing.TB, name string) hclog.Logger {
	t.Helper()
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: logWriter{t}, Level: hclog.Info})
}

// pki is a test CA that signs server and client certificates.
type pki struct {
	ca tlsutil.KeyPair
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, err := tlsutil.CreateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca: ca}
}

func (p *pki) store(t testing.TB, kind tlsutil.Kind, name string) *tlsutil.Store {
	t.Helper()
	pair, err := tlsutil.CreateCert(p.ca, tlsutil.CertOptions{Kind: kind, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	st, err := tlsutil.NewStoreFromPEM(p.ca.CertPEM, pair)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// clientTLS is the mutual TLS config of the client identity "root", whom
// the default policy allows everything.
func (p *pki) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	return p.store(t, tlsutil.ClientCert, "root").ClientConfig(tlsutil.ServerRole)
}

// calls counts the calls a node's gRPC server received, by full method
// name, and the streams open now.
type calls struct {
	mu     sync.Mutex
	total  map[string]int
	active map[string]int
}

func newCalls() *calls {
	return &calls{total: map[string]int{}, active: map[string]int{}}
}

func (c *calls) count(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total[method]
}

func (c *calls) open(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active[method]
}

func (c *calls) options() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			c.mu.Lock()
			c.total[info.FullMethod]++
			c.mu.Unlock()
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			c.mu.Lock()
			c.total[info.FullMethod]++
			c.active[info.FullMethod]++
			c.mu.Unlock()
			defer func() {
				c.mu.Lock()
				c.active[info.FullMethod]--
				c.mu.Unlock()
			}()
			return h(srv, ss)
		}),
	}
}

// tnode is one node of an in-process cluster: raft and gRPC sharing a
// port through the mux, as in production.
type tnode struct {
	id    string
	addr  string
	node  *replication.Node
	srv   *server.Server
	gs    *grpc.Server
	mux   *replication.Mux
	calls *calls

	served  chan struct{}
	stopped bool
	// hard makes stopNode drop client connections at once (as kill -9
	// does) instead of a graceful stop (GOAWAY, running calls finish).
	hard bool
}

type tcluster struct {
	t     testing.TB
	pki   *pki
	nodes []*tnode
}

// clusterOpts tweak a test cluster.
type clusterOpts struct {
	// commitTimeout is raft's CommitTimeout: how long followers may wait
	// to learn that an entry is committed. Default: 5ms.
	commitTimeout time.Duration
	// maxRecordBytes is the servers' MaxRecordBytes. Default: the
	// server's default.
	maxRecordBytes int
	// intercept, if set, runs around every unary call of every node,
	// after the call is counted.
	intercept grpc.UnaryServerInterceptor
}

// newCluster starts n nodes on 127.0.0.1 with mutual TLS, bootstrapped
// statically by node0, and returns once a leader has committed its first
// entry.
func newCluster(t testing.TB, n int, o clusterOpts) *tcluster {
	t.Helper()
	dir := t.TempDir()
	authz, err := auth.New("", "", testLogger(t, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	c := &tcluster{t: t, pki: newPKI(t)}
	lns := make([]net.Listener, n)
	var peers []replication.Peer
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			peers = append(peers, replication.Peer{ID: fmt.Sprintf("node%d", i), Addr: lns[i].Addr().String()})
		}
	}
	if o.commitTimeout == 0 {
		o.commitTimeout = 5 * time.Millisecond
	}
	timing := replication.RaftTiming{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      o.commitTimeout,
		SnapshotThreshold:  1 << 62,
		SnapshotInterval:   time.Hour,
		TrailingLogs:       16,
	}
	t.Cleanup(c.stop)
	for i, ln := range lns {
		id := fmt.Sprintf("node%d", i)
		logger := testLogger(t, id)
		certs := c.pki.store(t, tlsutil.ServerCert, id)
		tn := &tnode{id: id, addr: ln.Addr().String(), calls: newCalls(), served: make(chan struct{})}
		tn.mux = replication.NewMux(ln, 2*time.Second, logger.Named("mux"))
		c.nodes = append(c.nodes, tn)
		tn.node, err = replication.NewNode(replication.NodeConfig{
			ID:               id,
			DataDir:          filepath.Join(dir, id),
			Advertise:        tn.addr,
			RaftListener:     tn.mux.RaftListener(),
			TLS:              certs,
			Bootstrap:        i == 0,
			Peers:            peers,
			Raft:             timing,
			HandshakeTimeout: 2 * time.Second,
			Logger:           logger,
		})
		if err != nil {
			t.Fatal(err)
		}
		if tn.srv, err = server.New(server.Config{Node: tn.node, Authorizer: authz, Logger: logger.Named("server"), MaxRecordBytes: o.maxRecordBytes}); err != nil {
			t.Fatal(err)
		}
		opts := append(tn.srv.GRPCServerOptions(), tn.calls.options()...)
		if o.intercept != nil {
			opts = append(opts, grpc.ChainUnaryInterceptor(o.intercept))
		}
		tn.gs = grpc.NewServer(append(opts, grpc.Creds(credentials.NewTLS(certs.ServerConfig())))...)
		tn.srv.Register(tn.gs)
		go func() {
			defer close(tn.served)
			if err := tn.gs.Serve(tn.mux.GRPCListener()); err != nil && !errors.Is(err, replication.ErrMuxClosed) {
				t.Logf("%s: serve: %v", id, err)
			}
		}()
	}
	if err := c.leader(t).node.Raft.Barrier(10 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *tcluster) stop() {
	for _, n := range c.nodes {
		c.stopNode(n)
	}
}

// stopNode shuts n down as the agent does: its service (ending its
// streams), gRPC (gracefully unless n.hard), raft and the shared port.
func (c *tcluster) stopNode(n *tnode) {
	if n.stopped {
		return
	}
	n.stopped = true
	t := c.t
	if n.srv != nil {
		if err := n.srv.Close(); err != nil {
			t.Errorf("%s: close server: %v", n.id, err)
		}
		if n.hard {
			n.gs.Stop()
		} else {
			n.gs.GracefulStop()
		}
		<-n.served
	}
	if n.node != nil {
		if err := n.node.Close(); err != nil {
			t.Errorf("%s: close node: %v", n.id, err)
		}
	}
	if err := n.mux.Close(); err != nil {
		t.Errorf("%s: close mux: %v", n.id, err)
	}
	if n.node != nil {
		n.node.WaitStreams()
	}
}

// leader waits for a running node to lead and returns it.
func (c *tcluster) leader(t testing.TB) *tnode {
	t.Helper()
	var l *tnode
	waitFor(t, "a leader", func() bool {
		for _, n := range c.nodes {
			if !n.stopped && n.node.Raft.State() == raft.Leader {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// followers returns the running nodes other than the leader, once each
// knows the leader.
func (c *tcluster) followers(t testing.TB) []*tnode {
	t.Helper()
	l := c.leader(t)
	var fs []*tnode
	waitFor(t, "followers that know the leader", func() bool {
		fs = fs[:0]
		for _, n := range c.nodes {
			if n == l || n.stopped {
				continue
			}
			if addr, _ := n.node.Leader(); addr != l.addr {
				return false
			}
			fs = append(fs, n)
		}
		return true
	})
	return fs
}

func (c *tcluster) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// client returns a Client of the cluster seeded with seeds, closed when the
// test ends; change adjusts its Config.
func (c *tcluster) client(t testing.TB, seeds []string, change func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Seeds:          seeds,
		TLS:            c.pki.clientTLS(t),
		Logger:         testLogger(t, "client"),
		InitialBackoff: 10 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
		MaxAttempts:    200,
	}
	if change != nil {
		change(&cfg)
	}
	cl, err := New(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return cl
}

// raw returns a plain gRPC client of one node, closed when the test ends.
func (c *tcluster) raw(t testing.TB, n *tnode) loghousev1.LogClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+n.addr, grpc.WithTransportCredentials(credentials.NewTLS(c.pki.clientTLS(t))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cc.Close(); err != nil {
			t.Logf("close raw client: %v", err)
		}
	})
	return loghousev1.NewLogClient(cc)
}

// waitFor polls cond until it holds, failing the test after 20 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, not hoping
	}
}

// testCtx returns a context that ends with the test or after 30 seconds.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recs makes n records whose values are prefix-0, prefix-1, ...
func recs(prefix string, n int) []*loghousev1.Record {
	out := make([]*loghousev1.Record, n)
	for i := range out {
		out[i] = &loghousev1.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
	}
	return out
}
