package consul_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/loghouse/loghouse/pkg/discovery/consul"
	"github.com/loghouse/loghouse/pkg/discovery/consul/consultest"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

func TestRegistrationContent(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	reg := registration(t, "node1", "10.0.0.1", 8400, newFakeHealth(true).fn)
	reg.Tags = []string{"blue"}
	reg.DeregisterCriticalAfter = 90 * time.Minute
	startRegistrar(t, c, reg)

	waitFor(t, "a passing check", func() bool { return checkStatus(d, "service:loghouse-node1") == api.HealthPassing })
	got, ok := d.Service("loghouse-node1")
	if !ok {
		t.Fatalf("not registered; the double has %v", d.ServiceIDs())
	}
	want := consultest.ServiceDefinition{
		ID:      "loghouse-node1",
		Name:    "loghouse",
		Tags:    []string{"blue"},
		Port:    8400,
		Address: "10.0.0.1",
		Meta: map[string]string{
			"node_name": "node1",
			"version":   "v0.0.0-test",
			"raft_role": "follower",
			"serf_addr": "10.0.0.1:8401",
		},
		Check: &consultest.CheckDefinition{
			CheckID:                        "service:loghouse-node1",
			Name:                           "Loghouse health (reported by the node)",
			Notes:                          got.Check.Notes, // prose; checked below
			TTL:                            "1.5s",
			DeregisterCriticalServiceAfter: "1h30m0s",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("registration:\n got %+v\n     check %+v\nwant %+v\n     check %+v", got, *got.Check, want, *want.Check)
	}
	if !strings.Contains(got.Check.Notes, "mutual TLS") {
		t.Errorf("check notes %q do not say how the check works", got.Check.Notes)
	}
	_, out, _ := d.CheckStatus("service:loghouse-node1")
	if out != "fake: serving" {
		t.Errorf("check output %q, want the health note", out)
	}
}

func TestCheckPassesAgainstMutualTLS(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	hs := startHealthServer(t)
	// The node probes itself with its own server certificate, as the
	// agent does (certs.ClientConfig(tlsutil.ServerRole)).
	self := testStore(t, tlsutil.ServerCert, "node1")
	probe := consul.GRPCHealth(hs.addr, self.ClientConfig(tlsutil.ServerRole), "")
	reg := registration(t, "node1", "127.0.0.1", 8400, probe)
	reg.CheckTTL = 600 * time.Millisecond // reports every 200ms
	reg.RequestTimeout = 200 * time.Millisecond
	startRegistrar(t, c, reg)

	const id = "service:loghouse-node1"
	waitFor(t, "the check to pass", func() bool { return checkStatus(d, id) == api.HealthPassing })
	if _, out, _ := d.CheckStatus(id); !strings.Contains(out, "SERVING") {
		t.Errorf("output %q", out)
	}
	hs.health.SetServingStatus(consul.HealthService, healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, "the check to fail", func() bool { return checkStatus(d, id) == api.HealthCritical })
	if _, out, _ := d.CheckStatus(id); !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("output %q", out)
	}
	hs.health.SetServingStatus(consul.HealthService, healthpb.HealthCheckResponse_SERVING)
	waitFor(t, "the check to pass again", func() bool { return checkStatus(d, id) == api.HealthPassing })

	// A client certificate from another CA is refused by the server: the
	// probe reports that, rather than passing.
	otherCA, err := tlsutil.CreateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := storeFrom(t, otherCA, tlsutil.ServerCert, "node1")
	bad := consul.GRPCHealth(hs.addr, foreign.ClientConfig(tlsutil.ServerRole), "")
	if ok, note := bad(t.Context()); ok {
		t.Errorf("a probe with a foreign certificate passed: %s", note)
	}
}

