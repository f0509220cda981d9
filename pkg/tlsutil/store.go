package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// Files names the PEM files a node's TLS material is loaded from.
type Files struct {
	// CAFile holds the CA certificate(s) that peers' certificates must
	// chain to. More than one CA may be listed, to rotate CAs.
	CAFile string
	// CertFile holds this node's certificate, optionally followed by
	// intermediate certificates.
	CertFile string
	// KeyFile holds the certificate's private key.
	KeyFile string
}

// Validate reports whether all three paths are set.
func (f Files) Validate() error {
	switch {
	case f.CAFile == "":
		return fmt.Errorf("%w: no CA file", ErrInvalidOptions)
	case f.CertFile == "":
		return fmt.Errorf("%w: no certificate file", ErrInvalidOptions)
	case f.KeyFile == "":
		return fmt.Errorf("%w: no key file", ErrInvalidOptions)
	}
	return nil
}

// Store holds a node's current TLS material (CA pool, certificate and key)
// and hands out tls.Configs that always use the current material, so that
// Reload takes effect for new connections without a restart. Established
// connections keep the material they were made with.
//
// A Store is safe for concurrent use.
type Store struct {
	files Files
	// fromFiles is false for a Store built from memory, which cannot
	// reload.
	fromFiles bool
	// reload serializes Reload, so that the last one to finish is the
	// last one to have read the files.
	reload sync.Mutex
	cur    atomic.Pointer[material]
}

// material is one consistent set of TLS material; it never changes once
// stored.
type material struct {
	cert *tls.Certificate // Leaf is set
	pool *x509.CertPool
}

// NewStore loads and checks the files: the CA file holds only CA
// certificates, the key belongs to the certificate, and the certificate
// chains to the CA and is valid now. Errors are *FileError, naming the file
// at fault.
func NewStore(files Files) (*Store, error) {
	if err := files.Validate(); err != nil {
		return nil, err
	}
	s := &Store{files: files, fromFiles: true}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewStoreFromPEM is NewStore for material held in memory (tests, dev
// mode). Its Reload returns ErrNoFiles.
func NewStoreFromPEM(caPEM []byte, pair KeyPair) (*Store, error) {
	m, err := loadMaterial(caPEM, pair.CertPEM, pair.KeyPEM, Files{
		CAFile:   "CA PEM",
		CertFile: "certificate PEM",
		KeyFile:  "key PEM",
	})
	if err != nil {
		return nil, err
	}
	s := &Store{}
	s.cur.Store(m)
	return s, nil
}

// Files returns the files the Store loads from; zero for a Store built
// from memory.
func (s *Store) Files() Files { return s.files }

// Reload reads and checks the files again, as NewStore does, and makes the
// new material current for connections made from now on. If anything fails
// the current material stays in use and the error (a *FileError) names the
// file at fault. Reload is atomic: a connection sees the old material or
// the new, never a mix.
func (s *Store) Reload() error {
	if !s.fromFiles {
		return fmt.Errorf("tlsutil: reload: %w", ErrNoFiles)
	}
	s.reload.Lock()
	defer s.reload.Unlock()
	var pems [3][]byte
	for i, name := range []string{s.files.CAFile, s.files.CertFile, s.files.KeyFile} {
		data, err := os.ReadFile(name)
		if err != nil {
			return &FileError{File: name, Err: err}
		}
		pems[i] = data
	}
	m, err := loadMaterial(pems[0], pems[1], pems[2], s.files)
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

// Leaf returns the current certificate, parsed.
func (s *Store) Leaf() *x509.Certificate { return s.cur.Load().cert.Leaf }

// loadMaterial parses and checks one set of material; names are used in
// errors only.
func loadMaterial(caPEM, certPEM, keyPEM []byte, names Files) (*material, error) {
	cas, err := parseCertificates(caPEM)
	if err != nil {
		return nil, &FileError{File: names.CAFile, Err: err}
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		if err := checkCA(ca); err != nil {
			return nil, &FileError{File: names.CAFile, Err: err}
		}
		pool.AddCert(ca)
	}
	cert, err := parseKeyPair(certPEM, keyPEM, names.CertFile, names.KeyFile)
	if err != nil {
		return nil, err
	}
	intermediates := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, &FileError{File: names.CertFile, Err: err}
		}
		intermediates.AddCert(c)
	}
	_, err = cert.Leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, &FileError{File: names.CertFile, Err: fmt.Errorf("%w in %s: %w", ErrUntrusted, names.CAFile, err)}
	}
	return &material{cert: &cert, pool: pool}, nil
}
