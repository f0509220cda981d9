package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/config"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// Cluster is a Loghouse cluster of containers on a private Docker network
// of its own, with the fault primitives the tests use. Everything it makes
// is removed by t.Cleanup; if the test failed, the tail of each node's log
// is written to the test log first.
type Cluster struct {
	t       *testing.T
	s       *suite
	id      string // unique per cluster: names and labels
	network string
	subnet  string // a.b.c (the /24's first three octets)
	dir     string // host directory: certificates, configs, data
	form    formation
	encrypt string
	nodes   []*Node
	creds   credentials.TransportCredentials

	mu  sync.Mutex
	cut map[[2]int]bool // node index pairs (low, high) that cannot talk
	// disconnected are nodes taken off the network (the partition
	// fallback when iptables cannot be used).
	disconnected map[int]bool
}

// Node is one container of a Cluster.
type Node struct {
	c         *Cluster
	idx       int
	Name      string // n1, n2, …: the raft server ID
	IP        string
	Addr      string // IP:8400
	container string
	confDir   string
	dataDir   string
	conn      *grpc.ClientConn
	Client    loghousev1.LogClient

	// epoch counts the node's incarnations: it grows whenever the process
	// is started again, so that checks can tell one run of the process
	// from the next.
	epoch atomic.Int64

	mu    sync.Mutex
	state nodeState
}

type nodeState int

const (
	nodeRunning nodeState = iota
	nodeStopped
	nodePaused
)

func (s nodeState) String() string {
	switch s {
	case nodeRunning:
		return "running"
	case nodeStopped:
		return "stopped"
	case nodePaused:
		return "paused"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// MakeCluster starts an n-node cluster and waits until every node knows
// the same leader and the leader counts every node as a voter.
func MakeCluster(t *testing.T, n int) *Cluster {
	t.Helper()
	s := needDocker(t)
	form, err := formationFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{
		t: t, s: s, id: randomID(), dir: t.TempDir(), form: form,
		cut: map[[2]int]bool{}, disconnected: map[int]bool{},
	}
	c.network = "loghouse-e2e-" + c.id
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	start := time.Now()
	if err := c.createNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.removeAll)
	for i := range n {
		name := "n" + strconv.Itoa(i+1)
		ip := fmt.Sprintf("%s.%d", c.subnet, 11+i)
		c.nodes = append(c.nodes, &Node{
			c: c, idx: i, Name: name, IP: ip,
			Addr:      net.JoinHostPort(ip, strconv.Itoa(config.DefaultRPCPort)),
			container: c.network + "-" + name,
			confDir:   filepath.Join(c.dir, name),
			dataDir:   filepath.Join(c.dir, name+"-data"),
		})
	}
	if err := c.writeFiles(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.dumpLogsOnFailure)
	for _, nd := range c.nodes {
		if err := nd.run(ctx); err != nil {
			t.Fatal(err)
		}
		if err := nd.dial(); err != nil {
			t.Fatal(err)
		}
	}
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatalf("cluster did not form: %v", err)
	}
	if err := c.waitVoters(ctx, leader); err != nil {
		t.Fatalf("cluster did not form: %v", err)
	}
	t.Logf("cluster %s: %d nodes on %s.0/24 (%s formation, iptables partitions: %v), leader %s after %v",
		c.id, n, c.subnet, c.form, c.iptables(), leader.Name, time.Since(start).Round(time.Millisecond))
	return c
}

// Nodes returns the cluster's nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// randomID names a cluster: 8 hex digits, unique enough among the runs
// on one engine.
func randomID() string { return fmt.Sprintf("%08x", rand.Uint32()) }

