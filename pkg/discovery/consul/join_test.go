package consul_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/loghouse/loghouse/pkg/discovery/consul"
	"github.com/loghouse/loghouse/pkg/discovery/consul/consultest"
)

// node is a registered test node.
type node struct {
	name   string
	reg    *consul.Registrar
	health *fakeHealth
	addr   string // RPC host:port
	serf   string
}

// registerNodes registers nodes node1..n at 127.0.0.i:8400 on the double,
// healthy as given, and waits until Consul agrees on their health.
func registerNodes(t *testing.T, d *consultest.Agent, c *consul.Client, healthy ...bool) []*node {
	t.Helper()
	var nodes []*node
	for i, ok := range healthy {
		n := &node{name: "node" + string(rune('1'+i)), health: newFakeHealth(ok)}
		ip := "127.0.0." + string(rune('1'+i))
		reg := registration(t, n.name, ip, 8400, n.health.fn)
		n.addr, n.serf = ip+":8400", reg.SerfAddr
		n.reg = startRegistrar(t, c, reg)
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		want := api.HealthCritical
		if n.health.ok.Load() {
			want = api.HealthPassing
		}
		waitFor(t, n.name+" "+want, func() bool {
			_, out, _ := d.CheckStatus("service:loghouse-" + n.name)
			return checkStatus(d, "service:loghouse-"+n.name) == want && out != ""
		})
	}
	return nodes
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestJoinAddrs(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	ctx := t.Context()
	if _, err := c.JoinAddrs(ctx, "", "node1"); !errors.Is(err, consul.ErrNoInstances) {
		t.Fatalf("empty catalog: %v", err)
	}

	// Forming: no node passes yet; joiners get everyone but themselves.
	nodes := registerNodes(t, d, c, false, false, false)
	got, err := c.JoinAddrs(ctx, "", "node1")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{nodes[1].serf, nodes[2].serf}; !slices.Equal(sorted(got), want) {
		t.Errorf("none passing: got %v, want %v", got, want)
	}

	// Formed: node1 and node2 pass, node3 does not.
	nodes[0].health.ok.Store(true)
	nodes[1].health.ok.Store(true)
	for _, n := range nodes[:2] {
		waitFor(t, n.name+" passing", func() bool { return checkStatus(d, "service:loghouse-"+n.name) == api.HealthPassing })
	}
	for _, tc := range []struct {
		self string
		want []string
	}{
		{"node1", []string{nodes[1].serf}},
		{"node3", []string{nodes[0].serf, nodes[1].serf}},
		{"", []string{nodes[0].serf, nodes[1].serf}},
	} {
		got, err := c.JoinAddrs(ctx, "loghouse", tc.self)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sorted(got), tc.want) {
			t.Errorf("self %q: got %v, want only the passing instances %v", tc.self, got, tc.want)
		}
	}

	// An instance without serf_addr is not offered.
	reg := registration(t, "node9", "127.0.0.9", 8400, newFakeHealth(true).fn)
	reg.SerfAddr = ""
	startRegistrar(t, c, reg)
	waitFor(t, "node9 passing", func() bool { return checkStatus(d, "service:loghouse-node9") == api.HealthPassing })
	got, err = c.JoinAddrs(ctx, "", "node2")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{nodes[0].serf}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := c.JoinAddrs(ctx, "other", ""); !errors.Is(err, consul.ErrNoInstances) {
		t.Errorf("another service: %v", err)
	}
}

func TestRetryJoin(t *testing.T) {
	clearConsulEnv(t)
	d := consultest.New(t, consultest.Options{})
	c := newClient(t, d, nil)
	nodes := registerNodes(t, d, c, true, true)
	logger := testLogger(t)

	t.Run("joins after failures", func(t *testing.T) {
		var calls atomic.Int32
		var joined []string
		join := func(addrs ...string) (int, error) {
			if calls.Add(1) < 3 {
				return 0, errors.New("nobody answered")
			}
			joined = addrs
			return len(addrs), nil
		}
		if err := c.RetryJoin(t.Context(), "", "node1", join, time.Millisecond, 5*time.Millisecond, 0, logger); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 3 || !slices.Equal(joined, []string{nodes[1].serf}) {
			t.Errorf("%d calls, joined %v", calls.Load(), joined)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		calls := 0
		join := func(...string) (int, error) { calls++; return 0, errors.New("nobody answered") }
		err := c.RetryJoin(t.Context(), "", "node1", join, time.Millisecond, 2*time.Millisecond, 4, logger)
		if err == nil || calls != 4 {
			t.Errorf("%d calls, error %v", calls, err)
		}
	})
	t.Run("waits for instances", func(t *testing.T) {
		calls := 0
		join := func(...string) (int, error) { calls++; return 1, nil }
		err := c.RetryJoin(t.Context(), "nobody", "", join, time.Millisecond, 2*time.Millisecond, 3, logger)
		if !errors.Is(err, consul.ErrNoInstances) || calls != 0 {
			t.Errorf("%d calls, error %v", calls, err)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		join := func(...string) (int, error) { cancel(); return 0, errors.New("nobody answered") }
		err := c.RetryJoin(ctx, "", "node1", join, time.Hour, time.Hour, 0, logger)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v", err)
		}
	})
}
