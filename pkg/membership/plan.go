package membership

import (
	"fmt"
	"sort"
)

// Server is a server of the raft configuration.
type Server struct {
	ID   string
	Addr string
}

// Change is what one reconciliation pass asks raft to do.
type Change struct {
	// Add are servers to add as voters (or whose address changed).
	Add []Server
	// Remove are server IDs to remove.
	Remove []string
}

// Empty reports whether c asks for nothing.
func (c Change) Empty() bool { return len(c.Add) == 0 && len(c.Remove) == 0 }

// Plan compares gossip membership with raft's servers, as the leader does
// on every pass. It is a pure function of its inputs, so a missed event is
// repaired by the next pass:
//   - an alive server that raft lacks, or knows at another address, is
//     added as a voter;
//   - a server that left gracefully is removed;
//   - a failed server stays (it may come back) until Serf reaps it after
//     the reconnect timeout; reaped names the servers reaped since the
//     last pass, and those that raft still has are removed then;
//   - self is never removed (a leader that leaves hands leadership off
//     first, and the next leader removes it).
func Plan(members []Member, servers []Server, reaped []string, self string) Change {
	inRaft := make(map[string]string, len(servers))
	for _, s := range servers {
		inRaft[s.ID] = s.Addr
	}
	var c Change
	seen := map[string]bool{}
	for _, m := range members {
		if !m.IsServer() {
			continue
		}
		seen[m.Name] = true
		addr, ok := inRaft[m.Name]
		switch m.Status {
		case StatusAlive:
			if !ok || addr != m.RPCAddr {
				c.Add = append(c.Add, Server{ID: m.Name, Addr: m.RPCAddr})
			}
		case StatusLeft:
			if ok && m.Name != self {
				c.Remove = append(c.Remove, m.Name)
			}
		}
	}
	for _, name := range reaped {
		// A reaped name that gossip knows again (it rejoined) is not
		// removed.
		if _, ok := inRaft[name]; ok && !seen[name] && name != self {
			c.Remove = append(c.Remove, name)
		}
	}
	sort.Slice(c.Add, func(i, j int) bool { return c.Add[i].ID < c.Add[j].ID })
	sort.Strings(c.Remove)
	return c
}

// BootstrapServers decides whether a node with bootstrap_expect = expect
// may bootstrap: it returns the alive servers (sorted by name) once at
// least expect of them, itself included, have met, and ok = false before.
// Servers that advertise a different expect value make it an error: the
// operator configured the cluster inconsistently, and bootstrapping with
// either number could form two clusters.
func BootstrapServers(members []Member, expect int) (servers []Server, ok bool, err error) {
	for _, m := range members {
		if !m.IsServer() || m.Status != StatusAlive {
			continue
		}
		if m.Expect != 0 && m.Expect != expect {
			return nil, false, fmt.Errorf("membership: server %s has bootstrap_expect = %d, this node %d; they must agree", m.Name, m.Expect, expect)
		}
		servers = append(servers, Server{ID: m.Name, Addr: m.RPCAddr})
	}
	if len(servers) < expect {
		return nil, false, nil
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	return servers, true, nil
}
