package e2e

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loghouse/loghouse/pkg/config"
)

// formation is how the nodes of a test cluster find each other.
type formation string

const (
	// formStatic: every node has bootstrap = true and a peer block for
	// each other node.
	formStatic formation = "static"
	// formGossip: Serf membership; bootstrap_expect, retry_join to every
	// node's gossip port, and a gossip encryption key from
	// `loghoused keygen`.
	formGossip formation = "gossip"
)

// defaultFormation is the formation tests use unless LOGHOUSE_E2E_JOIN
// says otherwise: the one a production cluster uses.
const defaultFormation = formGossip

// formationFromEnv is LOGHOUSE_E2E_JOIN, or defaultFormation.
func formationFromEnv() (formation, error) {
	switch v := os.Getenv(envJoin); v {
	case "":
		return defaultFormation, nil
	case string(formStatic), string(formGossip):
		return formation(v), nil
	default:
		return "", fmt.Errorf("%s=%q: want %q or %q", envJoin, v, formStatic, formGossip)
	}
}

// Paths inside a container: the node's configuration directory is
// mounted read-only at confMount, its data directory at dataMount.
const (
	confMount = "/etc/loghouse"
	dataMount = "/data"
	confFile  = confMount + "/config.hcl"
)

// raftTiming is the raft block: shorter than raft's defaults so that a
// test sees several elections in seconds. Validation (raft.ValidateConfig,
// through the agent) wants leader_lease_timeout <= heartbeat_timeout and
// election_timeout >= heartbeat_timeout.
var raftTiming = map[string]string{
	"heartbeat_timeout":    "500ms",
	"election_timeout":     "500ms",
	"leader_lease_timeout": "250ms",
	// Frequent O(1) snapshots, so that restarts and catch-ups cross them.
	"snapshot_interval":  "2s",
	"snapshot_threshold": "256",
}

// nodeConfig is what a node's config.hcl says.
type nodeConfig struct {
	name      string
	ip        string
	others    []peerInfo // every other node of the cluster
	formation formation
	encrypt   string // gossip key (formGossip)
	certFile  string // file names inside confMount
	keyFile   string
	caFile    string
}

type peerInfo struct{ name, ip string }

// hcl renders the configuration. Only the cluster-formation lines differ
// between formations.
func (c nodeConfig) hcl() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node_name      = %q\n", c.name)
	fmt.Fprintf(&b, "data_dir       = %q\n", dataMount)
	fmt.Fprintf(&b, "bind_addr      = %q\n", "0.0.0.0")
	fmt.Fprintf(&b, "advertise_addr = %q\n", c.ip)
	switch c.formation {
	case formGossip:
		joins := make([]string, len(c.others))
		for i, p := range c.others {
			joins[i] = strconv.Quote(net.JoinHostPort(p.ip, strconv.Itoa(config.DefaultSerfPort)))
		}
		fmt.Fprintf(&b, "bootstrap_expect = %d\n", len(c.others)+1)
		fmt.Fprintf(&b, "retry_join       = [%s]\n", strings.Join(joins, ", "))
		fmt.Fprintf(&b, "retry_interval   = %q\n", "1s")
		fmt.Fprintf(&b, "encrypt          = %q\n", c.encrypt)
		// A wiped server that restarts before gossip saw it fail makes no
		// membership event; the periodic pass re-adds it (default 30s).
		fmt.Fprintf(&b, "reconcile_interval = %q\n", "2s")
	default:
		b.WriteString("bootstrap      = true\n")
		for _, p := range c.others {
			fmt.Fprintf(&b, "peer %q {\n  address = %q\n}\n", p.name, net.JoinHostPort(p.ip, strconv.Itoa(config.DefaultRPCPort)))
		}
	}
	fmt.Fprintf(&b, "tls {\n  ca_file   = %q\n  cert_file = %q\n  key_file  = %q\n}\n",
		confMount+"/"+c.caFile, confMount+"/"+c.certFile, confMount+"/"+c.keyFile)
	b.WriteString("log {\n  level = \"info\"\n}\n")
	b.WriteString("raft {\n")
	for _, k := range []string{"heartbeat_timeout", "election_timeout", "leader_lease_timeout", "snapshot_interval"} {
		fmt.Fprintf(&b, "  %-20s = %q\n", k, raftTiming[k])
	}
	fmt.Fprintf(&b, "  %-20s = %s\n", "snapshot_threshold", raftTiming["snapshot_threshold"])
	b.WriteString("}\n")
	return b.String()
}

// TestNodeConfigLoads checks that the configuration the harness writes is
// one the agent accepts, in both formations.
func TestNodeConfigLoads(t *testing.T) {
	for _, form := range []formation{formStatic, formGossip} {
		t.Run(string(form), func(t *testing.T) {
			nc := nodeConfig{
				name: "n1", ip: "172.29.1.11", formation: form,
				encrypt: "kYBg4IA6LKD02LTnv2A3/hvG6O3+OAgzcQKBY/8nIak=",
				others:  []peerInfo{{"n2", "172.29.1.12"}, {"n3", "172.29.1.13"}},
				caFile:  "ca.pem", certFile: "server-n1.pem", keyFile: "server-n1-key.pem",
			}
			cfg := config.Default()
			if err := cfg.LoadBytes("config.hcl", []byte(nc.hcl())); err != nil {
				t.Fatalf("%v\n%s", err, nc.hcl())
			}
			if err := cfg.Validate(false); err != nil {
				t.Fatalf("%v\n%s", err, nc.hcl())
			}
			if cfg.NodeName != "n1" || cfg.AdvertiseAddr != "172.29.1.11" || cfg.Raft.HeartbeatTimeout != 500*time.Millisecond {
				t.Errorf("loaded %+v", cfg)
			}
			switch form {
			case formStatic:
				if !cfg.Bootstrap || len(cfg.Peers) != 2 || cfg.Peers[1].Address != "172.29.1.13:8400" {
					t.Errorf("static formation: bootstrap %v, peers %v", cfg.Bootstrap, cfg.Peers)
				}
			case formGossip:
				if cfg.Bootstrap || cfg.BootstrapExpect != 3 || len(cfg.RetryJoin) != 2 || cfg.RetryJoin[0] != "172.29.1.12:8401" || cfg.Encrypt == "" {
					t.Errorf("gossip formation: bootstrap_expect %d, retry_join %v", cfg.BootstrapExpect, cfg.RetryJoin)
				}
			}
		})
	}
}
