package replication

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/tlsutil"
	"github.com/loghouse/loghouse/pkg/vfs"
)

// trCerts makes a CA, a server store and a client store.
func trCerts(t *testing.T) (ca tlsutil.KeyPair, server, client *tlsutil.Store) {
	t.Helper()
	ca, err := tlsutil.CreateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(kind tlsutil.Kind, name string) *tlsutil.Store {
		pair, err := tlsutil.CreateCert(ca, tlsutil.CertOptions{Kind: kind, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		s, err := tlsutil.NewStoreFromPEM(ca.CertPEM, pair)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return ca, mk(tlsutil.ServerCert, "node0"), mk(tlsutil.ClientCert, "root")
}

func trMux(t *testing.T, timeout time.Duration) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln, timeout, nil)
	t.Cleanup(func() { m.Close() })
	return m
}

// TestMuxRoutes checks that a silent connection and an unknown byte are
// dropped without holding up others, that a TLS client reaches the gRPC
// listener with its ClientHello intact, and that raft traffic reaches the
// stream layer.
func TestMuxRoutes(t *testing.T) {
	_, server, client := trCerts(t)
	m := trMux(t, 300*time.Millisecond)
	addr := m.Addr().String()

	// A silent connection: the mux must drop it after the timeout.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// An unknown connection type is closed.
	junk, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	if _, err := junk.Write([]byte{'X'}); err != nil {
		t.Fatal(err)
	}
	if err := junk.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := junk.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("unknown connection type: read = %v, want EOF", err)
	}

	// gRPC side: a plain TLS server on the gRPC listener completes a
	// handshake with a TLS client, while the silent connection is pending.
	go func() {
		c, err := m.GRPCListener().Accept()
		if err != nil {
			return
		}
		tc := tls.Server(c, server.ServerConfig())
		if tc.Handshake() == nil {
			_, _ = tc.Write([]byte("ok")) // the client checks what arrives
		}
		tc.Close()
	}()
	tc, err := tls.Dial("tcp", addr, client.ClientConfig(tlsutil.ServerRole))
	if err != nil {
		t.Fatalf("TLS through the mux: %v", err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(tc, b); err != nil || string(b) != "ok" {
		t.Fatalf("read over TLS through the mux = %q, %v", b, err)
	}
	tc.Close()

	if err := silent.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("silent connection: read = %v, want EOF after the mux timeout", err)
	}
}

// TestStreamLayerRequiresServerCert checks that raft connections need a
// server certificate on both ends.
func TestStreamLayerRequiresServerCert(t *testing.T) {
	_, server, client := trCerts(t)
	m := trMux(t, time.Second)
	sl := NewStreamLayer(m.RaftListener(), m.Addr(), server, time.Second, nil)
	defer func() {
		sl.Close()
		m.Close()
		sl.Wait()
	}()

	// A server dials a server: accepted, and bytes flow.
	out := NewStreamLayer(noListener{}, m.Addr(), server, time.Second, nil)
	defer out.Close()
	conn, err := out.Dial(raft.ServerAddress("127.0.0.1:"+portOf(t, m.Addr())), time.Second)
	if err != nil {
		t.Fatalf("server to server: %v", err)
	}
	in, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(in, b); err != nil || b[0] != 'x' {
		t.Fatalf("read = %q, %v", b, err)
	}
	conn.Close()
	in.Close()

	// A client certificate presented on the raft port is refused.
	raw, err := net.Dial("tcp", m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte{RaftConnByte}); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, client.ClientConfig(tlsutil.ServerRole))
	if err := tc.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	herr := tc.Handshake()
	if herr == nil {
		_, herr = tc.Read(b)
	}
	if herr == nil {
		t.Fatal("a client certificate was accepted on the raft port")
	}

	// A client-certificate node cannot dial as a server either: the
	// server's check refuses it, so nothing is accepted.
	bad := NewStreamLayer(noListener{}, m.Addr(), client, time.Second, nil)
	defer bad.Close()
	if c, err := bad.Dial(raft.ServerAddress(m.Addr().String()), time.Second); err == nil {
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(b); err == nil {
			t.Fatal("a client-certificate dialer got data on the raft port")
		}
		c.Close()
	}
}

func portOf(t *testing.T, a net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// noListener is a listener that never yields a connection, for dial-only
// stream layers.
type noListener struct{}

func (noListener) Accept() (net.Conn, error) { return nil, ErrMuxClosed }
func (noListener) Close() error              { return nil }
func (noListener) Addr() net.Addr            { return &net.TCPAddr{} }

// TestCloseDoesNotWaitForUnreachablePeers: a node whose peer accepts TCP
// but never answers (a paused or partitioned host) has raft goroutines
// stuck in the TLS handshake towards it. Close must end them rather than
// wait for the handshake timeout (a minute here; the e2e tests saw 10 to
// 20 s graceful stops with a peer down).
func TestCloseDoesNotWaitForUnreachablePeers(t *testing.T) {
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 64)
	defer func() {
		hole.Close()
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	}()
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- c: // never read: the handshake hangs
			default:
				c.Close()
			}
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "n1", Output: rtLogWriter{t}, Level: hclog.Info})
	mux := NewMux(ln, time.Minute, logger.Named("mux"))
	defer mux.Close()
	node, err := NewNode(NodeConfig{
		ID: "n1", DataDir: t.TempDir(), Advertise: ln.Addr().String(), RaftListener: mux.RaftListener(),
		TLS: rtServerStore(t, "n1"), Bootstrap: true, Peers: []Peer{{ID: "ghost", Addr: hole.Addr().String()}},
		Log:              commitlog.Options{FS: rtNoLockFS{vfs.OS{}}},
		Raft:             RaftTiming{HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond},
		HandshakeTimeout: time.Minute,
		Logger:           logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The node stands for election and dials the ghost for its vote.
	rtWait(t, "the node to dial its peer", func() bool { return len(accepted) > 0 })
	start := time.Now()
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("Close took %s: it waited for the handshake timeout", d)
	}
}
