package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

func TestMutualTLS(t *testing.T) {
	tests := []struct {
		name               string
		ca, server, client tlsutil.KeyType
		maxVersion         uint16
	}{
		{"ecdsa", tlsutil.KeyECDSA, tlsutil.KeyECDSA, tlsutil.KeyECDSA, 0},
		{"ecdsa tls1.2", tlsutil.KeyECDSA, tlsutil.KeyECDSA, tlsutil.KeyECDSA, tls.VersionTLS12},
		{"rsa", tlsutil.KeyRSA, tlsutil.KeyRSA, tlsutil.KeyRSA, 0},
		{"rsa tls1.2", tlsutil.KeyRSA, tlsutil.KeyRSA, tlsutil.KeyRSA, tls.VersionTLS12},
		{"rsa CA, mixed leaves", tlsutil.KeyRSA, tlsutil.KeyECDSA, tlsutil.KeyRSA, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPKI(t, tlsutil.CAOptions{KeyType: tt.ca})
			srv := p.store(t, tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: "node-1", KeyType: tt.server})
			cli := p.store(t, tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: "alice", KeyType: tt.client})
			ccfg := cli.ClientConfig(tlsutil.ServerRole)
			ccfg.MaxVersion = tt.maxVersion
			res := handshake(t, srv.ServerConfig(), ccfg)
			if !res.ok() {
				t.Fatalf("handshake: server %v, client %v", res.serverErr, res.clientErr)
			}
			if id, err := tlsutil.IdentityFromState(res.server); err != nil || id != "alice" {
				t.Errorf("IdentityFromState = %q, %v; want alice", id, err)
			}
			leaf, err := tlsutil.VerifiedLeaf(res.server)
			if err != nil || tlsutil.IsServer(leaf, tlsutil.ServerRole) {
				t.Errorf("VerifiedLeaf: %v; a client certificate passes IsServer", err)
			}
			if _, err := tlsutil.RequireServer(res.server, tlsutil.ServerRole); !errors.Is(err, tlsutil.ErrNotServer) {
				t.Errorf("RequireServer for a client: %v, want ErrNotServer", err)
			}
			if got := res.client.PeerCertificates[0].Subject.CommonName; got != "node-1" {
				t.Errorf("client sees server %q", got)
			}
			if tt.maxVersion == tls.VersionTLS12 {
				if res.server.Version != tls.VersionTLS12 || !slices.Contains(tlsutil.CipherSuites(), res.server.CipherSuite) {
					t.Errorf("version %x, suite %s", res.server.Version, tls.CipherSuiteName(res.server.CipherSuite))
				}
			} else if res.server.Version != tls.VersionTLS13 {
				t.Errorf("version %x, want TLS 1.3", res.server.Version)
			}
		})
	}
}

// TestServerToServer: a server dials another with its server certificate;
// the dialed server sees a server peer, and the dialer verified a server.
func TestServerToServer(t *testing.T) {
	p := newPKI(t, tlsutil.CAOptions{})
	a := p.store(t, serverOpts("a"))
	b := p.store(t, serverOpts("b"))
	res := handshake(t, b.ServerConfig(), a.ClientConfig(tlsutil.ServerRole))
	if !res.ok() {
		t.Fatalf("handshake: server %v, client %v", res.serverErr, res.clientErr)
	}
	name, err := tlsutil.RequireServer(res.server, tlsutil.ServerRole)
	if err != nil || name != "a" {
		t.Errorf("RequireServer = %q, %v; want a", name, err)
	}
	leaf, err := tlsutil.VerifiedLeaf(res.server)
	if err != nil {
		t.Fatal(err)
	}
	if !tlsutil.IsServer(leaf, tlsutil.ServerRole) || tlsutil.IsServer(leaf, "server.other") || tlsutil.IsServer(leaf, "") || tlsutil.IsServer(nil, tlsutil.ServerRole) {
		t.Error("IsServer answers wrongly")
	}
	if _, err := tlsutil.RequireServer(res.server, "server.other"); !errors.Is(err, tlsutil.ErrNotServer) {
		t.Errorf("RequireServer for another domain: %v, want ErrNotServer", err)
	}
}

