package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// RaftConnByte is the first byte a raft connection sends on the shared RPC
// port. gRPC connections start with a TLS ClientHello (0x16) instead.
const RaftConnByte byte = 'R'

const tlsHandshakeByte byte = 0x16

// ErrMuxClosed is returned by the mux's listeners after Close.
var ErrMuxClosed = errors.New("replication: mux closed")

// Mux shares one listener between gRPC and raft. Each accepted connection
// gets its own goroutine that reads the first byte under a deadline (so a
// silent client cannot stall the accept loop) and routes it: RaftConnByte
// to the raft listener (the byte is consumed), a TLS handshake to the gRPC
// listener (the byte is put back), anything else is closed.
type Mux struct {
	ln      net.Listener
	timeout time.Duration
	logger  hclog.Logger

	grpc *muxListener
	raft *muxListener

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

// NewMux starts routing ln's connections. timeout bounds how long a new
// connection may take to send its first byte.
func NewMux(ln net.Listener, timeout time.Duration, logger hclog.Logger) *Mux {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	m := &Mux{ln: ln, timeout: timeout, logger: logger, done: make(chan struct{})}
	m.grpc = &muxListener{mux: m, ch: make(chan net.Conn), done: make(chan struct{})}
	m.raft = &muxListener{mux: m, ch: make(chan net.Conn), done: make(chan struct{})}
	m.wg.Add(1)
	go m.serve()
	return m
}

// GRPCListener yields the connections for gRPC.
func (m *Mux) GRPCListener() net.Listener { return m.grpc }

// RaftListener yields raft connections, their first byte consumed and
// before any TLS handshake.
func (m *Mux) RaftListener() net.Listener { return m.raft }

// Addr is the shared listener's address.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

func (m *Mux) serve() {
	defer m.wg.Done()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.logger.Error("accept failed; the mux stops", "error", err)
			m.closeOnce.Do(func() {
				close(m.done)
				if cerr := m.ln.Close(); cerr != nil {
					m.logger.Debug("closing the listener", "error", cerr)
				}
			})
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(conn)
		}()
	}
}

func (m *Mux) route(conn net.Conn) {
	var b [1]byte
	if err := conn.SetReadDeadline(time.Now().Add(m.timeout)); err != nil {
		m.drop(conn, "set deadline", err)
		return
	}
	if _, err := conn.Read(b[:]); err != nil {
		m.drop(conn, "read connection type", err)
		return
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		m.drop(conn, "clear deadline", err)
		return
	}
	var to *muxListener
	switch b[0] {
	case RaftConnByte:
		to = m.raft
	case tlsHandshakeByte:
		to = m.grpc
		conn = &peekedConn{Conn: conn, first: b[0]}
	default:
		m.drop(conn, "route", fmt.Errorf("unknown connection type %#x", b[0]))
		return
	}
	select {
	case to.ch <- conn:
	case <-to.done:
		m.drop(conn, "route", ErrMuxClosed)
	case <-m.done:
		m.drop(conn, "route", ErrMuxClosed)
	}
}

func (m *Mux) drop(conn net.Conn, what string, err error) {
	m.logger.Debug("dropping connection", "remote", conn.RemoteAddr(), "step", what, "error", err)
	if cerr := conn.Close(); cerr != nil {
		m.logger.Debug("closing a dropped connection", "error", cerr)
	}
}

// Close stops accepting, closes the listener and waits for the routing
// goroutines. It is idempotent.
func (m *Mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	m.wg.Wait()
	return err
}

// muxListener is one side of the mux. Closing it stops only that side
// (so stopping the gRPC server leaves raft's connections alone); the mux
// owner closes the shared port with Mux.Close.
type muxListener struct {
	mux  *Mux
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, ErrMuxClosed
	case <-l.mux.done:
		return nil, ErrMuxClosed
	}
}

func (l *muxListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}
func (l *muxListener) Addr() net.Addr { return l.mux.Addr() }

// peekedConn gives back the byte the mux read.
type peekedConn struct {
	net.Conn
	first byte
	used  bool
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if !c.used && len(p) > 0 {
		c.used = true
		p[0] = c.first
		if len(p) == 1 {
			return 1, nil
		}
		n, err := c.Conn.Read(p[1:])
		return n + 1, err
	}
	return c.Conn.Read(p)
}

// StreamLayer is raft's network layer over the mux: mutual TLS on every
// connection, and both ends must present a server certificate (the
// tlsutil server role), so a client certificate can never join raft.
type StreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	certs     *tlsutil.Store
	role      string
	timeout   time.Duration
	logger    hclog.Logger

	accepted chan net.Conn
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup

	// halted ends (with Halt) every dial in progress and refuses new
	// ones; conns are the connections raft holds, closed by Halt.
	halted   context.Context
	halt     context.CancelFunc
	haltOnce sync.Once
	connMu   sync.Mutex
	conns    map[*trackedConn]struct{}
}

