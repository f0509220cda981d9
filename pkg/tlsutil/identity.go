package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// VerifiedLeaf returns the peer's certificate from a server-side connection
// state, if crypto/tls verified it against the CA (as ServerConfig
// requires). It returns ErrNoClientCert if the handshake is not complete or
// no certificate was verified; an unverified certificate is never returned.
func VerifiedLeaf(cs tls.ConnectionState) (*x509.Certificate, error) {
	if !cs.HandshakeComplete {
		return nil, fmt.Errorf("%w: handshake not complete", ErrNoClientCert)
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil, ErrNoClientCert
	}
	return cs.VerifiedChains[0][0], nil
}

// IdentityFromState returns the identity of the peer of a server-side
// connection: the common name of its verified certificate. This is the
// name ACLs use. It fails with ErrNoClientCert or ErrNoIdentity.
func IdentityFromState(cs tls.ConnectionState) (string, error) {
	leaf, err := VerifiedLeaf(cs)
	if err != nil {
		return "", err
	}
	if leaf.Subject.CommonName == "" {
		return "", ErrNoIdentity
	}
	return leaf.Subject.CommonName, nil
}

// IsServer reports whether cert, a verified leaf (see VerifiedLeaf), is a
// server certificate for role (ServerRole, or RoleName of the cluster's
// domain): it carries role as a DNS SAN and allows server authentication.
// An empty role matches nothing.
func IsServer(cert *x509.Certificate, role string) bool {
	if cert == nil || role == "" {
		return false
	}
	hasRole := slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, role) })
	return hasRole && slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
}

// RequireServer returns the server name (common name) of the peer of a
// server-side connection if its verified certificate is a server
// certificate for role, as raft and forwarding require; otherwise an error
// matching ErrNoClientCert or ErrNotServer.
func RequireServer(cs tls.ConnectionState, role string) (string, error) {
	leaf, err := VerifiedLeaf(cs)
	if err != nil {
		return "", err
	}
	if !IsServer(leaf, role) {
		return "", fmt.Errorf("%w: %q has no %q role", ErrNotServer, leaf.Subject.CommonName, role)
	}
	return leaf.Subject.CommonName, nil
}
