package tlsutil_test

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

func writeRaw(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReload(t *testing.T) {
	p, files, srv, cli := serverAndClient(t)
	if srv.Files() != files {
		t.Errorf("Files() = %+v, want %+v", srv.Files(), files)
	}

	// One config, made before the reloads, serves the new material.
	serverCfg := srv.ServerConfig()
	clientCfg := cli.ClientConfig(tlsutil.ServerRole)
	serve := func(t *testing.T) (string, string) {
		t.Helper()
		res := handshake(t, serverCfg, clientCfg)
		if !res.ok() {
			t.Fatalf("handshake: server %v, client %v", res.serverErr, res.clientErr)
		}
		id, err := tlsutil.IdentityFromState(res.server)
		if err != nil {
			t.Fatal(err)
		}
		return res.client.PeerCertificates[0].SerialNumber.String(), id
	}
	first, _ := serve(t)
	if want := srv.Leaf().SerialNumber.String(); first != want {
		t.Fatalf("served serial %s, Leaf %s", first, want)
	}

	// A new certificate in the same files: new connections get it.
	p.issue(t, serverOpts("node-1"))
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	second, _ := serve(t)
	if second == first || second != srv.Leaf().SerialNumber.String() {
		t.Fatalf("after reload served %s (before %s, Leaf %s)", second, first, srv.Leaf().SerialNumber)
	}

	// The client side reloads too: a new identity is presented.
	cliFiles := cli.Files()
	p.write(t, tlsutil.ClientCert, "alice", p.cert(t, clientOpts("alice-2")))
	if err := cli.Reload(); err != nil {
		t.Fatalf("client Reload: %v", err)
	}
	if _, id := serve(t); id != "alice-2" {
		t.Errorf("server sees %q after client reload, want alice-2", id)
	}

	// Broken material: each reload fails, names the file and keeps the
	// served certificate.
	good, goodKey := mustRead(t, files.CertFile), mustRead(t, files.KeyFile)
	foreignKey := p.cert(t, serverOpts("node-1")).KeyPEM
	other := newPKI(t, tlsutil.CAOptions{})
	foreign := other.cert(t, serverOpts("node-1"))
	expired := p.cert(t, tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: "node-1", NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour})
	caBytes := mustRead(t, files.CAFile)
	tests := []struct {
		name   string
		damage func(t *testing.T)
		file   string
		cause  error
	}{
		{"garbage certificate", func(t *testing.T) { writeRaw(t, files.CertFile, []byte("not a certificate")) }, files.CertFile, nil},
		{"truncated certificate", func(t *testing.T) { writeRaw(t, files.CertFile, good[:len(good)/2]) }, files.CertFile, nil},
		{"missing key", func(t *testing.T) {
			if err := os.Remove(files.KeyFile); err != nil {
				t.Fatal(err)
			}
		}, files.KeyFile, fs.ErrNotExist},
		{"key of another certificate", func(t *testing.T) { writeRaw(t, files.KeyFile, foreignKey) }, files.KeyFile, tlsutil.ErrKeyMismatch},
		{"certificate in the key file", func(t *testing.T) { writeRaw(t, files.KeyFile, good) }, files.KeyFile, nil},
		{"certificate from another CA", func(t *testing.T) {
			writeRaw(t, files.CertFile, foreign.CertPEM)
			writeRaw(t, files.KeyFile, foreign.KeyPEM)
		}, files.CertFile, tlsutil.ErrUntrusted},
		{"expired certificate", func(t *testing.T) {
			writeRaw(t, files.CertFile, expired.CertPEM)
			writeRaw(t, files.KeyFile, expired.KeyPEM)
		}, files.CertFile, tlsutil.ErrUntrusted},
		{"leaf as CA", func(t *testing.T) { writeRaw(t, files.CAFile, good) }, files.CAFile, tlsutil.ErrNotCA},
		{"empty CA file", func(t *testing.T) { writeRaw(t, files.CAFile, nil) }, files.CAFile, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.damage(t)
			t.Cleanup(func() {
				writeRaw(t, files.CertFile, good)
				writeRaw(t, files.KeyFile, goodKey)
				writeRaw(t, files.CAFile, caBytes)
			})
			err := srv.Reload()
			t.Log(err)
			var fe *tlsutil.FileError
			if !errors.As(err, &fe) || fe.File != tt.file || !errors.Is(err, tlsutil.ErrInvalidFile) {
				t.Fatalf("Reload = %v, want a FileError for %s", err, tt.file)
			}
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name %s", err, tt.file)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("error %v, want cause %v", err, tt.cause)
			}
			if got, _ := serve(t); got != second {
				t.Errorf("after failed reload served %s, want the old %s", got, second)
			}
			if _, err := tlsutil.NewStore(files); err == nil {
				t.Error("NewStore accepts the broken files")
			}
		})
	}
	if err := srv.Reload(); err != nil {
		t.Fatalf("Reload of the restored files: %v", err)
	}
	if cliFiles != cli.Files() {
		t.Error("client files changed")
	}
}