// createNetwork makes an internal bridge network (no route out) on a
// random 172.29.x.0/24 that does not clash with another network; the
// host side is x.1 and reaches the containers directly.
func (c *Cluster) createNetwork(ctx context.Context) error {
	var errs []error
	for range 20 {
		c.subnet = fmt.Sprintf("172.29.%d", 16+rand.IntN(224))
		_, err := docker(ctx, "network", "create", "--driver", "bridge", "--internal",
			"--subnet", c.subnet+".0/24", "--gateway", c.subnet+".1",
			"--label", labelSuite+"=1", "--label", labelPID+"="+strconv.Itoa(os.Getpid()), "--label", labelRun+"="+c.id,
			c.network)
		if err == nil {
			return nil
		}
		errs = append(errs, err) // most likely the subnet is in use: try another
	}
	return fmt.Errorf("e2e: create network: %w", errors.Join(errs...))
}

// writeFiles makes the CA, each node's server certificate (with its IP),
// the root client certificate, and each node's config.hcl, with the
// binary's own commands.
func (c *Cluster) writeFiles(ctx context.Context) error {
	caDir := filepath.Join(c.dir, "ca")
	clientDir := filepath.Join(c.dir, "client")
	for _, d := range []string{caDir, clientDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	caCert := filepath.Join(caDir, tlsutil.CACertFileName)
	caKey := filepath.Join(caDir, tlsutil.CAKeyFileName)
	if err := c.loghoused(ctx, "tls", "ca", "create", "-dir", caDir); err != nil {
		return err
	}
	if c.form == formGossip {
		out, err := exec.CommandContext(ctx, c.s.bin, "keygen").Output()
		if err != nil {
			return fmt.Errorf("e2e: loghoused keygen: %w", err)
		}
		c.encrypt = strings.TrimSpace(string(out))
	}
	if err := c.loghoused(ctx, "tls", "cert", "create", "-client", "-name", "root", "-dir", clientDir, "-ca", caCert, "-ca-key", caKey); err != nil {
		return err
	}
	certName, keyName, err := tlsutil.CertFileNames(tlsutil.ClientCert, "root")
	if err != nil {
		return err
	}
	store, err := tlsutil.NewStore(tlsutil.Files{CAFile: caCert, CertFile: filepath.Join(clientDir, certName), KeyFile: filepath.Join(clientDir, keyName)})
	if err != nil {
		return err
	}
	c.creds = credentials.NewTLS(store.ClientConfig(tlsutil.ServerRole))
	for _, nd := range c.nodes {
		for _, d := range []string{nd.confDir, nd.dataDir} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		if err := c.loghoused(ctx, "tls", "cert", "create", "-server", "-name", nd.Name, "-ip", nd.IP,
			"-dir", nd.confDir, "-ca", caCert, "-ca-key", caKey); err != nil {
			return err
		}
		ca, err := os.ReadFile(caCert)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(nd.confDir, tlsutil.CACertFileName), ca, 0o644); err != nil {
			return err
		}
		cert, key, err := tlsutil.CertFileNames(tlsutil.ServerCert, nd.Name)
		if err != nil {
			return err
		}
		cfg := nodeConfig{
			name: nd.Name, ip: nd.IP, formation: c.form, encrypt: c.encrypt,
			caFile: tlsutil.CACertFileName, certFile: cert, keyFile: key,
		}
		for _, o := range c.nodes {
			if o != nd {
				cfg.others = append(cfg.others, peerInfo{o.Name, o.IP})
			}
		}
		if err := os.WriteFile(filepath.Join(nd.confDir, "config.hcl"), []byte(cfg.hcl()), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) loghoused(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, c.s.bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("e2e: loghoused %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// run creates and starts the node's container. The container runs as
// the test's user, so that it can write the bind-mounted data directory
// and the test can remove it.
func (n *Node) run(ctx context.Context) error {
	c := n.c
	_, err := docker(ctx, "run", "-d", "--name", n.container, "--hostname", n.Name,
		"--network", c.network, "--ip", n.IP,
		"--user", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		"--label", labelSuite+"=1", "--label", labelPID+"="+strconv.Itoa(os.Getpid()), "--label", labelRun+"="+c.id,
		"-v", n.confDir+":"+confMount+":ro", "-v", n.dataDir+":"+dataMount,
		c.s.image, "agent", "-config", confFile)
	if err != nil {
		return fmt.Errorf("e2e: start %s: %w", n.Name, err)
	}
	n.setState(nodeRunning)
	c.mu.Lock()
	delete(c.disconnected, n.idx) // a new container starts on the network
	c.mu.Unlock()
	return nil
}

// dial connects the test's client (mutual TLS, identity "root") to the
// node. Reconnection back-off is short, so the client finds a restarted
// node quickly.
func (n *Node) dial() error {
	conn, err := grpc.NewClient(n.Addr,
		grpc.WithTransportCredentials(n.c.creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}))
	if err != nil {
		return fmt.Errorf("e2e: dial %s: %w", n.Name, err)
	}
	n.conn, n.Client = conn, loghousev1.NewLogClient(conn)
	return nil
}

func (n *Node) setState(s nodeState) {
	n.mu.Lock()
	n.state = s
	n.mu.Unlock()
}

// State is the node's container state as the harness left it.
func (n *Node) State() nodeState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// Epoch is the node's incarnation number.
func (n *Node) Epoch() int64 { return n.epoch.Load() }

func (n *Node) String() string { return n.Name }

// Kill stops the node's process with SIGKILL (kill -9).
func (n *Node) Kill(ctx context.Context) error {
	if _, err := docker(ctx, "kill", "-s", "KILL", n.container); err != nil {
		return err
	}
	n.setState(nodeStopped)
	return nil
}

// stopGrace is how long a graceful stop may take before docker kills the
// process.
const stopGrace = 20 * time.Second

// Stop stops the node gracefully (SIGTERM, SIGKILL after stopGrace). A
// slow stop is logged.
func (n *Node) Stop(ctx context.Context) error {
	start := time.Now()
	if _, err := docker(ctx, "stop", "-t", strconv.Itoa(int(stopGrace/time.Second)), n.container); err != nil {
		return err
	}
	n.setState(nodeStopped)
	if d := time.Since(start); d > 3*time.Second {
		n.c.t.Logf("graceful stop of %s took %v", n.Name, d.Round(time.Millisecond))
	}
	return nil
}

// Start starts a stopped node again, on its data directory, and restores
// the partition rules that apply to it (a new process has a new network
// namespace).
func (n *Node) Start(ctx context.Context) error {
	n.epoch.Add(1)
	if _, err := docker(ctx, "start", n.container); err != nil {
		return err
	}
	n.setState(nodeRunning)
	return n.c.applyCuts(ctx, n)
}

// Restart is Stop then Start: a graceful restart.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.Stop(ctx); err != nil {
		return err
	}
	return n.Start(ctx)
}

// Pause freezes the node's process (docker pause: the cgroup freezer);
// connections stay open and go silent.
func (n *Node) Pause(ctx context.Context) error {
	if _, err := docker(ctx, "pause", n.container); err != nil {
		return err
	}
	n.setState(nodePaused)
	return nil
}

// Unpause thaws a paused node.
func (n *Node) Unpause(ctx context.Context) error {
	if _, err := docker(ctx, "unpause", n.container); err != nil {
		return err
	}
	n.setState(nodeRunning)
	return nil
}

// Wipe removes the node's container and its data and starts a new
// container under the same name, address, certificate and configuration:
// a replaced disk.
//
// A server that lost its data must not vote under its old identity: with
// an empty log and no memory of its votes it can elect a leader that
// lacks writes it had acknowledged (the checker caught exactly that: a
// record lost after the leader's disk was replaced). So, with the gossip
// formation, the wipe follows the operator's procedure: the dead server is
// removed from raft (operator raft remove-peer, through any other node)
// before its replacement starts, and the leader adds the replacement back
// as a voter when gossip sees it. With the static formation the new node
// bootstraps again with the same peers (it has no raft state), which is
// exposed to that hazard; the static formation is not the default.
func (n *Node) Wipe(ctx context.Context) error {
	if _, err := docker(ctx, "rm", "-f", n.container); err != nil {
		return err
	}
	n.setState(nodeStopped)
	n.epoch.Add(1) // only now: the old process is gone
	if n.c.form == formGossip {
		if err := n.removeFromRaft(ctx); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		return err
	}
	if err := os.MkdirAll(n.dataDir, 0o700); err != nil {
		return err
	}
	if err := n.run(ctx); err != nil {
		return err
	}
	return n.c.applyCuts(ctx, n)
}

// removeFromRaft removes n from the raft configuration through another
// running node (which forwards to the leader, waiting for an election if
// n led), retrying until it is done or gone, for at most 30 s.
func (n *Node) removeFromRaft(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		for _, o := range n.c.nodes {
			if o == n || o.State() != nodeRunning {
				continue
			}
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := o.Client.RemovePeer(cctx, &loghousev1.RemovePeerRequest{Id: n.Name})
			ccancel()
			if err == nil || status.Code(err) == codes.NotFound {
				return nil
			}
			last = err
		}
		if err := hold(ctx, 200*time.Millisecond); err != nil {
			break
		}
	}
	return fmt.Errorf("e2e: remove %s from raft before wiping it: %w", n.Name, last)
}

