package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// runTLS makes certificates, like `consul tls`:
//
//	loghoused tls ca create [-dir DIR]
//	loghoused tls cert create -server|-client -name NAME [-dir DIR]
func runTLS(_ context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "usage: loghoused tls ca create [flags] | loghoused tls cert create -server|-client -name NAME [flags]"
	if len(args) < 2 || args[1] != "create" {
		return usageError{use}
	}
	switch args[0] {
	case "ca":
		return tlsCACreate(args[2:], stdout, stderr)
	case "cert":
		return tlsCertCreate(args[2:], stdout, stderr)
	}
	return usageError{use}
}

func keyTypeFlag(s string) (tlsutil.KeyType, error) {
	switch strings.ToLower(s) {
	case "ecdsa", "":
		return tlsutil.KeyECDSA, nil
	case "rsa":
		return tlsutil.KeyRSA, nil
	}
	return "", usageError{fmt.Sprintf("-key-type %q: want ecdsa (P-256) or rsa (2048 bits)", s)}
}

func tlsCACreate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tls ca create", stderr)
	dir := fs.String("dir", ".", "directory to write loghouse-agent-ca.pem and loghouse-agent-ca-key.pem into")
	keyType := fs.String("key-type", "ecdsa", "ecdsa (P-256) or rsa (2048 bits)")
	days := fs.Int("days", 5*365, "validity in days")
	force := fs.Bool("force", false, "overwrite existing files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	kt, err := keyTypeFlag(*keyType)
	if err != nil {
		return err
	}
	if *days < 1 {
		return usageError{fmt.Sprintf("-days must be positive, got %d", *days)}
	}
	ca, err := tlsutil.CreateCA(tlsutil.CAOptions{KeyType: kt, Validity: time.Duration(*days) * 24 * time.Hour})
	if err != nil {
		return err
	}
	cert, key := filepath.Join(*dir, tlsutil.CACertFileName), filepath.Join(*dir, tlsutil.CAKeyFileName)
	if err := ca.WriteFiles(cert, key, *force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "==> Saved %s\n==> Saved %s\n", cert, key)
	return nil
}

func tlsCertCreate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tls cert create", stderr)
	server := fs.Bool("server", false, "a server certificate (carries the server role; may join raft)")
	client := fs.Bool("client", false, "a client certificate (its name is the ACL identity)")
	name := fs.String("name", "", "node name (server) or identity (client)")
	dir := fs.String("dir", ".", "directory to write the certificate and key into")
	caFile := fs.String("ca", tlsutil.CACertFileName, "CA certificate")
	caKey := fs.String("ca-key", tlsutil.CAKeyFileName, "CA key")
	dns := fs.String("dns", "", "comma-separated extra DNS names (servers)")
	ips := fs.String("ip", "", "comma-separated extra IP addresses (servers)")
	keyType := fs.String("key-type", "ecdsa", "ecdsa (P-256) or rsa (2048 bits)")
	days := fs.Int("days", 365, "validity in days")
	force := fs.Bool("force", false, "overwrite existing files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *server == *client {
		return usageError{"give exactly one of -server and -client"}
	}
	if *name == "" {
		return usageError{"-name is required"}
	}
	kt, err := keyTypeFlag(*keyType)
	if err != nil {
		return err
	}
	if *days < 1 {
		return usageError{fmt.Sprintf("-days must be positive, got %d", *days)}
	}
	ca, err := tlsutil.ReadKeyPair(*caFile, *caKey)
	if err != nil {
		return err
	}
	opts := tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: *name, KeyType: kt, Validity: time.Duration(*days) * 24 * time.Hour}
	if *server {
		opts.Kind = tlsutil.ServerCert
		opts.DNSNames = splitList(*dns)
		for _, s := range splitList(*ips) {
			ip := net.ParseIP(s)
			if ip == nil {
				return usageError{fmt.Sprintf("-ip %q is not an IP address", s)}
			}
			opts.IPAddresses = append(opts.IPAddresses, ip)
		}
	} else if *dns != "" || *ips != "" {
		return usageError{"-dns and -ip are for server certificates"}
	}
	pair, err := tlsutil.CreateCert(ca, opts)
	if err != nil {
		return err
	}
	certName, keyName, err := tlsutil.CertFileNames(opts.Kind, *name)
	if err != nil {
		return err
	}
	cert, key := filepath.Join(*dir, certName), filepath.Join(*dir, keyName)
	if err := pair.WriteFiles(cert, key, *force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "==> Saved %s\n==> Saved %s\n", cert, key)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
