package tlsutil_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

func TestWriteFiles(t *testing.T) {
	ca := mustCA(t)
	pair, err := tlsutil.CreateCert(ca, clientOpts("alice"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client-alice.pem"), filepath.Join(dir, "client-alice-key.pem")
	if err := pair.WriteFiles(certFile, keyFile, false); err != nil {
		t.Fatal(err)
	}
	checkFile := func(t *testing.T, name string, want []byte, mode os.FileMode) {
		t.Helper()
		if !bytes.Equal(mustRead(t, name), want) {
			t.Errorf("%s holds other data", name)
		}
		if m := fileMode(t, name); m != mode {
			t.Errorf("%s has mode %v, want %v", name, m, mode)
		}
	}
	checkFile(t, certFile, pair.CertPEM, 0o644)
	checkFile(t, keyFile, pair.KeyPEM, 0o600)

	read, err := tlsutil.ReadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("ReadKeyPair: %v", err)
	}
	if !bytes.Equal(read.CertPEM, pair.CertPEM) || !bytes.Equal(read.KeyPEM, pair.KeyPEM) {
		t.Error("ReadKeyPair returned other data")
	}

	other, err := tlsutil.CreateCert(ca, clientOpts("alice"))
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(dir, "new-key.pem")
	tests := []struct {
		name          string
		cert, key     string
		force         bool
		want          error
		wantCert      []byte // contents of certFile afterwards
		otherKeyExist bool
	}{
		{"both exist", certFile, keyFile, false, tlsutil.ErrFileExists, pair.CertPEM, false},
		{"cert exists", certFile, otherKey, false, tlsutil.ErrFileExists, pair.CertPEM, false},
		{"same name", otherKey, otherKey, true, tlsutil.ErrInvalidOptions, pair.CertPEM, false},
		{"missing directory", filepath.Join(dir, "no", "c.pem"), otherKey, false, fs.ErrNotExist, pair.CertPEM, false},
		{"force", certFile, keyFile, true, nil, other.CertPEM, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := other.WriteFiles(tt.cert, tt.key, tt.force)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			got, rerr := os.ReadFile(certFile)
			if rerr != nil || !bytes.Equal(got, tt.wantCert) {
				t.Errorf("%s changed wrongly (read error %v)", certFile, rerr)
			}
			if _, serr := os.Stat(otherKey); serr == nil != tt.otherKeyExist {
				t.Errorf("%s: stat error %v, want exists = %v", otherKey, serr, tt.otherKeyExist)
			}
		})
	}
	checkFile(t, certFile, other.CertPEM, 0o644)
	checkFile(t, keyFile, other.KeyPEM, 0o600)

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"client-alice-key.pem", "client-alice.pem"}; !slices.Equal(names, want) {
		t.Errorf("directory holds %q, want %q (no temporary files)", names, want)
	}
}

func TestGenerateDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	dev, err := tlsutil.GenerateDev(dir, "dev-node")
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := map[string]os.FileMode{
		tlsutil.CACertFileName:    0o644,
		tlsutil.CAKeyFileName:     0o600,
		"server-dev-node.pem":     0o644,
		"server-dev-node-key.pem": 0o600,
		"client-root.pem":         0o644,
		"client-root-key.pem":     0o600,
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(wantFiles) {
		t.Errorf("%d files in %s, want %d", len(ents), dir, len(wantFiles))
	}
	for name, mode := range wantFiles {
		if m := fileMode(t, filepath.Join(dir, name)); m != mode {
			t.Errorf("%s: mode %v, want %v", name, m, mode)
		}
	}
	if m := fileMode(t, dir); m != 0o700 {
		t.Errorf("directory mode %v, want 0700", m)
	}
	if got := filepath.Base(dev.ServerFiles.CertFile); got != "server-dev-node.pem" {
		t.Errorf("server cert file %q", got)
	}
	if got := filepath.Base(dev.ClientFiles.KeyFile); got != "client-root-key.pem" {
		t.Errorf("client key file %q", got)
	}

	srv, cli := mustStore(t, dev.ServerFiles), mustStore(t, dev.ClientFiles)
	res := handshake(t, srv.ServerConfig(), cli.ClientConfig(tlsutil.ServerRole))
	if !res.ok() {
		t.Fatalf("handshake: server %v, client %v", res.serverErr, res.clientErr)
	}
	if id, err := tlsutil.IdentityFromState(res.server); err != nil || id != tlsutil.DevClientName {
		t.Errorf("identity %q, %v; want %q", id, err, tlsutil.DevClientName)
	}

	if _, err := tlsutil.GenerateDev(dir, "dev-node"); !errors.Is(err, tlsutil.ErrFileExists) {
		t.Errorf("second GenerateDev: %v, want ErrFileExists", err)
	}
	if _, err := tlsutil.NewStore(dev.ServerFiles); err != nil {
		t.Errorf("files changed by the refused GenerateDev: %v", err)
	}
	if _, err := tlsutil.GenerateDev(t.TempDir(), ""); !errors.Is(err, tlsutil.ErrInvalidName) {
		t.Errorf("GenerateDev without node name: %v, want ErrInvalidName", err)
	}
}

func TestGenerateDevInMemory(t *testing.T) {
	dev, err := tlsutil.GenerateDev("", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if dev.ServerFiles != (tlsutil.Files{}) || dev.ClientFiles != (tlsutil.Files{}) {
		t.Errorf("in-memory GenerateDev returned files %+v %+v", dev.ServerFiles, dev.ClientFiles)
	}
	srv, err := tlsutil.NewStoreFromPEM(dev.CA.CertPEM, dev.Server)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tlsutil.NewStoreFromPEM(dev.CA.CertPEM, dev.Client)
	if err != nil {
		t.Fatal(err)
	}
	res := handshake(t, srv.ServerConfig(), cli.ClientConfig(tlsutil.ServerRole))
	if !res.ok() {
		t.Fatalf("handshake: server %v, client %v", res.serverErr, res.clientErr)
	}
	if err := srv.Reload(); !errors.Is(err, tlsutil.ErrNoFiles) {
		t.Errorf("Reload: %v, want ErrNoFiles", err)
	}
}
