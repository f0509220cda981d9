package tlsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DevClientName is the identity of the client certificate GenerateDev
// makes.
const DevClientName = "root"

// DevCerts is what GenerateDev made.
type DevCerts struct {
	CA     KeyPair // the CA
	Server KeyPair // server certificate for the node
	Client KeyPair // client certificate for DevClientName
	// ServerFiles are the node's files (CA, server certificate and key);
	// zero if nothing was written.
	ServerFiles Files
	// ClientFiles are the client's files (CA, client certificate and key);
	// zero if nothing was written.
	ClientFiles Files
}

// GenerateDev makes the certificates of a development agent ("loghoused
// agent -dev"): a new CA, a server certificate for nodeName and a client
// certificate for DevClientName ("root"), all with the defaults. If dir is
// not empty it is created (mode 0700) and the files are written into it
// under the usual names, refusing to overwrite existing ones; the CA key is
// written too, so that more certificates can be made for the dev cluster.
// If dir is empty nothing is written; use NewStoreFromPEM.
func GenerateDev(dir, nodeName string) (*DevCerts, error) {
	if err := checkName("server name", nodeName); err != nil {
		return nil, err
	}
	ca, err := CreateCA(CAOptions{})
	if err != nil {
		return nil, err
	}
	server, err := CreateCert(ca, CertOptions{Kind: ServerCert, Name: nodeName})
	if err != nil {
		return nil, err
	}
	client, err := CreateCert(ca, CertOptions{Kind: ClientCert, Name: DevClientName})
	if err != nil {
		return nil, err
	}
	dev := &DevCerts{CA: ca, Server: server, Client: client}
	if dir == "" {
		return dev, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsutil: dev certificates: %w", err)
	}
	caCert, caKey := filepath.Join(dir, CACertFileName), filepath.Join(dir, CAKeyFileName)
	pairs := []struct {
		kind Kind
		name string
		pair KeyPair
		out  *Files
	}{
		{ServerCert, nodeName, server, &dev.ServerFiles},
		{ClientCert, DevClientName, client, &dev.ClientFiles},
	}
	var written []string
	undo := func(err error) error {
		for _, name := range written {
			if rerr := os.Remove(name); rerr != nil {
				err = errors.Join(err, fmt.Errorf("tlsutil: remove %s: %w", name, rerr))
			}
		}
		return err
	}
	if err := ca.WriteFiles(caCert, caKey, false); err != nil {
		return nil, err
	}
	written = append(written, caCert, caKey)
	for _, p := range pairs {
		certName, keyName, err := CertFileNames(p.kind, p.name)
		if err != nil {
			return nil, undo(err)
		}
		certFile, keyFile := filepath.Join(dir, certName), filepath.Join(dir, keyName)
		if err := p.pair.WriteFiles(certFile, keyFile, false); err != nil {
			return nil, undo(err)
		}
		written = append(written, certFile, keyFile)
		*p.out = Files{CAFile: caCert, CertFile: certFile, KeyFile: keyFile}
	}
	return dev, nil
}