// TestConsulGRPCCheckFailsAgainstMutualTLS shows why the check is a TTL
// check: Consul's own gRPC check, even with TLS and verification off,
// presents no client certificate, and the node refuses it.
func TestConsulGRPCCheckFailsAgainstMutualTLS(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	hs := startHealthServer(t)
	cl, err := api.NewClient(&api.Config{Address: d.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	err = cl.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "native", Name: "native", Port: 8400, Address: "127.0.0.1",
		Check: &api.AgentServiceCheck{
			CheckID: "native-grpc", GRPC: hs.addr + "/" + consul.HealthService, GRPCUseTLS: true,
			TLSSkipVerify: true, Interval: "20ms", Timeout: "1s",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the gRPC check to run", func() bool {
		_, out, _ := d.CheckStatus("native-grpc")
		return out != ""
	})
	st, out, _ := d.CheckStatus("native-grpc")
	if st != api.HealthCritical {
		t.Errorf("Consul's gRPC check is %s (%s) against a server requiring client certificates", st, out)
	}
	t.Logf("Consul-style gRPC check: %s: %s", st, out)
}

func TestLeaderTagFollowsSetLeader(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	r := startRegistrar(t, c, registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn))
	const id = "loghouse-node1"
	isLeader := func(want bool) func() bool {
		return func() bool {
			s, ok := d.Service(id)
			if !ok {
				return false
			}
			role := consul.RoleFollower
			if want {
				role = consul.RoleLeader
			}
			return slices.Contains(s.Tags, "leader") == want && s.Meta["raft_role"] == role
		}
	}
	waitFor(t, "registered as a follower", isLeader(false))
	r.SetLeader(true)
	waitFor(t, "the leader tag", isLeader(true))
	r.SetLeader(true) // no change
	r.SetLeader(false)
	waitFor(t, "the leader tag gone", isLeader(false))
	for range 5 { // flapping ends in the last state
		r.SetLeader(true)
		r.SetLeader(false)
	}
	r.SetLeader(true)
	waitFor(t, "the leader tag after flapping", isLeader(true))
	waitFor(t, "the check passing after re-registration", func() bool {
		return checkStatus(d, "service:"+id) == api.HealthPassing
	})
}

func TestDeregisterOnClose(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	r, err := consul.NewRegistrar(c, registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "registration", func() bool { _, ok := d.Service("loghouse-node1"); return ok })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if ids := d.ServiceIDs(); len(ids) != 0 {
		t.Errorf("services after Close: %v", ids)
	}
	if _, _, ok := d.CheckStatus("service:loghouse-node1"); ok {
		t.Error("the check outlived the service")
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	n := len(d.Requests())
	r.SetLeader(true) // after Close: nothing happens
	if got := len(d.Requests()); got != n {
		t.Errorf("%d requests after Close", got-n)
	}
}

func TestReregistersAfterConsulRestart(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	r := startRegistrar(t, c, registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn))
	r.SetLeader(true)
	const id = "loghouse-node1"
	registered := func() bool {
		s, ok := d.Service(id)
		return ok && slices.Contains(s.Tags, "leader") && checkStatus(d, "service:"+id) == api.HealthPassing
	}
	waitFor(t, "registration", registered)
	for i := range 3 {
		d.Restart()
		if _, ok := d.Service(id); ok {
			t.Fatal("the double did not forget")
		}
		waitFor(t, fmt.Sprintf("registration after restart %d", i+1), registered)
	}
}

func TestRepairsAChangedRegistration(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	startRegistrar(t, c, registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn))
	const id = "loghouse-node1"
	waitFor(t, "registration", func() bool { _, ok := d.Service(id); return ok })
	// Someone registers our ID with the leader tag and other meta.
	cl, err := api.NewClient(&api.Config{Address: d.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: "loghouse", Port: 8400, Address: "127.0.0.1", Tags: []string{"leader"},
		Meta: map[string]string{"node_name": "impostor"},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registration repaired", func() bool {
		s, ok := d.Service(id)
		return ok && len(s.Tags) == 0 && s.Meta["node_name"] == "node1" && s.Check != nil
	})
}

func TestStartsWhileConsulIsDown(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	d.SetDown(true)
	c := newClient(t, d, nil)
	start := time.Now()
	startRegistrar(t, c, registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn))
	if el := time.Since(start); el > time.Second {
		t.Errorf("NewRegistrar took %s with Consul down", el)
	}
	if ids := d.ServiceIDs(); len(ids) != 0 {
		t.Fatalf("registered while down: %v", ids)
	}
	d.SetDown(false)
	waitFor(t, "registration once Consul is up", func() bool {
		return checkStatus(d, "service:loghouse-node1") == api.HealthPassing
	})
}

