package replication

import (
	"bufio"
	"crypto/tls"
	"net"
	"sync"
)

// Raft connections carry AppendEntries of up to a megabyte, and crypto/tls
// writes each record of at most 16 KiB with its own write on the connection
// under it: 64 system calls for a 1 MiB batch, each of which, on loopback or
// a fast network, also wakes the reader for a record. The raw connection
// under a raft TLS connection is a recordConn: while one Write of the TLS
// connection runs, the records it makes are gathered and written together,
// up to flushBytes at a time; and reads come through a buffer, so one read
// takes in many records. See DESIGN.md, "Raft connections gather TLS
// records".

// flushBytes bounds what a recordConn gathers before writing; it is also
// its read buffer's size.
const flushBytes = 256 << 10

// recordConn is the raw connection under a raft TLS connection.
type recordConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	holding int    // Writes of the TLS connection in progress
	buf     []byte // records gathered while holding
	err     error  // the first failed write; every later write fails with it
}

func newRecordConn(c net.Conn) *recordConn {
	return &recordConn{Conn: c, r: bufio.NewReaderSize(c, flushBytes)}
}

func (c *recordConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write takes what crypto/tls writes: a whole record, or several.
func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.holding == 0 {
		return c.write(p)
	}
	if len(c.buf)+len(p) > flushBytes {
		if err := c.flush(); err != nil {
			return 0, err
		}
		if len(p) >= flushBytes {
			return c.write(p)
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// hold starts gathering records.
func (c *recordConn) hold() {
	c.mu.Lock()
	c.holding++
	c.mu.Unlock()
}

// release ends a hold and, after the last, writes what was gathered.
func (c *recordConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding--
	if c.holding > 0 || c.err != nil {
		return c.err
	}
	return c.flush()
}

// flush writes the gathered records; mu is held.
func (c *recordConn) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// write writes p through and makes a failure stick: records lost on the
// way would leave the peer unable to decrypt what follows. mu is held.
func (c *recordConn) write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// gatheringConn is a raft TLS connection over a recordConn: each Write
// goes out in as few writes of the raw connection as flushBytes allows.
type gatheringConn struct {
	*tls.Conn
	raw *recordConn
}

func (c *gatheringConn) Write(p []byte) (int, error) {
	c.raw.hold()
	n, err := c.Conn.Write(p)
	if rerr := c.raw.release(); err == nil && rerr != nil {
		// The records were encrypted but not all sent.
		return 0, rerr
	}
	return n, err
}
