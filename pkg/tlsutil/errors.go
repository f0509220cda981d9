package tlsutil

import (
	"errors"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap these with context;
// test for them with errors.Is.
var (
	// ErrInvalidOptions means CAOptions, CertOptions or Files failed
	// validation (unknown key type, negative validity, a certificate that
	// would outlive its CA, SANs on a client certificate, ...).
	ErrInvalidOptions = errors.New("tlsutil: invalid options")
	// ErrInvalidName means a node name, client identity or DNS name is
	// empty or not allowed (see the package doc for the rules).
	ErrInvalidName = errors.New("tlsutil: invalid name")
	// ErrFileExists means a write would replace an existing file and force
	// was not set.
	ErrFileExists = errors.New("tlsutil: file exists")
	// ErrInvalidFile means a CA, certificate or key file could not be used:
	// it is missing, unreadable, holds no PEM block of the right type, or
	// fails a check. A *FileError names the file.
	ErrInvalidFile = errors.New("tlsutil: unusable certificate or key file")
	// ErrKeyMismatch means a private key is not the key of the certificate
	// it is paired with.
	ErrKeyMismatch = errors.New("tlsutil: private key does not match certificate")
	// ErrUntrusted means a certificate does not verify against the CA: it
	// is signed by another CA, expired or not yet valid.
	ErrUntrusted = errors.New("tlsutil: certificate not trusted by the CA")
	// ErrNotCA means a certificate given as a CA is not a CA certificate
	// allowed to sign certificates.
	ErrNotCA = errors.New("tlsutil: not a CA certificate")
	// ErrNoClientCert means a connection has no verified peer certificate:
	// the handshake is incomplete, or the peer presented none, or it was
	// not verified against the CA.
	ErrNoClientCert = errors.New("tlsutil: no verified client certificate")
	// ErrNoIdentity means a verified certificate has an empty common name,
	// so it names no identity.
	ErrNoIdentity = errors.New("tlsutil: certificate has no common name")
	// ErrNotServer means a verified peer certificate does not carry the
	// server role, where only servers are allowed (raft, forwarding).
	ErrNotServer = errors.New("tlsutil: peer is not a server")
	// ErrNoFiles means Reload was called on a Store built from memory,
	// which has no files to read.
	ErrNoFiles = errors.New("tlsutil: store has no files to reload")
)

// FileError says which file could not be used and why. It matches both
// ErrInvalidFile and its cause (for example fs.ErrNotExist,
// ErrKeyMismatch or ErrUntrusted) with errors.Is.
type FileError struct {
	File string // path of the file
	Err  error  // what is wrong with it
}

func (e *FileError) Error() string {
	// The cause often wraps one of our sentinels; say "tlsutil:" once.
	return "tlsutil: " + e.File + ": " + strings.TrimPrefix(e.Err.Error(), "tlsutil: ")
}

// Unwrap lets errors.Is match ErrInvalidFile and the cause.
func (e *FileError) Unwrap() []error { return []error{ErrInvalidFile, e.Err} }
