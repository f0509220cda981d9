package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

func TestParseSeeds(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "10.0.0.1:8400", want: []string{"10.0.0.1:8400"}},
		{in: "a:1, b:2,,c:3 ", want: []string{"a:1", "b:2", "c:3"}},
		{in: "loghouse://h1:8400,h2:8400", want: []string{"h1:8400", "h2:8400"}},
		{in: "loghouse:///h1:8400", want: []string{"h1:8400"}},
		{in: "[::1]:8400", want: []string{"[::1]:8400"}},
		{in: "dns://h1:8400", wantErr: true},
		{in: "h1", wantErr: true},
		{in: ":8400", wantErr: true},
		{in: "h1:", wantErr: true},
		{in: "", wantErr: true},
		{in: "loghouse://", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSeeds(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseSeeds(%q) = %v, %v", tt.in, got, err)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("error %v does not wrap ErrInvalidConfig", err)
				}
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ParseSeeds(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	p := newPKI(t)
	ok := Config{Seeds: []string{"loghouse://a:1,b:2", "b:2", "c:3"}, TLS: p.clientTLS(t)}
	got, err := ok.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Seeds) != "[a:1 b:2 c:3]" {
		t.Errorf("seeds %q", got.Seeds)
	}
	if got.MaxAttempts != DefaultMaxAttempts || got.InitialBackoff != DefaultInitialBackoff || got.MaxBackoff != DefaultMaxBackoff ||
		got.ResolveInterval != DefaultResolveInterval || got.ConnectTimeout != DefaultConnectTimeout || got.Logger == nil {
		t.Errorf("defaults not applied: %+v", got)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no seeds", func(c *Config) { c.Seeds = nil }, "no seed"},
		{"bad seed", func(c *Config) { c.Seeds = []string{"nope"} }, `"nope" is not host:port`},
		{"no TLS", func(c *Config) { c.TLS = nil }, "TLS is required"},
		{"backoffs crossed", func(c *Config) { c.InitialBackoff, c.MaxBackoff = time.Second, time.Millisecond }, "exceeds MaxBackoff"},
		{"negative attempts", func(c *Config) { c.MaxAttempts = -1 }, "MaxAttempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.change(&cfg)
			_, err := cfg.withDefaults()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("withDefaults() = %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
			if _, err := New(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsutil.CreateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tlsutil.CreateCert(ca, tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: "root"})
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "c.pem"), filepath.Join(dir, "c-key.pem")
	for name, data := range map[string][]byte{caFile: ca.CertPEM, certFile: pair.CertPEM, keyFile: pair.KeyPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(EnvAddr, "loghouse://h1:8400,h2:8400")
	t.Setenv(EnvCACert, caFile)
	t.Setenv(EnvClientCert, certFile)
	t.Setenv(EnvClientKey, keyFile)
	cfg, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cfg.Seeds) != "[h1:8400 h2:8400]" || cfg.TLS == nil || cfg.TLS.ServerName != tlsutil.ServerRole {
		t.Fatalf("ConfigFromEnv() = seeds %q, TLS %v", cfg.Seeds, cfg.TLS)
	}

	t.Setenv(EnvClientKey, "")
	if _, err := ConfigFromEnv(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), EnvClientKey) {
		t.Fatalf("without %s: %v", EnvClientKey, err)
	}
	t.Setenv(EnvClientKey, filepath.Join(dir, "missing.pem"))
	if _, err := ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("with a missing key file: %v", err)
	}
}

// TestNewFailsWithoutServers checks that New reports the seeds' error and
// leaks no connection.
func TestNewFailsWithoutServers(t *testing.T) {
	p := newPKI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := New(ctx, Config{Seeds: []string{closedAddr(t)}, TLS: p.clientTLS(t), ConnectTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "find the cluster's servers") {
		t.Fatalf("New with no server = %v", err)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	p := newPKI(t)
	a := startFake(t, p, "a")
	a.servers = func(int) []*loghousev1.Server { return cluster(a.addr) }
	cl, err := New(testCtx(t), Config{Seeds: []string{a.addr}, TLS: p.clientTLS(t), ResolveInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "background resolution", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.getServers >= 3
	})
	for range 2 {
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Produce(testCtx(t), &loghousev1.Record{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Produce after Close = %v, want ErrClosed", err)
	}
	if _, err := cl.ConsumeStream(testCtx(t), &loghousev1.ConsumeRequest{}).Recv(); !errors.Is(err, ErrClosed) {
		t.Errorf("Recv after Close = %v, want ErrClosed", err)
	}
	a.mu.Lock()
	n := a.getServers
	a.mu.Unlock()
	if cl.Leader() != a.addr || n < 3 {
		t.Errorf("leader %q after %d resolutions", cl.Leader(), n)
	}
}

// TestStreamAccept feeds a RecordStream crafted messages: repeats are
// dropped, a gap stops the stream.
func TestStreamAccept(t *testing.T) {
	s := (&Client{logger: testLogger(t, "client")}).ConsumeStream(context.Background(), &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: 10}})
	defer s.Close()
	msg := func(offs ...uint64) *loghousev1.ConsumeResponse {
		r := &loghousev1.ConsumeResponse{}
		for _, o := range offs {
			r.Records = append(r.Records, &loghousev1.Record{Offset: o})
		}
		return r
	}
	steps := []struct {
		offs    []uint64
		want    string
		wantErr bool
	}{
		{offs: []uint64{10, 11, 12}, want: "[10 11 12]"},
		{offs: []uint64{11, 12, 13, 14}, want: "[13 14]"}, // a resumed server repeats 11 and 12
		{offs: []uint64{14}, want: "[]"},
		{offs: []uint64{15, 17}, wantErr: true}, // a gap inside a message
		{offs: []uint64{16}, wantErr: true},     // a gap between messages
	}
	for i, st := range steps {
		got, err := s.accept(msg(st.offs...), "test")
		if st.wantErr {
			if !errors.Is(err, ErrOffsetGap) {
				t.Fatalf("step %d: %v, want ErrOffsetGap", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var offs []uint64
		for _, r := range got {
			offs = append(offs, r.Offset)
		}
		if fmt.Sprint(offs) != st.want && !(st.want == "[]" && len(offs) == 0) {
			t.Fatalf("step %d: delivered %v, want %s", i, offs, st.want)
		}
	}
	if off, ok := s.NextOffset(); !ok || off != 15 {
		t.Fatalf("NextOffset() = %d, %v; want 15", off, ok)
	}

	ts := (&Client{logger: testLogger(t, "client")}).ConsumeStream(context.Background(), &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_FromTimeUnixNano{FromTimeUnixNano: 1}})
	defer ts.Close()
	if _, ok := ts.NextOffset(); ok {
		t.Fatal("a stream from a time knows its offset before any record")
	}
	if _, err := ts.accept(msg(42, 43), "test"); err != nil {
		t.Fatal(err)
	}
	if off, ok := ts.NextOffset(); !ok || off != 44 {
		t.Fatalf("NextOffset() = %d, %v; want 44", off, ok)
	}
}