// Status asks the node for its raft state and log bounds.
func (n *Node) Status(ctx context.Context) (*loghousev1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return n.Client.Status(ctx, &loghousev1.StatusRequest{})
}

// removeAll removes the cluster's containers and network, and closes the
// clients.
func (c *Cluster) removeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	for _, n := range c.nodes {
		if n.conn != nil {
			if err := n.conn.Close(); err != nil {
				c.t.Logf("close client of %s: %v", n.Name, err)
			}
		}
	}
	ids, err := docker(ctx, "ps", "-aq", "--filter", "label="+labelRun+"="+c.id)
	if err != nil {
		c.t.Errorf("cleanup: %v", err)
	} else if ids != "" {
		if _, err := docker(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
			c.t.Errorf("cleanup: %v", err)
		}
	}
	if _, err := docker(ctx, "network", "rm", c.network); err != nil {
		c.t.Errorf("cleanup: %v", err)
	}
}

// dumpLogsOnFailure writes the last lines of every node's log to the
// test log when the test failed, and the whole logs to
// LOGHOUSE_E2E_ARTIFACTS if that is set.
func (c *Cluster) dumpLogsOnFailure() {
	if !c.t.Failed() {
		return
	}
	keep := os.Getenv(envKeep)
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		out, err := exec.CommandContext(ctx, "docker", "logs", "--tail", "50", n.container).CombinedOutput()
		cancel()
		if err != nil {
			c.t.Logf("logs of %s: %v", n.Name, err)
		}
		c.t.Logf("==== last 50 log lines of %s (%s, %s) ====\n%s", n.Name, n.container, n.State(), out)
		if keep != "" {
			ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
			all, _ := exec.CommandContext(ctx, "docker", "logs", n.container).CombinedOutput() // best effort: the tail is above
			cancel()
			path := filepath.Join(keep, c.t.Name(), n.Name+".log")
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				if err := os.WriteFile(path, all, 0o644); err != nil {
					c.t.Logf("keep log: %v", err)
				}
			}
		}
	}
}