func TestCloseWhileConsulIsDown(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	reg := registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn)
	r, err := consul.NewRegistrar(c, reg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "registration", func() bool { _, ok := d.Service("loghouse-node1"); return ok })
	d.SetDown(true)
	start := time.Now()
	err = r.Close()
	if err == nil {
		t.Error("Close reported success with Consul down")
	}
	if el := time.Since(start); el > reg.RequestTimeout+time.Second {
		t.Errorf("Close took %s", el)
	}
	t.Logf("Close: %v", err)
}

func TestToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(*consul.ClientConfig)
		env  map[string]string
	}{
		{"config", func(c *consul.ClientConfig) { c.Token = "s3cret" }, nil},
		{"token file", func(c *consul.ClientConfig) {
			f := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c.TokenFile = f
		}, nil},
		{"environment", nil, map[string]string{"CONSUL_HTTP_TOKEN": "s3cret"}},
		{"config over environment", func(c *consul.ClientConfig) { c.Token = "s3cret" }, map[string]string{"CONSUL_HTTP_TOKEN": "wrong"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearConsulEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			d := consultest.New(t, consultest.Options{Token: "s3cret"})
			c := newClient(t, d, tc.cfg)
			r := startRegistrar(t, c, registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn))
			waitFor(t, "a passing check", func() bool { return checkStatus(d, "service:loghouse-node1") == api.HealthPassing })
			if _, err := c.JoinAddrs(t.Context(), "", ""); err != nil {
				t.Error(err)
			}
			if err := r.Close(); err != nil {
				t.Error(err)
			}
			reqs := d.Requests()
			if len(reqs) < 3 {
				t.Fatalf("only %d requests", len(reqs))
			}
			for _, rq := range reqs {
				if rq.Token != "s3cret" {
					t.Errorf("%s %s carried token %q", rq.Method, rq.Path, rq.Token)
				}
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		clearConsulEnv(t)
		d := consultest.New(t, consultest.Options{Token: "s3cret"})
		c := newClient(t, d, nil)
		r, err := consul.NewRegistrar(c, registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "refusals", func() bool { return len(d.Requests()) >= 2 })
		if ids := d.ServiceIDs(); len(ids) != 0 {
			t.Errorf("registered without a token: %v", ids)
		}
		if _, err := c.JoinAddrs(t.Context(), "", ""); err == nil || errors.Is(err, consul.ErrNoInstances) {
			t.Errorf("JoinAddrs without a token: %v", err)
		}
		if err := r.Close(); err == nil {
			t.Error("deregistration without a token succeeded")
		}
		rej := d.TakeRejections()
		if len(rej) < 3 {
			t.Errorf("%d refusals", len(rej))
		}
		for _, r := range rej {
			if !strings.Contains(r, "403 ACL not found") {
				t.Errorf("unexpected refusal: %s", r)
			}
		}
	})
}

func TestAddressFromEnvironment(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	t.Setenv("CONSUL_HTTP_ADDR", d.Addr())
	c, err := consul.NewClient(consul.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	startRegistrar(t, c, registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn))
	waitFor(t, "registration", func() bool { _, ok := d.Service("loghouse-node1"); return ok })
}

