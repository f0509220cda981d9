package replication

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// countingConn counts the writes made on it and fails them once fail is
// set.
type countingConn struct {
	net.Conn
	writes atomic.Int64
	fail   atomic.Bool
}

var errBroken = errors.New("broken connection")

func (c *countingConn) Write(p []byte) (int, error) {
	if c.fail.Load() {
		return 0, errBroken
	}
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// gatheringPair is a raft-style TLS connection over a counting raw
// connection, and the plain TLS server end that reads it.
func gatheringPair(t *testing.T) (*gatheringConn, *countingConn, *tls.Conn) {
	t.Helper()
	_, server, _ := trCerts(t)
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	cc := &countingConn{Conn: a}
	raw := newRecordConn(cc)
	client := tls.Client(raw, server.ClientConfig(tlsutil.ServerRole))
	srv := tls.Server(b, server.ServerConfig())
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return &gatheringConn{Conn: client, raw: raw}, cc, srv
}

// TestGatheringConnWrites: a 1 MiB write, 64 TLS records, reaches the raw
// connection in a few writes of up to flushBytes, and arrives whole; small
// writes go out at once.
func TestGatheringConnWrites(t *testing.T) {
	gc, cc, srv := gatheringPair(t)
	msg := make([]byte, 1<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(msg)+5)
		n, _ := io.ReadFull(srv, b)
		got <- b[:n]
	}()
	before := cc.writes.Load()
	if n, err := gc.Write(append(msg, "small"...)); err != nil || n != len(msg)+5 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b[:len(msg)], msg) || string(b[len(msg):]) != "small" {
		t.Fatal("the data arrived changed")
	}
	// 1 MiB + 64 record overheads in writes of at most flushBytes: 5.
	if w := cc.writes.Load() - before; w > int64(len(msg)/flushBytes+1) {
		t.Fatalf("%d raw writes for 1 MiB, want at most %d (crypto/tls alone makes 64)", w, len(msg)/flushBytes+1)
	}

	// A small write is not held back.
	go func() {
		b := make([]byte, 3)
		_, _ = io.ReadFull(srv, b)
		got <- b
	}()
	if _, err := gc.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if b := <-got; string(b) != "abc" {
		t.Fatalf("got %q", b)
	}
}

// TestGatheringConnWriteErrorSticks: when the raw connection fails a write,
// the Write fails, and so does every later one (the peer could not decrypt
// records after a lost one).
func TestGatheringConnWriteErrorSticks(t *testing.T) {
	gc, cc, srv := gatheringPair(t)
	go func() { _, _ = io.Copy(io.Discard, srv) }()
	cc.fail.Store(true)
	if _, err := gc.Write(make([]byte, 100<<10)); !errors.Is(err, errBroken) {
		t.Fatalf("Write on a broken connection = %v", err)
	}
	cc.fail.Store(false)
	if _, err := gc.Write([]byte("later")); err == nil {
		t.Fatal("a Write after a failed one succeeded")
	}
}
