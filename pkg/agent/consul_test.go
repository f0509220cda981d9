package agent

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/loghouse/loghouse/pkg/discovery/consul"
	"github.com/loghouse/loghouse/pkg/discovery/consul/consultest"
)

// TestClusterThroughConsul forms a cluster with no retry_join at all: the
// servers register in Consul and join through its catalog. The leader
// carries the leader tag (leader.loghouse.service.consul resolves it), and
// a graceful stop deregisters the node.
func TestClusterThroughConsul(t *testing.T) {
	dir := t.TempDir()
	agCerts(t, dir, "n1", "n2", "n3")
	cs := consultest.New(t, consultest.Options{})
	nodes := []*testNode{{name: "n1"}, {name: "n2"}, {name: "n3"}}
	for _, n := range nodes {
		n.cfg = clusterConfig(t, dir, n.name, 3)
		n.cfg.Consul.Enabled = true
		n.cfg.Consul.Address = cs.Addr()
		n.cfg.Consul.Join = true
		n.cfg.Consul.CheckTTL = 3 * time.Second
		n.cfg.Consul.SyncInterval = time.Second
		n.cfg.RetryInterval = 500 * time.Millisecond
		n.start(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.a.WaitReady(ctx); err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
	}
	waitUntil(t, "three voters", func() bool {
		l := leaderOf(nodes)
		return l != nil && slices.Equal(voters(t, l.a), []string{"n1", "n2", "n3"})
	})

	res, err := consul.NewResolver(consul.ResolverConfig{Server: cs.DNSAddr()})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "DNS to name the leader", func() bool {
		l := leaderOf(nodes)
		addr, err := res.Leader(ctx)
		if err != nil || l == nil {
			return false
		}
		cfg := l.a.Config()
		return addr == cfg.AdvertiseRPC()
	})
	waitUntil(t, "three healthy instances in DNS", func() bool {
		all, err := res.Servers(ctx)
		return err == nil && len(all) == 3
	})

	// A graceful stop takes the node out of Consul.
	gone := nodes[2]
	gone.stop(t)
	if _, ok := cs.Service("loghouse-" + gone.name); ok {
		t.Fatalf("%s is still registered after a graceful stop", gone.name)
	}
	waitUntil(t, "two instances in DNS", func() bool {
		all, err := res.Servers(ctx)
		return err == nil && len(all) == 2
	})
}
