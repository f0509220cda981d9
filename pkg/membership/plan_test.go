package membership

import (
	"reflect"
	"strings"
	"testing"
)

func srv(name, status, rpc string) Member {
	return Member{Name: name, Role: RoleServer, RPCAddr: rpc, Status: status}
}

func TestPlan(t *testing.T) {
	a := srv("a", StatusAlive, "10.0.0.1:8400")
	b := srv("b", StatusAlive, "10.0.0.2:8400")
	c := srv("c", StatusAlive, "10.0.0.3:8400")
	raftABC := []Server{{"a", "10.0.0.1:8400"}, {"b", "10.0.0.2:8400"}, {"c", "10.0.0.3:8400"}}
	with := func(m Member, status string) Member { m.Status = status; return m }
	tests := []struct {
		name    string
		members []Member
		servers []Server
		reaped  []string
		want    Change
	}{
		{name: "in sync", members: []Member{a, b, c}, servers: raftABC},
		{name: "a joined server is added", members: []Member{a, b, c},
			servers: raftABC[:2], want: Change{Add: []Server{{"c", "10.0.0.3:8400"}}}},
		{name: "a moved server is re-added at its new address",
			members: []Member{a, b, srv("c", StatusAlive, "10.0.0.9:8400")}, servers: raftABC,
			want: Change{Add: []Server{{"c", "10.0.0.9:8400"}}}},
		{name: "a left server is removed", members: []Member{a, b, with(c, StatusLeft)},
			servers: raftABC, want: Change{Remove: []string{"c"}}},
		{name: "a leaving server is kept until it has left", members: []Member{a, b, with(c, StatusLeaving)}, servers: raftABC},
		{name: "a failed server stays a voter", members: []Member{a, b, with(c, StatusFailed)}, servers: raftABC},
		{name: "a reaped server is removed", members: []Member{a, b}, servers: raftABC,
			reaped: []string{"c"}, want: Change{Remove: []string{"c"}}},
		{name: "a reaped server that rejoined stays", members: []Member{a, b, c}, servers: raftABC, reaped: []string{"c"}},
		{name: "a reaped name raft does not have is ignored", members: []Member{a, b, c}, servers: raftABC, reaped: []string{"z"}},
		{name: "self is never removed", members: []Member{with(a, StatusLeft), b, c}, servers: raftABC, reaped: []string{"a"}},
		{name: "a server unknown to gossip but not reaped stays (static peers)", members: []Member{a}, servers: raftABC},
		{name: "clients and tagless members are ignored",
			members: []Member{a, b, c, {Name: "x", Status: StatusAlive}, {Name: "y", Role: RoleServer, Status: StatusAlive}},
			servers: raftABC},
		{name: "many changes at once, sorted",
			members: []Member{a, with(b, StatusLeft), c, srv("e", StatusAlive, "10.0.0.5:8400"), srv("d", StatusAlive, "10.0.0.4:8400")},
			servers: append(raftABC, Server{"f", "10.0.0.6:8400"}), reaped: []string{"f"},
			want: Change{Add: []Server{{"d", "10.0.0.4:8400"}, {"e", "10.0.0.5:8400"}}, Remove: []string{"b", "f"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Plan(tt.members, tt.servers, tt.reaped, "a")
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Plan = %+v, want %+v", got, tt.want)
			}
			if got.Empty() != tt.want.Empty() {
				t.Fatalf("Empty() = %v", got.Empty())
			}
		})
	}
}

func TestBootstrapServers(t *testing.T) {
	exp := func(m Member, e int) Member { m.Expect = e; return m }
	a := exp(srv("a", StatusAlive, "a:1"), 3)
	b := exp(srv("b", StatusAlive, "b:1"), 3)
	c := exp(srv("c", StatusAlive, "c:1"), 3)
	t.Run("waits for expect alive servers", func(t *testing.T) {
		failedC := c
		failedC.Status = StatusFailed
		if _, ok, err := BootstrapServers([]Member{a, b, failedC}, 3); ok || err != nil {
			t.Fatalf("ok=%v err=%v with two alive of three", ok, err)
		}
	})
	t.Run("bootstraps with the same sorted set everywhere", func(t *testing.T) {
		got, ok, err := BootstrapServers([]Member{c, a, b, {Name: "client", Status: StatusAlive}}, 3)
		if !ok || err != nil {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
		want := []Server{{"a", "a:1"}, {"b", "b:1"}, {"c", "c:1"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("servers %v, want %v", got, want)
		}
	})
	t.Run("disagreeing expect values refuse", func(t *testing.T) {
		_, ok, err := BootstrapServers([]Member{a, b, exp(c, 5)}, 3)
		if ok || err == nil || !strings.Contains(err.Error(), "bootstrap_expect = 5") {
			t.Fatalf("ok=%v err=%v, want a disagreement error", ok, err)
		}
	})
}