// waitFor polls cond every interval until it holds or timeout passes; the
// error then says what cond last reported.
func waitFor(ctx context.Context, timeout, interval time.Duration, cond func(context.Context) (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := ""
	for {
		ok, why := cond(ctx)
		if ok {
			return nil
		}
		if ctx.Err() == nil || last == "" {
			last = why // not what a call cut short by the deadline said
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %s", timeout, last)
		case <-tick.C:
		}
	}
}

// up are the nodes that are running and not paused.
func (c *Cluster) up() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n.State() == nodeRunning {
			out = append(out, n)
		}
	}
	return out
}

// WaitLeader waits until every running node names the same leader and
// that node says it leads, and returns it.
func (c *Cluster) WaitLeader(ctx context.Context) (*Node, error) {
	var leader *Node
	err := waitFor(ctx, readyTimeout, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		leader = nil
		ids := map[string]bool{}
		var why []string
		for _, n := range c.up() {
			st, err := n.Status(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.Name, err)
			}
			ids[st.GetLeaderId()] = true
			why = append(why, fmt.Sprintf("%s: %s term %d leader %q", n.Name, st.GetRaftState(), st.GetTerm(), st.GetLeaderId()))
			if st.GetRaftState() == "Leader" {
				leader = n
			}
		}
		ok := len(ids) == 1 && leader != nil && ids[leader.Name]
		return ok, strings.Join(why, "; ")
	})
	if err != nil {
		return nil, fmt.Errorf("e2e: no agreed leader: %w", err)
	}
	return leader, nil
}