func TestTLSToConsul(t *testing.T) {
	clearConsulEnv(t)
	// Consul with verify_incoming: HTTPS, and a client certificate from
	// the CA required.
	d := consultest.New(t, consultest.Options{TLS: testStore(t, tlsutil.ServerCert, "consul-double").ServerConfig()})
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pkiCA.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err := tlsutil.CreateCert(pkiCA, tlsutil.CertOptions{Kind: tlsutil.ClientCert, Name: "loghouse"})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := pair.WriteFiles(cert, key, false); err != nil {
		t.Fatal(err)
	}
	full := consul.ClientTLS{CAFile: ca, CertFile: cert, KeyFile: key}
	enabled := full
	enabled.Enabled = true
	named := full
	named.ServerName = "localhost"
	for _, tc := range []struct {
		name string
		cfg  consul.ClientConfig
		ok   bool
	}{
		{"https URL", consul.ClientConfig{Address: d.URL(), TLS: full}, true},
		{"enabled", consul.ClientConfig{Address: d.Addr(), TLS: enabled}, true},
		{"server name", consul.ClientConfig{Address: d.URL(), TLS: named}, true},
		{"no client certificate", consul.ClientConfig{Address: d.URL(), TLS: consul.ClientTLS{CAFile: ca}}, false},
		{"unknown CA", consul.ClientConfig{Address: d.URL(), TLS: consul.ClientTLS{CertFile: cert, KeyFile: key}}, false},
		{"plain HTTP", consul.ClientConfig{Address: d.Addr()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := consul.NewClient(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.JoinAddrs(t.Context(), "", "")
			if got := errors.Is(err, consul.ErrNoInstances); got != tc.ok {
				t.Errorf("reached Consul: %v, want %v (%v)", got, tc.ok, err)
			}
		})
	}
	if _, err := consul.NewClient(consul.ClientConfig{TLS: consul.ClientTLS{CertFile: cert}}); !errors.Is(err, consul.ErrInvalidConfig) {
		t.Errorf("a certificate without a key: %v", err)
	}
}

func TestRegistrationValidation(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	ok := newFakeHealth(true).fn
	for _, tc := range []struct {
		name string
		mod  func(*consul.Registration)
	}{
		{"no node name", func(r *consul.Registration) { r.NodeName = "" }},
		{"no address", func(r *consul.Registration) { r.Address = "" }},
		{"address with port", func(r *consul.Registration) { r.Address = "10.0.0.1:8400" }},
		{"no port", func(r *consul.Registration) { r.Port = 0 }},
		{"bad serf address", func(r *consul.Registration) { r.SerfAddr = "10.0.0.1" }},
		{"service name not a DNS label", func(r *consul.Registration) { r.ServiceName = "log_house" }},
		{"leader tag among tags", func(r *consul.Registration) { r.Tags = []string{"leader"} }},
		{"no health", func(r *consul.Registration) { r.Health = nil }},
		{"timeout above TTL/3", func(r *consul.Registration) { r.RequestTimeout = 2 * time.Second }},
		{"retry max below min", func(r *consul.Registration) { r.RetryMax = time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registration(t, "node1", "10.0.0.1", 8400, ok)
			tc.mod(&reg)
			if _, err := consul.NewRegistrar(c, reg); !errors.Is(err, consul.ErrInvalidConfig) {
				t.Errorf("NewRegistrar: %v, want ErrInvalidConfig", err)
			}
		})
	}
	r, err := consul.NewRegistrar(c, consul.Registration{NodeName: "n1", Address: "host.example", Port: 1, Health: ok})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Registration()
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	if got.ServiceName != consul.DefaultServiceName || got.ServiceID != "loghouse-n1" || got.CheckTTL != consul.DefaultCheckTTL ||
		got.RequestTimeout != consul.DefaultRequestTimeout || got.SyncInterval != consul.DefaultSyncInterval ||
		got.LeaderTag != "leader" || got.Version == "" {
		t.Errorf("defaults: %+v", got)
	}
}

// TestBacksOffWhenReportsFail: a Consul that takes registrations but
// refuses health reports gets registrations at back-off pace, not in a
// tight loop; once it takes reports again, the check passes.
func TestBacksOffWhenReportsFail(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	d.SetFault("/v1/agent/check/update/", http.StatusInternalServerError)
	c := newClient(t, d, nil)
	startRegistrar(t, c, registration(t, "node1", "127.0.0.1", 8400, newFakeHealth(true).fn))
	count := func() int {
		n := 0
		for _, rq := range d.Requests() {
			if rq.Path == "/v1/agent/service/register" {
				n++
			}
		}
		return n
	}
	waitFor(t, "a few registrations", func() bool { return count() >= 4 })
	// The wait has doubled from 10ms to 40ms or 50ms (RetryMax) by now:
	// five more registrations take at least 240ms; a tight loop, a few.
	start, n0 := time.Now(), count()
	waitFor(t, "five more registrations", func() bool { return count() >= n0+5 })
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("5 registrations in %s: no back-off", el)
	}
	d.SetFault("/v1/agent/check/update/", 0)
	waitFor(t, "a passing check", func() bool { return checkStatus(d, "service:loghouse-node1") == api.HealthPassing })
}
