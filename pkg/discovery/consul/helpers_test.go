package consul_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/loghouse/loghouse/pkg/discovery/consul"
	"github.com/loghouse/loghouse/pkg/discovery/consul/consultest"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// waitTimeout bounds every wait for a condition.
const waitTimeout = 10 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		<-tick.C
	}
}

// logWriter sends hclog output to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: logWriter{t}, Level: hclog.Debug})
}

// clearConsulEnv unsets the environment consul/api reads, so that the
// machine's settings do not leak into a test.
func clearConsulEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_AUTH", "CONSUL_HTTP_SSL",
		"CONSUL_CACERT", "CONSUL_CAPATH", "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY", "CONSUL_TLS_SERVER_NAME",
		"CONSUL_HTTP_SSL_VERIFY", "CONSUL_NAMESPACE", "CONSUL_PARTITION",
	} {
		t.Setenv(k, "")
	}
}

// newClient is a Client of the double d, with extra settings from mod.
func newClient(t *testing.T, d *consultest.Agent, mod func(*consul.ClientConfig)) *consul.Client {
	t.Helper()
	cfg := consul.ClientConfig{Address: d.Addr(), Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := consul.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// fakeHealth is a HealthFunc whose answer the test sets.
type fakeHealth struct{ ok atomic.Bool }

func newFakeHealth(ok bool) *fakeHealth {
	h := &fakeHealth{}
	h.ok.Store(ok)
	return h
}

func (h *fakeHealth) fn(context.Context) (bool, string) {
	if h.ok.Load() {
		return true, "fake: serving"
	}
	return false, "fake: not serving"
}

// registration is a fast-paced Registration of node at addr:port.
func registration(t *testing.T, node, addr string, port int, h consul.HealthFunc) consul.Registration {
	return consul.Registration{
		NodeName:       node,
		Address:        addr,
		Port:           port,
		SerfAddr:       net.JoinHostPort(addr, strconv.Itoa(port+1)),
		Version:        "v0.0.0-test",
		Health:         h,
		CheckTTL:       1500 * time.Millisecond, // reports every 500ms
		SyncInterval:   50 * time.Millisecond,
		RetryMin:       10 * time.Millisecond,
		RetryMax:       50 * time.Millisecond,
		RequestTimeout: 500 * time.Millisecond,
		Logger:         testLogger(t).Named(node),
	}
}

// startRegistrar starts a Registrar and closes it at cleanup (before the
// double stops, which was created earlier).
func startRegistrar(t *testing.T, c *consul.Client, reg consul.Registration) *consul.Registrar {
	t.Helper()
	r, err := consul.NewRegistrar(c, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close registrar: %v", err)
		}
	})
	return r
}

// checkStatus is a check's status in the double ("" if absent).
func checkStatus(d *consultest.Agent, id string) string {
	st, _, _ := d.CheckStatus(id)
	return st
}

var (
	pkiOnce sync.Once
	pkiCA   tlsutil.KeyPair
	pkiErr  error
)

// testStore is a TLS store with a certificate of kind for name, from the
// tests' CA.
func testStore(t *testing.T, kind tlsutil.Kind, name string) *tlsutil.Store {
	t.Helper()
	pkiOnce.Do(func() { pkiCA, pkiErr = tlsutil.CreateCA(tlsutil.CAOptions{}) })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return storeFrom(t, pkiCA, kind, name)
}

// storeFrom is a TLS store with a certificate of kind for name, from ca.
func storeFrom(t *testing.T, ca tlsutil.KeyPair, kind tlsutil.Kind, name string) *tlsutil.Store {
	t.Helper()
	pair, err := tlsutil.CreateCert(ca, tlsutil.CertOptions{Kind: kind, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	st, err := tlsutil.NewStoreFromPEM(ca.CertPEM, pair)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// healthServer is a gRPC server with only the health service, behind
// mutual TLS as a Loghouse node's port is: a client certificate from the
// tests' CA is required.
type healthServer struct {
	addr   string
	health *health.Server
}

func startHealthServer(t *testing.T) *healthServer {
	t.Helper()
	st := testStore(t, tlsutil.ServerCert, "node1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(st.ServerConfig())))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus(consul.HealthService, healthpb.HealthCheckResponse_SERVING)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := gs.Serve(ln); err != nil {
			t.Errorf("gRPC server: %v", err)
		}
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return &healthServer{addr: ln.Addr().String(), health: hs}
}
