package consul_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/loghouse/loghouse/pkg/discovery/consul"
	"github.com/loghouse/loghouse/pkg/discovery/consul/consultest"
)

func newResolver(t *testing.T, cfg consul.ResolverConfig) *consul.Resolver {
	t.Helper()
	r, err := consul.NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func lookupCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestResolverSRV(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	nodes := registerNodes(t, d, c, true, true, false)
	nodes[0].reg.SetLeader(true)
	waitFor(t, "node1 tagged leader", func() bool {
		s, _ := d.Service("loghouse-node1")
		return slices.Contains(s.Tags, "leader")
	})

	r := newResolver(t, consul.ResolverConfig{Server: d.DNSAddr()})
	got, err := r.Servers(lookupCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{nodes[0].addr, nodes[1].addr}; !slices.Equal(sorted(got), want) {
		t.Errorf("Servers: got %v, want the healthy %v", got, want)
	}
	leader, err := r.Leader(lookupCtx(t))
	if err != nil || leader != nodes[0].addr {
		t.Errorf("Leader: %q, %v; want %s", leader, err, nodes[0].addr)
	}

	// Leadership moves to node2.
	nodes[0].reg.SetLeader(false)
	nodes[1].reg.SetLeader(true)
	waitFor(t, "leader.loghouse.service.consul to follow", func() bool {
		got, err := r.Lookup(lookupCtx(t), "leader")
		return err == nil && slices.Equal(got, []string{nodes[1].addr})
	})

	// node3 recovers and is offered; node1 fails and is not.
	nodes[2].health.ok.Store(true)
	nodes[0].health.ok.Store(false)
	waitFor(t, "DNS to follow health", func() bool {
		got, err := r.Servers(lookupCtx(t))
		return err == nil && slices.Equal(sorted(got), []string{nodes[1].addr, nodes[2].addr})
	})

	// The datacenter form and another service.
	rdc := newResolver(t, consul.ResolverConfig{Server: d.DNSAddr(), Datacenter: "dc1"})
	if got, err := rdc.Leader(lookupCtx(t)); err != nil || got != nodes[1].addr {
		t.Errorf("Leader in dc1: %q, %v", got, err)
	}
	other := newResolver(t, consul.ResolverConfig{Server: d.DNSAddr(), Service: "other"})
	if _, err := other.Servers(lookupCtx(t)); !errors.Is(err, consul.ErrNoInstances) {
		t.Errorf("unknown service: %v", err)
	}

	// Nobody healthy: no instances, and no leader.
	nodes[1].health.ok.Store(false)
	nodes[2].health.ok.Store(false)
	for _, n := range nodes {
		waitFor(t, n.name+" critical", func() bool { return checkStatus(d, "service:loghouse-"+n.name) == api.HealthCritical })
	}
	if _, err := r.Servers(lookupCtx(t)); !errors.Is(err, consul.ErrNoInstances) {
		t.Errorf("no healthy instance: %v", err)
	}
	if _, err := r.Leader(lookupCtx(t)); !errors.Is(err, consul.ErrNoInstances) {
		t.Errorf("no healthy leader: %v", err)
	}
}

func TestResolverConfig(t *testing.T) {
	r := newResolver(t, consul.ResolverConfig{})
	for tag, want := range map[string]string{
		"":       "loghouse.service.consul.",
		"leader": "leader.loghouse.service.consul.",
	} {
		if got := r.Name(tag); got != want {
			t.Errorf("Name(%q) = %q, want %q", tag, got, want)
		}
	}
	r = newResolver(t, consul.ResolverConfig{Service: "logs", Datacenter: "east", Domain: "corp.", LeaderTag: "primary"})
	if got := r.Name("primary"); got != "primary.logs.service.east.corp." {
		t.Errorf("Name = %q", got)
	}
	for _, cfg := range []consul.ResolverConfig{
		{Server: "127.0.0.1"},
		{Service: "log_house"},
		{LeaderTag: "a.b"},
		{Datacenter: "a.b"},
		{Domain: "bad domain"},
	} {
		if _, err := consul.NewResolver(cfg); !errors.Is(err, consul.ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	// A server that does not answer: the lookup ends with the context.
	r = newResolver(t, consul.ResolverConfig{Server: "127.0.0.1:1"})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := r.Servers(ctx); err == nil || errors.Is(err, consul.ErrNoInstances) {
		t.Errorf("no server: %v", err)
	}
}
