package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// pki is a CA with its files in a temporary directory, issuing
// certificates into the same directory.
type pki struct {
	dir    string
	ca     tlsutil.KeyPair
	caFile string
}

func newPKI(t *testing.T, opts tlsutil.CAOptions) *pki {
	t.Helper()
	ca, err := tlsutil.CreateCA(opts)
	if err != nil {
		t.Fatalf("CreateCA: %v", err)
	}
	dir := t.TempDir()
	p := &pki{dir: dir, ca: ca, caFile: filepath.Join(dir, tlsutil.CACertFileName)}
	if err := ca.WriteFiles(p.caFile, filepath.Join(dir, tlsutil.CAKeyFileName), false); err != nil {
		t.Fatalf("write CA: %v", err)
	}
	return p
}

// cert creates a certificate in memory.
func (p *pki) cert(t *testing.T, opts tlsutil.CertOptions) tlsutil.KeyPair {
	t.Helper()
	pair, err := tlsutil.CreateCert(p.ca, opts)
	if err != nil {
		t.Fatalf("CreateCert(%s %q): %v", opts.Kind, opts.Name, err)
	}
	return pair
}

// issue creates a certificate and writes it under its usual names,
// replacing earlier files, and returns the Files for it.
func (p *pki) issue(t *testing.T, opts tlsutil.CertOptions) tlsutil.Files {
	t.Helper()
	return p.write(t, opts.Kind, opts.Name, p.cert(t, opts))
}

func (p *pki) write(t *testing.T, kind tlsutil.Kind, name string, pair tlsutil.KeyPair) tlsutil.Files {
	t.Helper()
	certName, keyName, err := tlsutil.CertFileNames(kind, name)
	if err != nil {
		t.Fatalf("CertFileNames: %v", err)
	}
	f := tlsutil.Files{CAFile: p.caFile, CertFile: filepath.Join(p.dir, certName), KeyFile: filepath.Join(p.dir, keyName)}
	if err := pair.WriteFiles(f.CertFile, f.KeyFile, true); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	return f
}

// store issues a certificate and loads a Store from its files.
func (p *pki) store(t *testing.T, opts tlsutil.CertOptions) *tlsutil.Store {
	t.Helper()
	return mustStore(t, p.issue(t, opts))
}

func mustStore(t *testing.T, files tlsutil.Files) *tlsutil.Store {
	t.Helper()
	s, err := tlsutil.NewStore(files)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return s
}

// serverAndClient makes a CA, a server Store for "node-1" and a client
// Store for "alice", and returns the server's files.
func serverAndClient(t *testing.T) (p *pki, files tlsutil.Files, srv, cli *tlsutil.Store) {
	t.Helper()
	p = newPKI(t, tlsutil.CAOptions{})
	files = p.issue(t, serverOpts("node-1"))
	return p, files, mustStore(t, files), p.store(t, clientOpts("alice"))
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// pool is a CertPool holding the CA.
func (p *pki) pool(t *testing.T) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.ca.CertPEM) {
		t.Fatal("CA PEM not appended")
	}
	return pool
}

func serverOpts(name string) tlsutil.CertOptions {
	return tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: name}
}

func clientOpts(name string) tlsutil.CertOptions {
	return tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: name}
}

func tlsCert(t *testing.T, pair tlsutil.KeyPair) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	return c
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no CERTIFICATE block in %q", certPEM)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

// result is the outcome of one handshake, seen from both sides.
type result struct {
	server    tls.ConnectionState
	serverErr error
	client    tls.ConnectionState
	clientErr error
}

func (r result) ok() bool { return r.serverErr == nil && r.clientErr == nil }

// handshake runs one TLS handshake over a 127.0.0.1 TCP connection. After
// a successful handshake the server writes one byte that the client reads,
// so that a rejection the server sends after the client's side of a TLS
// 1.3 handshake has finished is seen by the client too. Both sides close
// their end on failure, so neither waits forever. It does not call
// t.Fatal, so tests may run it from several goroutines.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{serverErr: err, clientErr: err}
	}
	defer ln.Close()
	ctx := t.Context()
	var res result
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			res.serverErr = err
			return
		}
		defer conn.Close()
		sc := tls.Server(conn, serverCfg)
		if res.serverErr = sc.HandshakeContext(ctx); res.serverErr != nil {
			return
		}
		res.server = sc.ConnectionState()
		_, res.serverErr = sc.Write([]byte{1})
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		ln.Close() // ends the Accept
		<-done
		return result{serverErr: res.serverErr, clientErr: err}
	}
	cc := tls.Client(conn, clientCfg)
	res.clientErr = cc.HandshakeContext(ctx)
	if res.clientErr == nil {
		var b [1]byte
		_, res.clientErr = io.ReadFull(cc, b[:])
		res.client = cc.ConnectionState()
	}
	if err := cc.Close(); err != nil && res.clientErr == nil {
		t.Errorf("client close: %v", err)
	}
	<-done
	return res
}

func fileMode(t *testing.T, name string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