// waitVoters waits until the leader's raft configuration holds every node
// as a voter (with gossip, the leader adds them as they join).
func (c *Cluster) waitVoters(ctx context.Context, leader *Node) error {
	return waitFor(ctx, readyTimeout, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		resp, err := leader.Client.GetServers(cctx, &loghousev1.GetServersRequest{})
		if err != nil {
			return false, err.Error()
		}
		voters := map[string]bool{}
		for _, s := range resp.GetServers() {
			if s.GetVoter() {
				voters[s.GetId()] = true
			}
		}
		for _, n := range c.nodes {
			if !voters[n.Name] {
				return false, fmt.Sprintf("%s is not a voter: %v", n.Name, resp.GetServers())
			}
		}
		return true, ""
	})
}

// WaitConverged waits until every node is running and holds the same
// committed log of at least min records, and returns that length.
func (c *Cluster) WaitConverged(ctx context.Context, minLen uint64) (uint64, error) {
	var length uint64
	err := waitFor(ctx, convergeTimeout, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		var why []string
		seen := map[uint64]bool{}
		for _, n := range c.nodes {
			if s := n.State(); s != nodeRunning {
				return false, n.Name + " is " + s.String()
			}
			st, err := n.Status(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.Name, err)
			}
			seen[st.GetCommittedOffset()] = true
			length = st.GetCommittedOffset()
			why = append(why, fmt.Sprintf("%s: committed %d (index %d/%d, %s)", n.Name, st.GetCommittedOffset(), st.GetAppliedIndex(), st.GetLastIndex(), st.GetRaftState()))
		}
		return len(seen) == 1 && length >= minLen, strings.Join(why, "; ")
	})
	return length, err
}

// ReadAll reads the node's whole committed log, [0, upTo).
func (n *Node) ReadAll(ctx context.Context, upTo uint64) ([]*loghousev1.Record, error) {
	var out []*loghousev1.Record
	next := uint64(0)
	for calls := 0; next < upTo; calls++ {
		if calls > int(upTo)+1 {
			return out, fmt.Errorf("e2e: read %s: no progress at offset %d", n.Name, next)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := n.Client.Consume(cctx, &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: next}, MaxRecords: 1000})
		cancel()
		if err != nil {
			return out, fmt.Errorf("e2e: read %s at offset %d: %w", n.Name, next, err)
		}
		if len(resp.GetRecords()) == 0 {
			return out, fmt.Errorf("e2e: read %s at offset %d: no records below %d (committed %d)", n.Name, next, upTo, resp.GetCommittedOffset())
		}
		for _, r := range resp.GetRecords() {
			if r.GetOffset() >= upTo {
				return out, nil
			}
			out = append(out, r)
		}
		next = resp.GetNextOffset()
	}
	return out, nil
}

// pairKey is the cut map's key for nodes i and j.
func pairKey(i, j int) [2]int {
	if i > j {
		i, j = j, i
	}
	return [2]int{i, j}
}

