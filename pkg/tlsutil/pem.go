package tlsutil

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// PEM block types.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"    // PKCS #8, what we write
	pemECKey       = "EC PRIVATE KEY" // SEC 1, read only
	pemRSAKey      = "RSA PRIVATE KEY"
	pemECParams    = "EC PARAMETERS" // written by "openssl ecparam"; skipped
)

// ReadKeyPair reads a PEM certificate file and a PEM key file, as the CLI
// does with a CA before CreateCert. It checks that both parse and that the
// key belongs to the certificate; errors are *FileError.
func ReadKeyPair(certFile, keyFile string) (KeyPair, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return KeyPair{}, &FileError{File: certFile, Err: err}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return KeyPair{}, &FileError{File: keyFile, Err: err}
	}
	if _, err := parseKeyPair(certPEM, keyPEM, certFile, keyFile); err != nil {
		return KeyPair{}, err
	}
	return KeyPair{CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// parseCertificates returns every certificate in data, in order. Text
// outside PEM blocks is ignored; a PEM block of another type is an error.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("PEM block %q where a %q was expected", block.Type, pemCertificate)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// parsePrivateKey returns the one private key in data: PKCS #8, SEC 1 (EC)
// or PKCS #1 (RSA). Encrypted keys are not supported.
func parsePrivateKey(data []byte) (crypto.PrivateKey, error) {
	var key crypto.PrivateKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type == pemECParams {
			continue
		}
		if key != nil {
			return nil, errors.New("more than one PEM block; a key file holds one key")
		}
		var err error
		switch block.Type {
		case pemPrivateKey:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case pemECKey:
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case pemRSAKey:
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %q where a private key was expected", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", block.Type, err)
		}
	}
	if key == nil {
		return nil, errors.New("no PEM private key found")
	}
	return key, nil
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// signerOf returns key as a crypto.Signer whose public key is pub.
func signerOf(key crypto.PrivateKey, pub crypto.PublicKey) (crypto.Signer, error) {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	if !publicKeysEqual(signer.Public(), pub) {
		return nil, ErrKeyMismatch
	}
	return signer, nil
}

// parseKeyPair parses a certificate chain (leaf first) and its key, as
// named files for error messages, and checks that the key is the leaf's.
func parseKeyPair(certPEM, keyPEM []byte, certFile, keyFile string) (tls.Certificate, error) {
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return tls.Certificate{}, &FileError{File: certFile, Err: err}
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return tls.Certificate{}, &FileError{File: keyFile, Err: err}
	}
	signer, err := signerOf(key, certs[0].PublicKey)
	if err != nil {
		return tls.Certificate{}, &FileError{File: keyFile, Err: fmt.Errorf("%w in %s", err, certFile)}
	}
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	return tls.Certificate{Certificate: chain, PrivateKey: signer, Leaf: certs[0]}, nil
}
