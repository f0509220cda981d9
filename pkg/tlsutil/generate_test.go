package tlsutil_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

func checkKeyType(t *testing.T, c *x509.Certificate, kt tlsutil.KeyType) {
	t.Helper()
	switch pub := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if kt == tlsutil.KeyRSA || pub.Curve != elliptic.P256() {
			t.Errorf("key: ECDSA %s, want %q", pub.Curve.Params().Name, kt)
		}
	case *rsa.PublicKey:
		if kt != tlsutil.KeyRSA || pub.N.BitLen() != 2048 {
			t.Errorf("key: RSA %d bits, want %q", pub.N.BitLen(), kt)
		}
	default:
		t.Errorf("key: %T", pub)
	}
}

func TestCreateCA(t *testing.T) {
	tests := []struct {
		name string
		opts tlsutil.CAOptions
		cn   string // prefix
		life time.Duration
	}{
		{"defaults", tlsutil.CAOptions{}, "Loghouse CA ", tlsutil.DefaultCAValidity},
		{"rsa", tlsutil.CAOptions{KeyType: tlsutil.KeyRSA, Validity: 48 * time.Hour, CommonName: "Test CA"}, "Test CA", 48 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, err := tlsutil.CreateCA(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := parseCert(t, ca.CertPEM)
			checkKeyType(t, c, tt.opts.KeyType)
			if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
				t.Errorf("basic constraints: IsCA %v valid %v MaxPathLen %d zero %v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
			}
			if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("key usage %b", c.KeyUsage)
			}
			if !strings.HasPrefix(c.Subject.CommonName, tt.cn) {
				t.Errorf("CN %q, want prefix %q", c.Subject.CommonName, tt.cn)
			}
			if n := c.SerialNumber.BitLen(); n == 0 || n > 128 {
				t.Errorf("serial has %d bits", n)
			}
			if len(c.SubjectKeyId) == 0 || !bytes.Equal(c.SubjectKeyId, c.AuthorityKeyId) && len(c.AuthorityKeyId) != 0 {
				t.Errorf("SKID %x AKID %x", c.SubjectKeyId, c.AuthorityKeyId)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != tt.life {
				t.Errorf("validity %s, want %s", got, tt.life)
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
		})
	}

	a, b := mustCA(t), mustCA(t)
	ca, cb := parseCert(t, a.CertPEM), parseCert(t, b.CertPEM)
	if ca.Subject.CommonName == cb.Subject.CommonName || ca.SerialNumber.Cmp(cb.SerialNumber) == 0 {
		t.Errorf("two CAs share CN %q or serial %v", ca.Subject.CommonName, ca.SerialNumber)
	}
}

func mustCA(t *testing.T) tlsutil.KeyPair {
	t.Helper()
	ca, err := tlsutil.CreateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestCreateCert(t *testing.T) {
	ca := mustCA(t)
	caCert := parseCert(t, ca.CertPEM)
	ip := net.ParseIP("10.0.0.7")
	tests := []struct {
		name    string
		opts    tlsutil.CertOptions
		dns     []string
		ips     []string
		ext     []x509.ExtKeyUsage
		life    time.Duration
		isRole  string // IsServer must hold for this role
		notRole string // and not for this one
	}{
		{
			name:    "server defaults",
			opts:    serverOpts("node-1"),
			dns:     []string{tlsutil.ServerRole, "localhost"},
			ips:     []string{"127.0.0.1", "::1"},
			ext:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			life:    tlsutil.DefaultCertValidity,
			isRole:  tlsutil.ServerRole,
			notRole: "server.other",
		},
		{
			name: "server extras, domain, rsa",
			opts: tlsutil.CertOptions{
				Kind: tlsutil.ServerCert, Name: "n2", Domain: "prod.example",
				DNSNames: []string{"n2.prod.example", "LOCALHOST"}, IPAddresses: []net.IP{ip, net.ParseIP("127.0.0.1")},
				KeyType: tlsutil.KeyRSA, Validity: time.Hour,
			},
			dns:     []string{"server.prod.example", "localhost", "n2.prod.example"},
			ips:     []string{"127.0.0.1", "::1", "10.0.0.7"},
			ext:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			life:    time.Hour,
			isRole:  "server.prod.example",
			notRole: tlsutil.ServerRole,
		},
		{
			name: "server without loopback",
			opts: tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: "n3", OmitLoopback: true, IPAddresses: []net.IP{ip}},
			dns:  []string{tlsutil.ServerRole},
			ips:  []string{"10.0.0.7"},
			ext:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			life: tlsutil.DefaultCertValidity,
		},
		{
			name:    "client",
			opts:    clientOpts("alice"),
			ext:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			life:    tlsutil.DefaultCertValidity,
			notRole: tlsutil.ServerRole,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, err := tlsutil.CreateCert(ca, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			c := parseCert(t, pair.CertPEM)
			checkKeyType(t, c, tt.opts.KeyType)
			if c.Subject.CommonName != tt.opts.Name {
				t.Errorf("CN %q, want %q", c.Subject.CommonName, tt.opts.Name)
			}
			if !slices.Equal(c.DNSNames, tt.dns) {
				t.Errorf("DNS SANs %q, want %q", c.DNSNames, tt.dns)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.ips) {
				t.Errorf("IP SANs %q, want %q", ips, tt.ips)
			}
			if !slices.Equal(c.ExtKeyUsage, tt.ext) {
				t.Errorf("ext key usage %v, want %v", c.ExtKeyUsage, tt.ext)
			}
			if c.IsCA || c.KeyUsage&x509.KeyUsageCertSign != 0 || c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
				t.Errorf("IsCA %v, key usage %b", c.IsCA, c.KeyUsage)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != tt.life {
				t.Errorf("validity %s, want %s", got, tt.life)
			}
			if n := c.SerialNumber.BitLen(); n == 0 || n > 128 {
				t.Errorf("serial has %d bits", n)
			}
			if len(c.SubjectKeyId) == 0 || !bytes.Equal(c.AuthorityKeyId, caCert.SubjectKeyId) {
				t.Errorf("SKID %x, AKID %x, CA SKID %x", c.SubjectKeyId, c.AuthorityKeyId, caCert.SubjectKeyId)
			}
			if err := c.CheckSignatureFrom(caCert); err != nil {
				t.Errorf("not signed by the CA: %v", err)
			}
			if tt.isRole != "" && !tlsutil.IsServer(c, tt.isRole) {
				t.Errorf("IsServer(%q) = false", tt.isRole)
			}
			if tt.notRole != "" && tlsutil.IsServer(c, tt.notRole) {
				t.Errorf("IsServer(%q) = true", tt.notRole)
			}
		})
	}
}

func TestCreateCertRejects(t *testing.T) {
	ca := mustCA(t)
	leaf, err := tlsutil.CreateCert(ca, serverOpts("n1"))
	if err != nil {
		t.Fatal(err)
	}
	other := mustCA(t)
	shortCA, err := tlsutil.CreateCA(tlsutil.CAOptions{Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ca   tlsutil.KeyPair
		opts tlsutil.CertOptions
		want error
	}{
		{"empty name", ca, serverOpts(""), tlsutil.ErrInvalidName},
		{"path in name", ca, clientOpts("../etc"), tlsutil.ErrInvalidName},
		{"space in name", ca, clientOpts("a b"), tlsutil.ErrInvalidName},
		{"leading dash", ca, clientOpts("-a"), tlsutil.ErrInvalidName},
		{"trailing dot", ca, serverOpts("a."), tlsutil.ErrInvalidName},
		{"double dot", ca, serverOpts("a..b"), tlsutil.ErrInvalidName},
		{"non-ASCII", ca, clientOpts("bjørn"), tlsutil.ErrInvalidName},
		{"too long", ca, clientOpts(strings.Repeat("a", 65)), tlsutil.ErrInvalidName},
		{"bad DNS name", ca, tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: "n", DNSNames: []string{"*.example"}}, tlsutil.ErrInvalidName},
		{"bad domain", ca, tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: "n", Domain: "a_b"}, tlsutil.ErrInvalidName},
		{"bad IP", ca, tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: "n", IPAddresses: []net.IP{{1, 2, 3}}}, tlsutil.ErrInvalidOptions},
		{"no kind", ca, tlsutil.CertOptions{Name: "n"}, tlsutil.ErrInvalidOptions},
		{"client with DNS", ca, tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: "c", DNSNames: []string{tlsutil.ServerRole}}, tlsutil.ErrInvalidOptions},
		{"client with domain", ca, tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: "c", Domain: "x"}, tlsutil.ErrInvalidOptions},
		{"bad key type", ca, tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: "c", KeyType: "dsa"}, tlsutil.ErrInvalidOptions},
		{"negative validity", ca, tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: "c", Validity: -time.Hour}, tlsutil.ErrInvalidOptions},
		{"outlives CA", shortCA, clientOpts("c"), tlsutil.ErrInvalidOptions},
		{"CA is a leaf", leaf, clientOpts("c"), tlsutil.ErrNotCA},
		{"CA key mismatch", tlsutil.KeyPair{CertPEM: ca.CertPEM, KeyPEM: other.KeyPEM}, clientOpts("c"), tlsutil.ErrKeyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, err := tlsutil.CreateCert(tt.ca, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if pair.CertPEM != nil || pair.KeyPEM != nil {
				t.Error("returned a key pair with the error")
			}
			t.Log(err)
		})
	}
}

func TestCertFileNames(t *testing.T) {
	tests := []struct {
		kind      tlsutil.Kind
		name      string
		cert, key string
		want      error
	}{
		{tlsutil.ServerCert, "node-1", "server-node-1.pem", "server-node-1-key.pem", nil},
		{tlsutil.ClientCert, "root", "client-root.pem", "client-root-key.pem", nil},
		{tlsutil.ClientCert, "../x", "", "", tlsutil.ErrInvalidName},
		{0, "x", "", "", tlsutil.ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String()+"/"+tt.name, func(t *testing.T) {
			cert, key, err := tlsutil.CertFileNames(tt.kind, tt.name)
			if !errors.Is(err, tt.want) || cert != tt.cert || key != tt.key {
				t.Errorf("= %q, %q, %v; want %q, %q, %v", cert, key, err, tt.cert, tt.key, tt.want)
			}
		})
	}
}
