package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// Defaults for certificate generation.
const (
	// DefaultDomain is the domain of the server role name.
	DefaultDomain = "loghouse"
	// ServerRole is the DNS SAN that marks a server certificate in the
	// default domain: RoleName(DefaultDomain).
	ServerRole = "server." + DefaultDomain
	// DefaultCAValidity is how long a CA is valid unless CAOptions says
	// otherwise: five years.
	DefaultCAValidity = 5 * 365 * 24 * time.Hour
	// DefaultCertValidity is how long a server or client certificate is
	// valid unless CertOptions says otherwise: one year.
	DefaultCertValidity = 365 * 24 * time.Hour
	// ClockSkew is how far before "now" a new certificate's validity
	// starts when no NotBefore is given, so that a peer whose clock is a
	// little behind accepts it at once.
	ClockSkew = time.Minute
	// rsaBits is the size of generated RSA keys.
	rsaBits = 2048
	// serialBits is the size of random serial numbers.
	serialBits = 128
)

// KeyType selects the algorithm of a generated key.
type KeyType string

// Key types. The zero value means KeyECDSA.
const (
	// KeyECDSA is ECDSA on curve P-256, the default.
	KeyECDSA KeyType = "ecdsa"
	// KeyRSA is RSA with a 2048-bit modulus.
	KeyRSA KeyType = "rsa"
)

// Kind is the kind of a leaf certificate.
type Kind int

// Certificate kinds. The zero Kind is invalid, so that no caller gets a
// server certificate by default.
const (
	// ServerCert is a node's certificate: it serves the RPC port and dials
	// other servers, so it allows both server and client authentication and
	// carries the server role SAN.
	ServerCert Kind = iota + 1
	// ClientCert is a client identity's certificate: client
	// authentication only, no SANs.
	ClientCert
)

