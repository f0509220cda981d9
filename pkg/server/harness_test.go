package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
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
	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/replication"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// testPolicy: root may do everything, reader may only consume, writer may
// only produce; nobody and the nodes' own certificates get nothing.
const testPolicy = `p, root, *
p, reader, consume
p, writer, produce
`

// logWriter sends hclog output to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func testLogger(t testing.TB, name string) hclog.Logger {
	t.Helper()
	level := hclog.Info
	if _, ok := t.(*testing.B); ok {
		level = hclog.Warn
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: logWriter{t}, Level: level})
}

var (
	caOnce sync.Once
	testCA tlsutil.KeyPair
	caErr  error

	certMu    sync.Mutex
	certCache = map[string]tlsutil.KeyPair{}
)

// keyPair returns a certificate of kind for name, signed by the tests' CA.
func keyPair(t testing.TB, kind tlsutil.Kind, name string) tlsutil.KeyPair {
	t.Helper()
	caOnce.Do(func() { testCA, caErr = tlsutil.CreateCA(tlsutil.CAOptions{}) })
	if caErr != nil {
		t.Fatal(caErr)
	}
	certMu.Lock()
	defer certMu.Unlock()
	key := kind.String() + "/" + name
	if p, ok := certCache[key]; ok {
		return p
	}
	p, err := tlsutil.CreateCert(testCA, tlsutil.CertOptions{Kind: kind, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	certCache[key] = p
	return p
}

func store(t testing.TB, kind tlsutil.Kind, name string) *tlsutil.Store {
	t.Helper()
	st, err := tlsutil.NewStoreFromPEM(testCA.CertPEM, keyPair(t, kind, name))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tnode is one node of an in-process cluster: a listener shared through
// the mux by raft and gRPC, as in production.
type tnode struct {
	id   string
	addr string
	dir  string
	node *replication.Node
	srv  *Server
	gs   *grpc.Server
	mux  *replication.Mux
	tls  *tlsutil.Store

	served  chan struct{}
	stopped bool
}

type tcluster struct {
	t     testing.TB
	nodes []*tnode
	authz *auth.Authorizer
}

// clusterOpts tweak a test cluster.
type clusterOpts struct {
	server func(*Config)     // server config changes
	log    commitlog.Options // commit log options
	// forward lets followers forward writes to the leader (Config.TLS).
	forward bool
}

// newCluster starts n nodes over 127.0.0.1 with mutual TLS; node0
// bootstraps the cluster. It returns once a leader is elected.
func newCluster(t testing.TB, n int, o clusterOpts) *tcluster {
	t.Helper()
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.csv")
	if err := os.WriteFile(policy, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	authz, err := auth.New("", policy, testLogger(t, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	c := &tcluster{t: t, authz: authz}
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
	timing := replication.RaftTiming{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotThreshold:  1 << 62,
		SnapshotInterval:   time.Hour,
		TrailingLogs:       16,
	}
	if n == 1 {
		// A lone voter cannot lose its leadership; elect it quickly.
		timing.HeartbeatTimeout, timing.ElectionTimeout, timing.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	}
	t.Cleanup(c.stop)
	for i, ln := range lns {
		id := fmt.Sprintf("node%d", i)
		logger := testLogger(t, id)
		tn := &tnode{id: id, addr: ln.Addr().String(), dir: filepath.Join(dir, id), tls: store(t, tlsutil.ServerCert, id), served: make(chan struct{})}
		tn.mux = replication.NewMux(ln, 2*time.Second, logger.Named("mux"))
		c.nodes = append(c.nodes, tn)
		tn.node, err = replication.NewNode(replication.NodeConfig{
			ID:               id,
			DataDir:          tn.dir,
			Advertise:        tn.addr,
			RaftListener:     tn.mux.RaftListener(),
			TLS:              tn.tls,
			Bootstrap:        i == 0,
			Peers:            peers,
			Log:              o.log,
			Raft:             timing,
			HandshakeTimeout: 2 * time.Second,
			Logger:           logger,
		})
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Node: tn.node, Authorizer: authz, Logger: logger.Named("server")}
		if o.forward {
			cfg.TLS = tn.tls
		}
		if o.server != nil {
			o.server(&cfg)
		}
		if tn.srv, err = New(cfg); err != nil {
			t.Fatal(err)
		}
		tn.gs = grpc.NewServer(append(tn.srv.GRPCServerOptions(), grpc.Creds(credentials.NewTLS(tn.tls.ServerConfig())))...)
		tn.srv.Register(tn.gs)
		go func() {
			defer close(tn.served)
			if err := tn.gs.Serve(tn.mux.GRPCListener()); err != nil && !errors.Is(err, replication.ErrMuxClosed) {
				t.Logf("%s: serve: %v", id, err)
			}
		}()
	}
	// The new leader's first entry (a no-op) is committed before any test
	// counts entries.
	if err := c.leader(t).node.Raft.Barrier(10 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	return c
}

// stop shuts every node down: servers first, then gRPC, raft and the mux.
func (c *tcluster) stop() {
	for _, n := range c.nodes {
		c.stopNode(n)
	}
}

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
		n.gs.Stop()
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

// leader waits for a leader and returns it.
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

// follower returns a node that is not the leader and knows the leader.
func (c *tcluster) follower(t testing.TB) *tnode {
	t.Helper()
	l := c.leader(t)
	var f *tnode
	waitFor(t, "a follower that knows the leader", func() bool {
		for _, n := range c.nodes {
			if n != l && !n.stopped {
				if addr, _ := n.node.Leader(); addr == l.addr {
					f = n
					return true
				}
			}
		}
		return false
	})
	return f
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

// dial connects to n as identity: a client certificate's CN, "server:<name>"
// for a server certificate used as a client, or "" for no certificate.
func dial(t testing.TB, n *tnode, identity string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	return dialAddr(t, n.addr, clientTLS(t, identity), opts...)
}

func clientTLS(t testing.TB, identity string) *tls.Config {
	t.Helper()
	switch {
	case identity == "":
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(testCA.CertPEM) {
			t.Fatal("bad CA PEM")
		}
		return &tls.Config{RootCAs: pool, ServerName: tlsutil.ServerRole, MinVersion: tls.VersionTLS12}
	case len(identity) > 7 && identity[:7] == "server:":
		return store(t, tlsutil.ServerCert, identity[7:]).ClientConfig(tlsutil.ServerRole)
	}
	return store(t, tlsutil.ClientCert, identity).ClientConfig(tlsutil.ServerRole)
}

func dialAddr(t testing.TB, addr string, cfg *tls.Config, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	creds := grpc.WithTransportCredentials(credentials.NewTLS(cfg))
	conn, err := grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{creds}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Logf("close client: %v", err)
		}
	})
	return conn
}

func client(t testing.TB, n *tnode, identity string) loghousev1.LogClient {
	t.Helper()
	return loghousev1.NewLogClient(dial(t, n, identity))
}

// testCtx returns a context that ends with the test or after 30 seconds.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// values makes n records whose values are prefix-0, prefix-1, ...
func values(prefix string, n, size int) []*loghousev1.Record {
	recs := make([]*loghousev1.Record, n)
	for i := range recs {
		v := fmt.Sprintf("%s-%d", prefix, i)
		if len(v) < size {
			v += string(bytes.Repeat([]byte{'.'}, size-len(v)))
		}
		recs[i] = &loghousev1.Record{Value: []byte(v)}
	}
	return recs
}

// consumeAll reads [from, to) with unary Consume calls.
func consumeAll(t testing.TB, c loghousev1.LogClient, from, to uint64) []*loghousev1.Record {
	t.Helper()
	var out []*loghousev1.Record
	for off := from; off < to; {
		resp, err := c.Consume(testCtx(t), &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: off}})
		if err != nil {
			t.Fatalf("consume at %d: %v", off, err)
		}
		for _, r := range resp.Records {
			if r.Offset != off {
				t.Fatalf("record at %d has offset %d", off, r.Offset)
			}
			off++
		}
		if resp.NextOffset != off {
			t.Fatalf("next_offset %d, want %d", resp.NextOffset, off)
		}
		out = append(out, resp.Records...)
	}
	return out[:min(len(out), int(to-from))]
}
