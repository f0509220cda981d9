package client

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/loghouse/loghouse/pkg/discovery/consul"
	"github.com/loghouse/loghouse/pkg/discovery/consul/consultest"
)

func TestParseDNSSeed(t *testing.T) {
	tests := []struct {
		seed, name, err string
		dns             bool
	}{
		{seed: "10.0.0.1:8400"},
		{seed: "loghouse://10.0.0.1:8400"},
		{seed: "consul://loghouse", dns: true, name: "loghouse.service.consul"},
		{seed: "consul://leader.loghouse.service.dc2.consul", dns: true, name: "leader.loghouse.service.dc2.consul"},
		{seed: "consul://loghouse?dns=10.0.0.9:53", dns: true, name: "loghouse.service.consul"},
		{seed: "srv://127.0.0.1:8600/_rpc._tcp.example.org", dns: true, name: "_rpc._tcp.example.org"},
		{seed: "srv://127.0.0.1:8600", dns: true, err: "want srv://DNS-HOST:PORT/NAME"},
		{seed: "consul://", dns: true, err: "names no service"},
		{seed: "consul://loghouse?server=x", dns: true, err: "only option is ?dns="},
		{seed: "consul://loghouse?dns=nohost", dns: true, err: "is not host:port"},
	}
	for _, tt := range tests {
		d, ok, err := parseDNSSeed(tt.seed)
		if ok != tt.dns {
			t.Errorf("%q: DNS seed %v, want %v", tt.seed, ok, tt.dns)
			continue
		}
		if tt.err != "" {
			if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.seed, err, tt.err)
			}
			continue
		}
		if err != nil || d.name != tt.name {
			t.Errorf("%q: name %q err %v, want %q", tt.seed, d.name, err, tt.name)
		}
	}
}

// TestConsulDNSSeed finds the cluster through Consul DNS: one follower is
// registered (by a registrar, as an agent would), and a client whose only
// seed is consul://loghouse reaches it and writes through the leader.
func TestConsulDNSSeed(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{})
	f := c.followers(t)[0]
	cs := consultest.New(t, consultest.Options{})
	cc, err := consul.NewClient(consul.ClientConfig{Address: cs.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	host, p, _ := net.SplitHostPort(f.addr)
	port, _ := strconv.Atoi(p)
	reg, err := consul.NewRegistrar(cc, consul.Registration{
		NodeName: f.id, Address: host, Port: port, SerfAddr: "127.0.0.1:1",
		Health: func(context.Context) (bool, string) { return true, "ok" },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reg.Close() }()

	res, err := consul.NewResolver(consul.ResolverConfig{Server: cs.DNSAddr()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registration to pass its check", func() bool {
		addrs, err := res.Servers(testCtx(t))
		return err == nil && len(addrs) == 1
	})
	cl := c.client(t, []string{"consul://loghouse?dns=" + cs.DNSAddr()}, nil)
	if _, err := cl.Produce(testCtx(t), recs("dns", 1)...); err != nil {
		t.Fatal(err)
	}
	if got, want := cl.Leader(), c.leader(t).addr; got != want {
		t.Fatalf("leader %q, want %q", got, want)
	}

	// No instance in DNS and no other seed: New says so.
	_, err = New(testCtx(t), Config{Seeds: []string{"consul://nothing?dns=" + cs.DNSAddr()}, TLS: c.pki.clientTLS(t)})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "DNS seeds name none") {
		t.Fatalf("a client seeded with a name DNS does not know: %v", err)
	}
}