// String returns "server" or "client"; it is also the file name prefix.
func (k Kind) String() string {
	switch k {
	case ServerCert:
		return "server"
	case ClientCert:
		return "client"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// RoleName returns the DNS SAN that marks server certificates in domain:
// "server.<domain>". An empty domain means DefaultDomain.
func RoleName(domain string) string {
	if domain == "" {
		domain = DefaultDomain
	}
	return "server." + domain
}

// KeyPair is a certificate and its private key, PEM-encoded. The
// certificate is a "CERTIFICATE" block; the key a PKCS #8 "PRIVATE KEY"
// block.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// CAOptions configures CreateCA. The zero value is valid.
type CAOptions struct {
	// KeyType is the CA key's algorithm; empty means KeyECDSA.
	KeyType KeyType
	// Validity is how long the CA is valid from NotBefore; zero means
	// DefaultCAValidity.
	Validity time.Duration
	// CommonName is the CA's subject CN; empty means
	// "Loghouse CA <16 random hex digits>", so that CAs of different
	// clusters are told apart.
	CommonName string
	// NotBefore is when validity starts; zero means now minus ClockSkew.
	NotBefore time.Time
}

// CertOptions configures CreateCert.
type CertOptions struct {
	// Kind is ServerCert or ClientCert; required.
	Kind Kind
	// Name is the certificate's common name: the node name of a server,
	// the identity of a client (what ACLs name). Required; see
	// ValidateName.
	Name string
	// Domain is the domain of the server role SAN "server.<Domain>"; empty
	// means DefaultDomain. Servers only.
	Domain string
	// DNSNames are more DNS SANs for a server (its host names). Servers
	// only.
	DNSNames []string
	// IPAddresses are more IP SANs for a server. Servers only.
	IPAddresses []net.IP
	// OmitLoopback leaves "localhost", 127.0.0.1 and ::1 out of a server
	// certificate; by default they are in it.
	OmitLoopback bool
	// KeyType is the key's algorithm; empty means KeyECDSA.
	KeyType KeyType
	// Validity is how long the certificate is valid from NotBefore; zero
	// means DefaultCertValidity. It may not end after the CA does.
	Validity time.Duration
	// NotBefore is when validity starts; zero means now minus ClockSkew.
	NotBefore time.Time
}

// CreateCA makes a self-signed CA: subject CN from opts, basic constraints
// CA with path length 0 (it signs leaves only), key usage certificate and
// CRL signing, a random 128-bit serial and a subject key id.
func CreateCA(opts CAOptions) (KeyPair, error) {
	validity, err := validityOr(opts.Validity, DefaultCAValidity)
	if err != nil {
		return KeyPair{}, err
	}
	key, err := generateKey(opts.KeyType)
	if err != nil {
		return KeyPair{}, err
	}
	serial, err := randomSerial()
	if err != nil {
		return KeyPair{}, err
	}
	cn := opts.CommonName
	if cn == "" {
		cn = fmt.Sprintf("Loghouse CA %016x", new(big.Int).Rsh(serial, serialBits-64))
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return KeyPair{}, err
	}
	notBefore := startTime(opts.NotBefore)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Loghouse"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          skid,
	}
	return sign(tmpl, tmpl, key, key)
}

// CreateCert makes a server or client certificate signed by ca.
//
// A server certificate has CN opts.Name, DNS SANs RoleName(opts.Domain),
// "localhost" and opts.DNSNames, IP SANs 127.0.0.1, ::1 and
// opts.IPAddresses (the loopback names unless opts.OmitLoopback), and
// extended key usages server and client authentication. A client
// certificate has CN opts.Name, no SANs and client authentication only.
func CreateCert(ca KeyPair, opts CertOptions) (KeyPair, error) {
	if opts.Kind != ServerCert && opts.Kind != ClientCert {
		return KeyPair{}, fmt.Errorf("%w: certificate kind must be ServerCert or ClientCert, not %s", ErrInvalidOptions, opts.Kind)
	}
	caCert, caKey, err := parseCA(ca)
	if err != nil {
		return KeyPair{}, err
	}
	if err := checkName(opts.Kind.String()+" name", opts.Name); err != nil {
		return KeyPair{}, err
	}
	validity, err := validityOr(opts.Validity, DefaultCertValidity)
	if err != nil {
		return KeyPair{}, err
	}
	notBefore := startTime(opts.NotBefore)
	notAfter := notBefore.Add(validity)
	if notAfter.After(caCert.NotAfter) {
		return KeyPair{}, fmt.Errorf("%w: certificate would be valid until %s, after its CA expires (%s); use a shorter validity or a new CA",
			ErrInvalidOptions, notAfter.UTC().Format(time.RFC3339), caCert.NotAfter.UTC().Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: opts.Name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	switch opts.Kind {
	case ServerCert:
		if err := serverSANs(tmpl, opts); err != nil {
			return KeyPair{}, err
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case ClientCert:
		if len(opts.DNSNames) > 0 || len(opts.IPAddresses) > 0 || opts.Domain != "" {
			return KeyPair{}, fmt.Errorf("%w: client certificates carry no domain, DNS or IP names", ErrInvalidOptions)
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	key, err := generateKey(opts.KeyType)
	if err != nil {
		return KeyPair{}, err
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		// RSA keys may also encipher (RSA key exchange), which our cipher
		// suites do not use; it is the customary usage for RSA leaves.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return KeyPair{}, err
	}
	if tmpl.SubjectKeyId, err = subjectKeyID(key.Public()); err != nil {
		return KeyPair{}, err
	}
	return sign(tmpl, caCert, caKey, key)
}

// serverSANs fills in a server certificate's DNS and IP SANs.
func serverSANs(tmpl *x509.Certificate, opts CertOptions) error {
	if opts.Domain != "" {
		if err := checkDNSName("domain", opts.Domain); err != nil {
			return err
		}
	}
	dns := []string{RoleName(opts.Domain)}
	var ips []net.IP
	if !opts.OmitLoopback {
		dns = append(dns, "localhost")
		ips = append(ips, net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback)
	}
	for _, name := range opts.DNSNames {
		if err := checkDNSName("DNS name", name); err != nil {
			return err
		}
		dns = append(dns, name)
	}
	for _, ip := range opts.IPAddresses {
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		} else if len(ip) != net.IPv6len {
			return fmt.Errorf("%w: IP address of %d bytes (%x)", ErrInvalidOptions, len(ip), []byte(ip))
		}
		ips = append(ips, ip)
	}
	tmpl.DNSNames = dedupe(dns, strings.EqualFold)
	tmpl.IPAddresses = dedupe(ips, net.IP.Equal)
	return nil
}

// dedupe returns s without later elements equal to earlier ones.
func dedupe[T any](s []T, eq func(a, b T) bool) []T {
	var out []T
next:
	for _, v := range s {
		for _, w := range out {
			if eq(v, w) {
				continue next
			}
		}
		out = append(out, v)
	}
	return out
}

// validityOr returns d, or def if d is zero; a negative d is an error.
func validityOr(d, def time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("%w: validity %s is negative", ErrInvalidOptions, d)
	case d == 0:
		return def, nil
	default:
		return d, nil
	}
}

func startTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().Add(-ClockSkew).Truncate(time.Second)
	}
	return t
}

func generateKey(kt KeyType) (crypto.Signer, error) {
	var (
		key crypto.Signer
		err error
	)
	switch kt {
	case "", KeyECDSA:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyRSA:
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		return nil, fmt.Errorf("%w: key type %q; use %q or %q", ErrInvalidOptions, kt, KeyECDSA, KeyRSA)
	}
	if err != nil {
		return nil, fmt.Errorf("tlsutil: generate %s key: %w", kt, err)
	}
	return key, nil
}

// randomSerial returns a random, positive serial number below 2^128.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), serialBits)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("tlsutil: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID hashes the DER SubjectPublicKeyInfo (RFC 7093, section 2,
// method 4) with SHA-256, truncated to 160 bits.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: subject key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

// sign creates the certificate tmpl for key, signed by parent with
// parentKey, and PEM-encodes both.
func sign(tmpl, parent *x509.Certificate, parentKey, key crypto.Signer) (KeyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return KeyPair{}, fmt.Errorf("tlsutil: create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("tlsutil: encode key: %w", err)
	}
	return KeyPair{
		CertPEM: encodePEM(pemCertificate, der),
		KeyPEM:  encodePEM(pemPrivateKey, keyDER),
	}, nil
}

// parseCA parses a CA key pair and checks that it may sign certificates
// now.
func parseCA(ca KeyPair) (*x509.Certificate, crypto.Signer, error) {
	certs, err := parseCertificates(ca.CertPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: CA certificate: %w", err)
	}
	cert := certs[0]
	if err := checkCA(cert); err != nil {
		return nil, nil, err
	}
	key, err := parsePrivateKey(ca.KeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: CA key: %w", err)
	}
	signer, err := signerOf(key, cert.PublicKey)
	if errors.Is(err, ErrKeyMismatch) {
		return nil, nil, fmt.Errorf("%w: the CA key is not the CA certificate's", ErrKeyMismatch)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: CA key: %w", err)
	}
	now := time.Now()
	if now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return nil, nil, fmt.Errorf("%w: CA %q is valid only from %s to %s", ErrUntrusted, cert.Subject.CommonName,
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return cert, signer, nil
}

// checkCA reports whether cert is a CA certificate that may sign others.
func checkCA(cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("%w: %q has no CA basic constraint", ErrNotCA, cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: %q may not sign certificates (key usage)", ErrNotCA, cert.Subject.CommonName)
	}
	return nil
}