// trackedConn is a raft connection the stream layer can close on Halt.
type trackedConn struct {
	net.Conn
	s *StreamLayer
}

func (c *trackedConn) Close() error {
	c.s.connMu.Lock()
	delete(c.s.conns, c)
	c.s.connMu.Unlock()
	return c.Conn.Close()
}

// track registers c, or closes it if the layer has halted.
func (s *StreamLayer) track(c net.Conn) (net.Conn, error) {
	tc := &trackedConn{Conn: c, s: s}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.halted.Err() != nil {
		return nil, errors.Join(errHalted, c.Close())
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// errHalted is what dials get once the node is shutting down.
var errHalted = errors.New("replication: the node is shutting down")

// Halt ends the dials in progress, refuses new ones and closes every raft
// connection, so that raft's shutdown does not wait for I/O timeouts
// towards peers that are down or unreachable (a graceful stop took 10 to
// 20 s with a peer down, as the e2e tests saw). Call it just before
// raft.Shutdown; it is idempotent.
func (s *StreamLayer) Halt() {
	s.haltOnce.Do(func() {
		s.connMu.Lock()
		s.halt()
		conns := s.conns
		s.conns = map[*trackedConn]struct{}{}
		s.connMu.Unlock()
		for c := range conns {
			_ = c.Conn.Close()
		}
	})
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// NewStreamLayer serves raft on ln (the mux's raft listener), advertising
// advertise to peers. timeout bounds each TLS handshake.
func NewStreamLayer(ln net.Listener, advertise net.Addr, certs *tlsutil.Store, timeout time.Duration, logger hclog.Logger) *StreamLayer {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &StreamLayer{ln: ln, advertise: advertise, certs: certs, role: tlsutil.ServerRole, timeout: timeout, logger: logger,
		accepted: make(chan net.Conn), done: make(chan struct{}),
		conns: map[*trackedConn]struct{}{}}
	s.halted, s.halt = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// acceptLoop hands each raw connection to its own goroutine for the TLS
// handshake, so one slow peer cannot hold up the others.
func (s *StreamLayer) acceptLoop() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tc, err := s.handshake(conn)
			if err != nil {
				s.logger.Warn("refused a raft connection", "remote", conn.RemoteAddr(), "error", err)
				if cerr := conn.Close(); cerr != nil {
					s.logger.Debug("closing a refused raft connection", "error", cerr)
				}
				return
			}
			if tc, err = s.track(tc); err != nil {
				return // halted: closed already
			}
			select {
			case s.accepted <- tc:
			case <-s.done:
				if cerr := tc.Close(); cerr != nil {
					s.logger.Debug("closing a raft connection at shutdown", "error", cerr)
				}
			}
		}()
	}
}

func (s *StreamLayer) handshake(conn net.Conn) (net.Conn, error) {
	raw := newRecordConn(conn)
	tc := tls.Server(raw, s.certs.ServerConfig())
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	if _, err := tlsutil.RequireServer(tc.ConnectionState(), s.role); err != nil {
		return nil, err
	}
	return &gatheringConn{Conn: tc, raw: raw}, nil
}

// Accept implements net.Listener for raft.
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.accepted:
		return c, nil
	case <-s.done:
		return nil, ErrMuxClosed
	}
}

// Close implements net.Listener. It stops the handshake goroutines; the
// mux itself is closed by its owner.
func (s *StreamLayer) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// Wait blocks until every goroutine of the stream layer has ended; call it
// after closing the mux.
func (s *StreamLayer) Wait() { s.wg.Wait() }

// Addr implements net.Listener: the advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }

// Dial implements raft.StreamLayer: connect, send the raft byte, and run a
// TLS handshake that requires the peer to be a server.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.halted, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, err
	}
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return nil, errors.Join(err, conn.Close())
	}
	if _, err := conn.Write([]byte{RaftConnByte}); err != nil {
		return nil, errors.Join(fmt.Errorf("replication: dial %s: %w", address, err), conn.Close())
	}
	if err := conn.SetWriteDeadline(time.Time{}); err != nil {
		return nil, errors.Join(err, conn.Close())
	}
	raw := newRecordConn(conn)
	tc := tls.Client(raw, s.certs.ClientConfig(s.role))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("replication: tls handshake with %s: %w", address, err), conn.Close())
	}
	return s.track(&gatheringConn{Conn: tc, raw: raw})
}
