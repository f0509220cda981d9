package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// cipherSuites are the TLS 1.2 suites we accept: ECDHE key exchange (forward
// secrecy) with an AEAD cipher. TLS 1.3 suites are not configurable and all
// qualify.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CipherSuites returns the TLS 1.2 cipher suites our configs allow.
func CipherSuites() []uint16 { return append([]uint16(nil), cipherSuites...) }

// ServerConfig returns a config for the listening side of the RPC/raft
// port: TLS 1.2 or later, the cipher suites above, and a client certificate
// required and verified against the CA. The CA pool and the served
// certificate are taken from the Store for each new connection (through
// GetConfigForClient), so Reload applies to new connections. Session
// tickets are off, so every connection verifies the client's certificate
// against the current CA.
//
// Each connection's config is a clone of the returned one, so fields the
// caller sets on it (NextProtos, say) before use carry over. gRPC's
// credentials.NewTLS (grpc-go 1.68 and later) adds its ALPN to the
// per-connection config itself.
func (s *Store) ServerConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:             tls.VersionTLS12,
		CipherSuites:           CipherSuites(),
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              s.cur.Load().pool,
		GetCertificate:         s.getCertificate,
		SessionTicketsDisabled: true,
	}
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.cur.Load()
		c := cfg.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = m.pool
		c.GetCertificate = nil
		c.Certificates = []tls.Certificate{*m.cert}
		return c, nil
	}
	return cfg
}

// ClientConfig returns a config for dialing a server: TLS 1.2 or later,
// the cipher suites above, our certificate presented (read from the Store
// at each handshake, so Reload applies), and the server's certificate
// verified against the Store's current CA for serverName with server
// authentication usage. Dial servers with serverName ServerRole (or
// RoleName of the cluster's domain) to require a server certificate. An
// empty serverName uses the config's ServerName at handshake time (which
// gRPC fills in from the dial target); verification fails if there is
// none.
//
// Because the CA pool can change, verification is done in VerifyConnection
// rather than by crypto/tls (InsecureSkipVerify is set, and only skips the
// built-in check). It is as strict; ConnectionState.VerifiedChains stays
// empty on the client side.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		CipherSuites:         CipherSuites(),
		ServerName:           serverName,
		GetClientCertificate: s.getClientCertificate,
		// Verified in VerifyConnection against the current CA pool.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.verifyServer(cs, serverName)
		},
	}
}

func (s *Store) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load().cert, nil
}

func (s *Store) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.cur.Load().cert, nil
}

// verifyServer does what crypto/tls does for a client with RootCAs set,
// against the current pool.
func (s *Store) verifyServer(cs tls.ConnectionState, serverName string) error {
	if serverName == "" {
		serverName = cs.ServerName
	}
	if serverName == "" {
		return errors.New("tlsutil: verify server: no server name to verify")
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tlsutil: verify server: server presented no certificate")
	}
	intermediates := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         s.cur.Load().pool,
		Intermediates: intermediates,
		DNSName:       serverName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("tlsutil: verify server %q: %w", serverName, err)
	}
	return nil
}