func TestHandshakeRejected(t *testing.T) {
	p := newPKI(t, tlsutil.CAOptions{})
	other := newPKI(t, tlsutil.CAOptions{})
	srv := p.store(t, serverOpts("node-1"))
	goodClient := p.cert(t, clientOpts("alice"))
	expired := p.cert(t, tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: "old", NotBefore: time.Now().Add(-48 * time.Hour), Validity: 24 * time.Hour})
	expiredServer := p.cert(t, tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: "old", NotBefore: time.Now().Add(-48 * time.Hour), Validity: 24 * time.Hour})
	foreign := other.cert(t, clientOpts("alice"))

	// custom is a client config that trusts p's CA and presents cert (if
	// any) whatever CAs the server asks for.
	custom := func(cert *tlsutil.KeyPair) *tls.Config {
		cfg := &tls.Config{RootCAs: p.pool(t), ServerName: tlsutil.ServerRole}
		if cert != nil {
			c := tlsCert(t, *cert)
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
		}
		return cfg
	}
	withVersions := func(cfg *tls.Config, lo, hi uint16) *tls.Config {
		cfg.MinVersion, cfg.MaxVersion = lo, hi
		return cfg
	}
	cbcOnly := withVersions(custom(&goodClient), tls.VersionTLS12, tls.VersionTLS12)
	cbcOnly.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
	cli := p.store(t, clientOpts("bob"))
	otherCli := other.store(t, clientOpts("bob"))

	const (
		accepted      = iota
		serverRejects // the server aborts the handshake
		clientRejects // the client aborts the handshake
	)
	tests := []struct {
		name   string
		server *tls.Config
		client *tls.Config
		want   int
	}{
		{"control: custom client", srv.ServerConfig(), custom(&goodClient), accepted},
		{"control: custom TLS 1.2 client", srv.ServerConfig(), withVersions(custom(&goodClient), tls.VersionTLS12, tls.VersionTLS12), accepted},
		{"no client certificate", srv.ServerConfig(), custom(nil), serverRejects},
		{"client certificate from another CA", srv.ServerConfig(), custom(&foreign), serverRejects},
		{"expired client certificate", srv.ServerConfig(), custom(&expired), serverRejects},
		{"TLS 1.1 client", srv.ServerConfig(), withVersions(custom(&goodClient), tls.VersionTLS10, tls.VersionTLS11), serverRejects},
		{"CBC-only TLS 1.2 client", srv.ServerConfig(), cbcOnly, serverRejects},
		{"server from another CA", other.store(t, serverOpts("node-1")).ServerConfig(), cli.ClientConfig(tlsutil.ServerRole), clientRejects},
		{"client trusting another CA", srv.ServerConfig(), otherCli.ClientConfig(tlsutil.ServerRole), clientRejects},
		{"wrong server name", srv.ServerConfig(), cli.ClientConfig("server.other"), clientRejects},
		{"client certificate serving as server", p.store(t, clientOpts("mallory")).ServerConfig(), cli.ClientConfig(tlsutil.ServerRole), clientRejects},
		{"expired server certificate", expiredServerConfig(t, p, expiredServer), cli.ClientConfig(tlsutil.ServerRole), clientRejects},
		{"no server name", srv.ServerConfig(), cli.ClientConfig(""), clientRejects},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := handshake(t, tt.server, tt.client)
			t.Logf("server: %v; client: %v", res.serverErr, res.clientErr)
			switch tt.want {
			case accepted:
				if !res.ok() {
					t.Fatalf("rejected: server %v, client %v", res.serverErr, res.clientErr)
				}
				if id, err := tlsutil.IdentityFromState(res.server); err != nil || id != "alice" {
					t.Errorf("identity %q, %v", id, err)
				}
			case serverRejects:
				if res.serverErr == nil || fromPeer(res.serverErr) || res.clientErr == nil {
					t.Fatalf("want the server to reject: server %v, client %v", res.serverErr, res.clientErr)
				}
			case clientRejects:
				if res.clientErr == nil || fromPeer(res.clientErr) || res.serverErr == nil {
					t.Fatalf("want the client to reject: server %v, client %v", res.serverErr, res.clientErr)
				}
			}
		})
	}
}

// fromPeer reports whether a handshake error is an alert the peer sent,
// rather than a check failing on this side.
func fromPeer(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// expiredServerConfig serves an expired certificate, which a Store refuses
// to load, through a plain config.
func expiredServerConfig(t *testing.T, p *pki, pair tlsutil.KeyPair) *tls.Config {
	t.Helper()
	return &tls.Config{
		Certificates: []tls.Certificate{tlsCert(t, pair)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool(t),
	}
}

// TestTLS11Offered checks that the TLS 1.1 case above really offers only
// TLS 1.1, so that its rejection is the server's version floor at work.
func TestTLS11Offered(t *testing.T) {
	p := newPKI(t, tlsutil.CAOptions{})
	srv := p.store(t, serverOpts("node-1"))
	cli := p.store(t, clientOpts("alice"))
	cfg := srv.ServerConfig()
	inner := cfg.GetConfigForClient
	var offered []uint16
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		offered = h.SupportedVersions
		return inner(h)
	}
	ccfg := cli.ClientConfig(tlsutil.ServerRole)
	ccfg.MinVersion, ccfg.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	res := handshake(t, cfg, ccfg)
	if res.serverErr == nil || res.clientErr == nil {
		t.Fatalf("TLS 1.1 accepted: server %v, client %v", res.serverErr, res.clientErr)
	}
	if !slices.Equal(offered, []uint16{tls.VersionTLS11}) {
		t.Errorf("client offered versions %x, want only TLS 1.1", offered)
	}
}

func TestIdentityFromStateUnverified(t *testing.T) {
	p := newPKI(t, tlsutil.CAOptions{})
	leaf := parseCert(t, p.cert(t, clientOpts("alice")).CertPEM)
	tests := []struct {
		name string
		cs   tls.ConnectionState
	}{
		{"no handshake", tls.ConnectionState{}},
		{"handshake not complete", tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}},
		{"unverified certificate", tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, err := tlsutil.IdentityFromState(tt.cs); !errors.Is(err, tlsutil.ErrNoClientCert) {
				t.Errorf("= %q, %v; want ErrNoClientCert", id, err)
			}
			if _, err := tlsutil.RequireServer(tt.cs, tlsutil.ServerRole); !errors.Is(err, tlsutil.ErrNoClientCert) {
				t.Errorf("RequireServer: %v; want ErrNoClientCert", err)
			}
		})
	}
}
