package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsutil.CreateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsutil.CreateCert(ca, tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.WriteFiles(filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1-key.pem"), false); err != nil {
		t.Fatal(err)
	}
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.hcl", `node_name = "n1"
data_dir = "`+dir+`/data"
bind_addr = "127.0.0.1"
tls {
  ca_file = "`+dir+`/ca.pem"
  cert_file = "`+dir+`/n1.pem"
  key_file = "`+dir+`/n1-key.pem"
}
`)
	tests := []struct {
		name string
		args []string
		want string // in stdout on success, in the error otherwise
		ok   bool
	}{
		{name: "valid", args: []string{good}, want: "Configuration is valid.", ok: true},
		{name: "a later file overrides", args: []string{good, write("o.hcl", "log { level = \"debug\" }\n")}, want: "valid", ok: true},
		{name: "unknown key", args: []string{good, write("u.hcl", "colour = 1\n")}, want: "u.hcl:1:1"},
		{name: "cross-field rule", args: []string{good, write("x.hcl", "bootstrap = true\nbootstrap_expect = 3\n")}, want: "exclude each other"},
		{name: "missing cert", args: []string{good, write("m.hcl", "tls {\n  cert_file = \"/nonexistent/n1.pem\"\n}\n")}, want: "/nonexistent/n1.pem"},
		{name: "missing cert, syntax only", args: []string{"-syntax-only", good, write("m2.hcl", "tls {\n  cert_file = \"/nonexistent/n1.pem\"\n}\n")}, want: "valid", ok: true},
		{name: "no files", args: nil, want: "needs at least one FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"validate"}, tt.args...), &out, &errOut)
			if tt.ok {
				if err != nil || !strings.Contains(out.String(), tt.want) {
					t.Fatalf("err %v, out %q", err, out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}