// TestReloadCA rotates the CA: after the server reloads a CA file without
// the old CA, clients of the old CA are refused, and a bundle of both CAs
// accepts both.
func TestReloadCA(t *testing.T) {
	oldCA := newPKI(t, tlsutil.CAOptions{})
	newCA := newPKI(t, tlsutil.CAOptions{})
	files := oldCA.issue(t, serverOpts("node-1"))
	srv := mustStore(t, files)
	serverCfg := srv.ServerConfig()
	oldCli := oldCA.store(t, clientOpts("old"))
	newCli := newCA.store(t, clientOpts("new"))

	// Bundle: the server's CA file lists both CAs.
	bundle := append(append([]byte{}, oldCA.ca.CertPEM...), newCA.ca.CertPEM...)
	writeRaw(t, files.CAFile, bundle)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, cli := range []*tlsutil.Store{oldCli, newCli} {
		res := handshake(t, serverCfg, custom2(t, cli, oldCA))
		if !res.ok() {
			t.Errorf("bundle: %s refused: server %v", cli.Leaf().Subject.CommonName, res.serverErr)
		}
	}

	// Only the new CA, and a server certificate from it.
	newFiles := newCA.issue(t, serverOpts("node-1"))
	for _, f := range []struct{ from, to string }{{newFiles.CertFile, files.CertFile}, {newFiles.KeyFile, files.KeyFile}, {newCA.caFile, files.CAFile}} {
		writeRaw(t, f.to, mustRead(t, f.from))
	}
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if res := handshake(t, serverCfg, custom2(t, oldCli, newCA)); res.serverErr == nil || fromPeer(res.serverErr) {
		t.Errorf("old CA client accepted after rotation: server %v", res.serverErr)
	}
	if res := handshake(t, serverCfg, custom2(t, newCli, newCA)); !res.ok() {
		t.Errorf("new CA client refused: server %v, client %v", res.serverErr, res.clientErr)
	}
	// A client whose CA file still names only the old CA picks up the new
	// one on reload.
	writeRaw(t, oldCli.Files().CAFile, newCA.ca.CertPEM)
	cliFiles := newCA.issue(t, clientOpts("old"))
	writeRaw(t, oldCli.Files().CertFile, mustRead(t, cliFiles.CertFile))
	writeRaw(t, oldCli.Files().KeyFile, mustRead(t, cliFiles.KeyFile))
	if err := oldCli.Reload(); err != nil {
		t.Fatal(err)
	}
	if res := handshake(t, serverCfg, oldCli.ClientConfig(tlsutil.ServerRole)); !res.ok() {
		t.Errorf("reloaded client refused: server %v, client %v", res.serverErr, res.clientErr)
	}
}

// custom2 presents cli's certificate and trusts ca, so that only the
// server's checks are exercised.
func custom2(t *testing.T, cli *tlsutil.Store, ca *pki) *tls.Config {
	t.Helper()
	cfg := cli.ClientConfig(tlsutil.ServerRole)
	cfg.InsecureSkipVerify = false
	cfg.VerifyConnection = nil
	cfg.RootCAs = ca.pool(t)
	return cfg
}

// TestReloadConcurrent reloads while handshakes run; with -race it shows
// the Store is safe for concurrent use, and every handshake is served one
// of the certificates that were current.
func TestReloadConcurrent(t *testing.T) {
	p, files, srv, cli := serverAndClient(t)
	versions := [2]tlsutil.KeyPair{p.cert(t, serverOpts("node-1")), p.cert(t, serverOpts("node-1"))}
	valid := map[string]bool{srv.Leaf().SerialNumber.String(): true}
	for _, v := range versions {
		valid[parseCert(t, v.CertPEM).SerialNumber.String()] = true
	}

	const handshakes, reloads = 8, 20
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range reloads {
			if err := versions[i%2].WriteFiles(files.CertFile, files.KeyFile, true); err != nil {
				t.Error(err)
				return
			}
			if err := srv.Reload(); err != nil {
				t.Error(err)
			}
		}
	}()
	serverCfg := srv.ServerConfig()
	for range handshakes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := handshake(t, serverCfg, cli.ClientConfig(tlsutil.ServerRole))
			if !res.ok() {
				t.Errorf("handshake: server %v, client %v", res.serverErr, res.clientErr)
				return
			}
			if s := res.client.PeerCertificates[0].SerialNumber.String(); !valid[s] {
				t.Errorf("served unknown serial %s", s)
			}
		}()
	}
	wg.Wait()
}
