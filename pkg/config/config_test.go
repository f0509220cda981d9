package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loghouse/loghouse/pkg/commitlog"
)

func TestExampleParses(t *testing.T) {
	c := Default()
	if err := c.LoadFile(filepath.Join("..", "..", "config.hcl.example")); err != nil {
		t.Fatal(err)
	}
	c.AdvertiseAddr = "10.0.0.1"
	if err := c.Validate(false); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
	// The example sets only data_dir and tls; every commented value is the
	// default.
	want := Default()
	want.DataDir = "/var/lib/loghouse"
	want.AdvertiseAddr = "10.0.0.1"
	want.TLS = TLS{CAFile: "/etc/loghouse/tls/loghouse-agent-ca.pem", CertFile: "/etc/loghouse/tls/server-loghouse-1.pem", KeyFile: "/etc/loghouse/tls/server-loghouse-1-key.pem"}
	if c.DataDir != want.DataDir || c.TLS != want.TLS || c.Ports != want.Ports || c.Storage != want.Storage || c.Log != want.Log || c.Raft != want.Raft {
		t.Fatalf("example gives %+v, want %+v", c, want)
	}
}

// TestExampleShowsTheDefaults uncomments every commented setting of
// config.hcl.example (except those shown with a placeholder value) and
// checks that the result is exactly the defaults: the example documents
// every default truthfully, and every setting it shows parses.
func TestExampleShowsTheDefaults(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "config.hcl.example"))
	if err != nil {
		t.Fatal(err)
	}
	placeholders := map[string]bool{
		"node_name": true, "advertise_addr": true, "bootstrap_expect": true, "retry_join": true,
		"encrypt": true, "model_file": true, "policy_file": true, "address": true,
	}
	setting := regexp.MustCompile(`^(\s*)# ([a-z_]+)(\s*=\s*.+)$`)
	var out []string
	uncommented := 0
	for _, line := range strings.Split(string(src), "\n") {
		if m := setting.FindStringSubmatch(line); m != nil && !placeholders[m[2]] {
			line = m[1] + m[2] + m[3]
			uncommented++
		}
		out = append(out, line)
	}
	if uncommented < 30 {
		t.Fatalf("only %d commented settings found; has the example's format changed?", uncommented)
	}
	c := Default()
	if err := c.LoadBytes("example-uncommented.hcl", []byte(strings.Join(out, "\n"))); err != nil {
		t.Fatalf("an example setting does not parse: %v", err)
	}
	want := Default()
	want.DataDir = "/var/lib/loghouse"
	want.TLS = c.TLS
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("the example's values differ from the defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		check   func(t *testing.T, c Config)
		wantErr string // substring; empty means success
	}{
		{name: "everything", src: `
node_name = "n1"
data_dir = "/data"
bind_addr = "127.0.0.1"
bootstrap = true
ports { rpc = 9400 }
peer "n2" { address = "127.0.0.2:9400" }
peer "n3" { address = "127.0.0.3:9400" }
tls {
  ca_file = "ca.pem"
  cert_file = "c.pem"
  key_file = "k.pem"
}
log { level = "debug" }
storage {
  sync = "none"
  segment_bytes = "16MiB"
  max_entry_bytes = 4194304
  preallocate = "1MiB"
  retention_bytes = "10GB"
  retention_age = "168h"
}
raft { election_timeout = "2s" }
`, check: func(t *testing.T, c Config) {
			if c.NodeName != "n1" || c.DataDir != "/data" || c.Ports.RPC != 9400 || c.Ports.Serf != DefaultSerfPort || !c.Bootstrap {
				t.Fatalf("got %+v", c)
			}
			if len(c.Peers) != 2 || c.Peers[1] != (Peer{Name: "n3", Address: "127.0.0.3:9400"}) {
				t.Fatalf("peers %+v", c.Peers)
			}
			s := c.Storage
			if s.Sync != commitlog.SyncNone || s.SegmentBytes != 16<<20 || s.MaxEntryBytes != 4<<20 || s.Preallocate != 1<<20 || s.RetentionBytes != 10e9 || s.RetentionAge != 168*time.Hour {
				t.Fatalf("storage %+v", s)
			}
			if c.Raft.ElectionTimeout != 2*time.Second || c.AdvertiseRPC() != "127.0.0.1:9400" {
				t.Fatalf("raft %+v, advertise %s", c.Raft, c.AdvertiseRPC())
			}
			if err := c.Validate(false); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "unknown key", src: "data_dir = \"/d\"\nfrobnicate = 1\n", wantErr: "test.hcl:2:1"},
		{name: "unknown block key", src: "storage {\n  sink = \"always\"\n}\n", wantErr: "test.hcl:2:3"},
		{name: "syntax", src: "data_dir = \n", wantErr: "test.hcl:1"},
		{name: "bad size", src: "storage {\n  segment_bytes = \"64 parsecs\"\n}\n", wantErr: "test.hcl:2:19: Invalid storage.segment_bytes"},
		{name: "negative size", src: "storage {\n  retention_bytes = -1\n}\n", wantErr: "Invalid storage.retention_bytes"},
		{name: "bad duration", src: "raft {\n  election_timeout = \"soon\"\n}\n", wantErr: "test.hcl:2:22: Invalid raft.election_timeout"},
		{name: "bad sync", src: "storage {\n  sync = \"sometimes\"\n}\n", wantErr: "test.hcl:2:10: Invalid storage.sync"},
		{name: "wrong type", src: "ports {\n  rpc = \"x\"\n}\n", wantErr: "test.hcl:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			err := c.LoadBytes("test.hcl", []byte(tt.src))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestValidate(t *testing.T) {
	base := func() Config {
		c := Default()
		c.NodeName, c.DataDir, c.BindAddr = "n1", "/d", "127.0.0.1"
		c.TLS = TLS{CAFile: "a", CertFile: "b", KeyFile: "c"}
		return c
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		dev    bool
		want   string
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "dev needs no data dir or tls", mutate: func(c *Config) { c.DataDir, c.TLS = "", TLS{} }, dev: true},
		{name: "no data dir", mutate: func(c *Config) { c.DataDir = "" }, want: "data_dir is required"},
		{name: "no tls", mutate: func(c *Config) { c.TLS.KeyFile = "" }, want: "tls.ca_file"},
		{name: "wildcard without advertise", mutate: func(c *Config) { c.BindAddr = "0.0.0.0" }, want: "advertise_addr is required"},
		{name: "bad bind", mutate: func(c *Config) { c.BindAddr = "localhost" }, want: "bind_addr"},
		{name: "port clash", mutate: func(c *Config) { c.Ports.HTTP = c.Ports.RPC }, want: "are both 8400"},
		{name: "port range", mutate: func(c *Config) { c.Ports.Serf = 70000 }, want: "ports.serf 70000"},
		{name: "peers without bootstrap", mutate: func(c *Config) { c.Peers = []Peer{{Name: "n2", Address: "h:1"}} }, want: "bootstrap = true"},
		{name: "peer is self", mutate: func(c *Config) { c.Bootstrap, c.Peers = true, []Peer{{Name: "n1", Address: "h:1"}} }, want: "listed twice or is this node"},
		{name: "peer address", mutate: func(c *Config) { c.Bootstrap, c.Peers = true, []Peer{{Name: "n2", Address: "h"}} }, want: "not host:port"},
		{name: "log level", mutate: func(c *Config) { c.Log.Level = "loud" }, want: "log.level"},
		{name: "entry above segment", mutate: func(c *Config) { c.Storage.MaxEntryBytes = c.Storage.SegmentBytes + 1 }, want: "max_entry_bytes"},
		{name: "tiny preallocation", mutate: func(c *Config) { c.Storage.Preallocate = 4096 }, want: "storage.preallocate"},
		{name: "preallocation above segment", mutate: func(c *Config) { c.Storage.Preallocate = c.Storage.SegmentBytes + 1 }, want: "storage.preallocate"},
		{name: "negative preallocation", mutate: func(c *Config) { c.Storage.Preallocate = -1 }, want: "storage.preallocate"},
		{name: "cluster settings", mutate: func(c *Config) {
			c.BootstrapExpect, c.RetryJoin = 3, []string{"10.0.0.2", "10.0.0.3:9000", "[::1]:8401", "node-3.example"}
			c.Encrypt = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		}},
		{name: "bootstrap and bootstrap_expect", mutate: func(c *Config) { c.Bootstrap, c.BootstrapExpect = true, 3 }, want: "exclude each other"},
		{name: "negative expect", mutate: func(c *Config) { c.BootstrapExpect = -1 }, want: "bootstrap_expect -1"},
		{name: "bad join port", mutate: func(c *Config) { c.RetryJoin = []string{"h:99999"} }, want: `retry_join: "h:99999" has no valid port`},
		{name: "empty join", mutate: func(c *Config) { c.RetryJoin = []string{""} }, want: "retry_join: an empty address"},
		{name: "key not base64", mutate: func(c *Config) { c.Encrypt = "not base64!" }, want: "encrypt is not base64"},
		{name: "key length", mutate: func(c *Config) { c.Encrypt = "AAAA" }, want: "decodes to 3 bytes"},
		{name: "tiny reconnect timeout", mutate: func(c *Config) { c.ReconnectTimeout = time.Millisecond }, want: "reconnect_timeout"},
		{name: "every problem at once", mutate: func(c *Config) { c.DataDir, c.Log.Level = "", "loud" }, want: "data_dir is required; log.level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			err := c.Validate(tt.dev)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestClusterSettingsLoad(t *testing.T) {
	c := Default()
	err := c.LoadBytes("c.hcl", []byte(`
bootstrap_expect = 3
retry_join = ["10.0.0.2", "10.0.0.3:8401"]
retry_interval = "2s"
retry_max = 5
encrypt = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
leave_on_terminate = true
reconnect_timeout = "8h"
reconcile_interval = "10s"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.BootstrapExpect != 3 || len(c.RetryJoin) != 2 || c.RetryInterval != 2*time.Second || c.RetryMax != 5 ||
		!c.LeaveOnTerminate || c.ReconnectTimeout != 8*time.Hour || c.ReconcileInterval != 10*time.Second {
		t.Fatalf("loaded %+v", c)
	}
	if k, err := c.EncryptKey(); err != nil || len(k) != 32 {
		t.Fatalf("key %v %v", k, err)
	}
	err = c.LoadBytes("bad.hcl", []byte("retry_interval = 5\n"))
	if err == nil || !strings.Contains(err.Error(), "bad.hcl:1:") || !strings.Contains(err.Error(), "retry_interval") {
		t.Fatalf("a number for a duration: %v", err)
	}
}

func TestResolveAddrs(t *testing.T) {
	c := Default()
	c.BindAddr = `{{ GetAllInterfaces | include "flags" "loopback" | include "type" "IPv4" | attr "address" }}`
	if err := c.ResolveAddrs(); err != nil {
		t.Fatal(err)
	}
	if c.BindAddr != "127.0.0.1" {
		t.Fatalf("bind_addr resolved to %q", c.BindAddr)
	}
	c.AdvertiseAddr = `{{ "10.0.0.1 10.0.0.2" }}`
	if err := c.ResolveAddrs(); err == nil || !strings.Contains(err.Error(), "exactly one IP address") {
		t.Fatalf("a template with several addresses: %v", err)
	}
	c.AdvertiseAddr = "{{ nonsense }}"
	if err := c.ResolveAddrs(); err == nil || !strings.Contains(err.Error(), "advertise_addr template") {
		t.Fatalf("a broken template: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"512", 512, true}, {"1KB", 1000, true}, {"1kib", 1024, true},
		{"64MiB", 64 << 20, true}, {" 2 GiB ", 2 << 30, true}, {"1TB", 1e12, true},
		{"", 0, false}, {"MiB", 0, false}, {"1.5GiB", 0, false}, {"10XB", 0, false},
		{"99999999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte("data_dir = \"/d\"\nstorage { segment_bytes = \"1MiB\" }\n"))
	f.Add([]byte("peer \"a\" { address = \"h:1\" }"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c := Default()
		if err := c.LoadBytes("fuzz.hcl", src); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
	})
}

func TestLoadDirAndEnv(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"10-base.hcl":   "data_dir = \"/a\"\nnode_name = \"n1\"\n",
		"20-local.hcl":  "data_dir = \"/b\"\n",
		"ignored.json":  "{",
		"30-secret.hcl": "encrypt = \"from-file\"\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := Default()
	if err := c.LoadDir(dir); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/b" || c.NodeName != "n1" || c.Encrypt != "from-file" {
		t.Fatalf("files applied out of order: %+v", c)
	}
	t.Setenv(EnvEncrypt, "from-env")
	c.ApplyEnv()
	if c.Encrypt != "from-env" {
		t.Fatalf("the environment does not override files: %q", c.Encrypt)
	}
	if err := c.LoadDir(filepath.Join(dir, "missing")); err == nil || !errors.Is(err, ErrInvalid) {
		t.Fatalf("a missing dir: %v", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "x.hcl"), []byte("nope = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadDir(bad); err == nil || !strings.Contains(err.Error(), "x.hcl:1:1") {
		t.Fatalf("a bad file in a dir: %v", err)
	}
}