// Partition cuts every link between nodes of different groups. Nodes in
// no group keep their links. Clients (the test, on the network's
// gateway) still reach every node.
func (c *Cluster) Partition(ctx context.Context, groups ...[]*Node) error {
	c.mu.Lock()
	for gi, g := range groups {
		for _, h := range groups[gi+1:] {
			for _, a := range g {
				for _, b := range h {
					c.cut[pairKey(a.idx, b.idx)] = true
				}
			}
		}
	}
	c.mu.Unlock()
	for _, n := range c.nodes {
		if err := c.applyCuts(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// Isolate cuts n off from every other node.
func (c *Cluster) Isolate(ctx context.Context, n *Node) error {
	var rest []*Node
	for _, o := range c.nodes {
		if o != n {
			rest = append(rest, o)
		}
	}
	return c.Partition(ctx, []*Node{n}, rest)
}

// Heal removes every partition.
func (c *Cluster) Heal(ctx context.Context) error {
	c.mu.Lock()
	clear(c.cut)
	c.mu.Unlock()
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, c.applyCuts(ctx, n))
	}
	return errors.Join(errs...)
}

// applyCuts makes n's network match the cut set. With iptables, n's
// INPUT and OUTPUT chains drop packets from and to every node it is cut
// from (the chains hold nothing else: the image has no firewall). Without,
// n is disconnected from the network if it is cut from anyone.
func (c *Cluster) applyCuts(ctx context.Context, n *Node) error {
	c.mu.Lock()
	var peers []*Node
	for k := range c.cut {
		switch n.idx {
		case k[0]:
			peers = append(peers, c.nodes[k[1]])
		case k[1]:
			peers = append(peers, c.nodes[k[0]])
		}
	}
	c.mu.Unlock()
	if !c.iptables() {
		return c.connect(ctx, n, len(peers) == 0)
	}
	if n.State() == nodeStopped {
		return nil // Start applies them
	}
	pid, err := docker(ctx, "inspect", "-f", "{{.State.Pid}}", n.container)
	if err != nil {
		return err
	}
	if pid == "0" || pid == "" {
		return nil // not running
	}
	ns := "--net=/proc/" + pid + "/ns/net"
	cmds := [][]string{{"-F", "INPUT"}, {"-F", "OUTPUT"}}
	for _, p := range peers {
		cmds = append(cmds, []string{"-A", "INPUT", "-s", p.IP, "-j", "DROP"}, []string{"-A", "OUTPUT", "-d", p.IP, "-j", "DROP"})
	}
	for _, args := range cmds {
		cctx, cancel := context.WithTimeout(ctx, dockerTimeout)
		out, err := exec.CommandContext(cctx, "nsenter", append([]string{ns, "iptables", "-w"}, args...)...).CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("e2e: iptables %s in %s: %w: %s", strings.Join(args, " "), n.Name, err, out)
		}
	}
	return nil
}

// iptables reports whether partitions are made with iptables; setting
// LOGHOUSE_E2E_PARTITION=docker forces the docker network fallback.
func (c *Cluster) iptables() bool {
	return c.s.iptables && os.Getenv(envPartition) != "docker"
}

// connect attaches n to the network (with its address) or detaches it.
func (c *Cluster) connect(ctx context.Context, n *Node, on bool) error {
	c.mu.Lock()
	off := c.disconnected[n.idx]
	c.mu.Unlock()
	switch {
	case on && off:
		if _, err := docker(ctx, "network", "connect", "--ip", n.IP, c.network, n.container); err != nil {
			return err
		}
	case !on && !off:
		if _, err := docker(ctx, "network", "disconnect", "-f", c.network, n.container); err != nil {
			return err
		}
	default:
		return nil
	}
	c.mu.Lock()
	c.disconnected[n.idx] = !on
	c.mu.Unlock()
	return nil
}

// HealAll ends every fault: partitions are healed, paused nodes thawed and
// stopped nodes started.
func (c *Cluster) HealAll(ctx context.Context) error {
	errs := []error{c.Heal(ctx)}
	for _, n := range c.nodes {
		switch n.State() {
		case nodePaused:
			errs = append(errs, n.Unpause(ctx))
		case nodeStopped:
			errs = append(errs, n.Start(ctx))
		}
	}
	return errors.Join(errs...)
}
