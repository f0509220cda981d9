package consultest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/loghouse/loghouse/pkg/discovery/consul/consultest"
)

// put sends a raw request body, as a wrong client might.
func put(t *testing.T, a *consultest.Agent, path, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, a.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestRefusesWrongRegistrations(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	a := consultest.New(t, consultest.Options{})
	good := `{"ID":"a","Name":"loghouse","Port":8400,"Address":"10.0.0.1","Meta":{"node_name":"n1"},"Check":{"CheckID":"c","TTL":"10s"},"Checks":null}`
	if code := put(t, a, "/v1/agent/service/register", good); code != http.StatusOK {
		t.Fatalf("a good registration: %d %v", code, a.TakeRejections())
	}
	for _, tc := range []struct{ name, body string }{
		{"unknown field", `{"Name":"x","Port":1,"Bogus":true}`},
		{"unknown check field", `{"Name":"x","Port":1,"Check":{"HTTP":"http://x","Interval":"1s"}}`},
		{"no name", `{"Port":1}`},
		{"name not a DNS label", `{"Name":"a_b","Port":1}`},
		{"port out of range", `{"Name":"x","Port":70000}`},
		{"bad address", `{"Name":"x","Port":1,"Address":"10.0.0.1:80"}`},
		{"empty tag", `{"Name":"x","Port":1,"Tags":[""]}`},
		{"reserved meta key", `{"Name":"x","Port":1,"Meta":{"consul-x":"y"}}`},
		{"bad meta key", `{"Name":"x","Port":1,"Meta":{"a.b":"y"}}`},
		{"bad TTL", `{"Name":"x","Port":1,"Check":{"TTL":"soon"}}`},
		{"two check kinds", `{"Name":"x","Port":1,"Check":{"TTL":"1s","TCP":"127.0.0.1:1","Interval":"1s"}}`},
		{"no check kind", `{"Name":"x","Port":1,"Check":{"Name":"nothing"}}`},
		{"TCP without interval", `{"Name":"x","Port":1,"Check":{"TCP":"127.0.0.1:1"}}`},
		{"bad status", `{"Name":"x","Port":1,"Check":{"TTL":"1s","Status":"fine"}}`},
		{"bad deregister duration", `{"Name":"x","Port":1,"Check":{"TTL":"1s","DeregisterCriticalServiceAfter":"x"}}`},
		{"not JSON", `{"Name":`},
		{"two values", `{"Name":"x","Port":1}{}`},
		{"check of another service", `{"ID":"b","Name":"x","Port":1,"Check":{"CheckID":"c","TTL":"1s"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := put(t, a, "/v1/agent/service/register", tc.body); code != http.StatusBadRequest {
				t.Errorf("status %d, want 400", code)
			}
			if rej := a.TakeRejections(); len(rej) != 1 {
				t.Errorf("rejections %v", rej)
			} else {
				t.Log(rej[0])
			}
		})
	}
	if ids := a.ServiceIDs(); len(ids) != 1 || ids[0] != "a" {
		t.Errorf("services %v", ids)
	}
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
	}{
		{"update: bad status", "PUT", "/v1/agent/check/update/c", `{"Status":"pass"}`, 400},
		{"update: unknown field", "PUT", "/v1/agent/check/update/c", `{"Status":"passing","Note":"x"}`, 400},
		{"unknown endpoint", "GET", "/v1/catalog/service/loghouse", ``, 404},
		{"unknown parameter", "GET", "/v1/agent/services?filter=x", ``, 400},
		{"wrong method", "GET", "/v1/agent/service/register", ``, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, a.URL()+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if rej := a.TakeRejections(); len(rej) != 1 {
				t.Errorf("rejections %v", rej)
			}
		})
	}
	// Unknown IDs are answers (404), not refusals.
	if code := put(t, a, "/v1/agent/check/update/nope", `{"Status":"passing"}`); code != http.StatusNotFound {
		t.Errorf("unknown check: %d", code)
	}
	if code := put(t, a, "/v1/agent/service/deregister/nope", ``); code != http.StatusNotFound {
		t.Errorf("unknown service: %d", code)
	}
}

func TestTTLCheck(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	a := consultest.New(t, consultest.Options{})
	c, err := api.NewClient(&api.Config{Address: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	reg := &api.AgentServiceRegistration{ID: "s", Name: "s", Port: 1, Address: "127.0.0.1", Check: &api.AgentServiceCheck{CheckID: "ttl", TTL: "100ms"}}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := a.CheckStatus("ttl"); st != api.HealthCritical {
		t.Errorf("initial status %s, want critical", st)
	}
	if err := c.Agent().UpdateTTL("ttl", "fine", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	if st, out, _ := a.CheckStatus("ttl"); st != api.HealthPassing || out != "fine" {
		t.Errorf("after update: %s %q", st, out)
	}
	// Registering again keeps the state, as Consul does.
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := a.CheckStatus("ttl"); st != api.HealthPassing {
		t.Errorf("after registering again: %s", st)
	}
	waitFor(t, "the TTL to expire", func() bool {
		st, out, _ := a.CheckStatus("ttl")
		return st == api.HealthCritical && out == "TTL expired"
	})
	entries, _, err := c.Health().Service("s", "", true, nil)
	if err != nil || len(entries) != 0 {
		t.Errorf("passing instances after expiry: %d, %v", len(entries), err)
	}
	if err := c.Agent().UpdateTTL("ttl", "", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	entries, _, err = c.Health().Service("s", "", true, nil)
	if err != nil || len(entries) != 1 || len(entries[0].Checks) != 2 || entries[0].Checks[0].CheckID != "serfHealth" {
		b, _ := json.Marshal(entries)
		t.Errorf("passing instances: %s, %v", b, err)
	}
	// Restart forgets.
	a.Restart()
	if err := c.Agent().UpdateTTL("ttl", "", api.HealthPassing); err == nil {
		t.Error("update after restart succeeded")
	}
}

func TestDNS(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	start := func(opts consultest.Options) *consultest.Agent {
		a := consultest.New(t, opts)
		c, err := api.NewClient(&api.Config{Address: a.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct {
			id, addr, status string
			tags             []string
		}{
			{"a", "10.0.0.1", api.HealthPassing, []string{"leader"}},
			{"b", "10.0.0.2", api.HealthWarning, nil},
			{"c", "10.0.0.3", api.HealthCritical, []string{"leader"}},
		} {
			err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
				ID: s.id, Name: "web", Port: 80, Address: s.addr, Tags: s.tags,
				Check: &api.AgentServiceCheck{CheckID: s.id, TTL: "1h", Status: s.status},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		return a
	}
	a := start(consultest.Options{})
	only := start(consultest.Options{OnlyPassing: true})
	ask := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, err := dns.Exchange(m, a.DNSAddr())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	targets := func(r *dns.Msg) []string {
		var out []string
		for _, rr := range r.Answer {
			if srv, ok := rr.(*dns.SRV); ok {
				out = append(out, srv.Target)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"web.service.consul.", []string{"0a000001.addr.dc1.consul.", "0a000002.addr.dc1.consul."}},
		{"web.service.dc1.consul.", []string{"0a000001.addr.dc1.consul.", "0a000002.addr.dc1.consul."}},
		{"leader.web.service.consul.", []string{"0a000001.addr.dc1.consul."}},
		{"_web._leader.service.consul.", []string{"0a000001.addr.dc1.consul."}},
		{"_web._tcp.service.consul.", []string{"0a000001.addr.dc1.consul.", "0a000002.addr.dc1.consul."}},
	} {
		if got := targets(ask(tc.name, dns.TypeSRV)); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if r := ask("0a000002.addr.dc1.consul.", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.0.0.2" {
		t.Errorf("A: %v", r.Answer)
	}
	for _, name := range []string{"nope.service.consul.", "other.web.service.consul.", "x.node.consul."} {
		if r := ask(name, dns.TypeSRV); r.Rcode != dns.RcodeNameError {
			t.Errorf("%s: rcode %s", name, dns.RcodeToString[r.Rcode])
		}
	}
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeSRV)
	r, err := dns.Exchange(m, only.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	if got := targets(r); len(got) != 1 || got[0] != "0a000001.addr.dc1.consul." {
		t.Errorf("only_passing: %v", got)
	}
	// TCP answers too.
	tc := &dns.Client{Net: "tcp"}
	r, _, err = tc.Exchange(m, a.DNSAddr())
	if err != nil || len(targets(r)) != 2 {
		t.Errorf("over TCP: %v, %v", r, err)
	}
}
