package replication

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// Peer is another server of a statically configured cluster.
type Peer struct {
	ID   string
	Addr string // its RPC address (gRPC and raft share the port)
}

// RaftTiming tunes raft. Zero fields take raft's defaults, except as noted.
type RaftTiming struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval and SnapshotThreshold decide how often the (O(1))
	// snapshots are taken; more often means shorter replays on restart.
	// Defaults: 30s and 1024 entries.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is raft's compaction margin; it must be positive (see
	// DESIGN.md). Default: 10240.
	TrailingLogs uint64
	// MaxAppendEntries bounds the entries per replication message and per
	// log write. Default: raft's 64.
	MaxAppendEntries int
}

// NodeConfig configures a Node.
type NodeConfig struct {
	// ID is the node's raft server ID.
	ID string
	// DataDir holds the log (DataDir/log) and raft's state (DataDir/raft).
	DataDir string
	// Advertise is the RPC address other servers reach this node at.
	Advertise string
	// RaftListener yields the raft connections of the shared port
	// (Mux.RaftListener).
	RaftListener net.Listener
	// TLS holds the node's server certificate and the CA.
	TLS *tlsutil.Store
	// Bootstrap makes the node bootstrap a cluster of itself and Peers if
	// it has no raft state yet. On restart it does nothing.
	Bootstrap bool
	// Peers are the other servers for Bootstrap.
	Peers []Peer
	// Log configures the commit log.
	Log commitlog.Options
	// Raft tunes raft.
	Raft RaftTiming
	// HandshakeTimeout bounds raft's TLS handshakes. Default: 10s.
	HandshakeTimeout time.Duration
	// SnapshotRetain is how many snapshots to keep. Default: 2.
	SnapshotRetain int
	// Logger is the parent logger; the node names its subsystems.
	Logger hclog.Logger
}

// Node is one replica: the commit log, raft over it, and raft's transport.
type Node struct {
	Log       *commitlog.Log
	FSM       *FSM
	Raft      *raft.Raft
	Snapshots *SnapshotStore
	Store     *LogStore

	id        string
	advertise string
	logger    hclog.Logger
	stream    *StreamLayer
	trans     *raft.NetworkTransport
	clamp     *clampTransport // trans, as raft sees it

	closeOnce sync.Once
	closeErr  error
}

// NewNode opens the log and starts raft. If a later step fails, what the
// earlier steps opened is closed again.
func NewNode(cfg NodeConfig) (n *Node, err error) {
	if cfg.ID == "" || cfg.DataDir == "" || cfg.Advertise == "" || cfg.RaftListener == nil || cfg.TLS == nil {
		return nil, errors.New("replication: node needs ID, DataDir, Advertise, RaftListener and TLS")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	advertise, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
	if err != nil {
		return nil, fmt.Errorf("replication: advertise address %q: %w", cfg.Advertise, err)
	}
	n = &Node{id: cfg.ID, advertise: cfg.Advertise, logger: logger}
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				err = errors.Join(err, undo[i]())
			}
			n = nil
		}
	}()

	logOpts := cfg.Log
	if logOpts.Logger == nil {
		logOpts.Logger = logger.Named("commitlog")
	}
	if n.Log, err = commitlog.Open(filepath.Join(cfg.DataDir, "log"), logOpts); err != nil {
		return nil, err
	}
	undo = append(undo, n.Log.Close)
	stable, err := OpenStableStore(nil, filepath.Join(cfg.DataDir, "raft", "stable"))
	if err != nil {
		return nil, err
	}
	retain := cfg.SnapshotRetain
	if retain == 0 {
		retain = 2
	}
	if n.Snapshots, err = NewSnapshotStore(filepath.Join(cfg.DataDir, "raft", "snapshots"), n.Log, retain, logger.Named("snapshots")); err != nil {
		return nil, err
	}
	n.Store = NewLogStore(n.Log)
	n.FSM = NewFSM(n.Log, logger.Named("fsm"))

	hs := cfg.HandshakeTimeout
	if hs == 0 {
		hs = 10 * time.Second
	}
	n.stream = NewStreamLayer(cfg.RaftListener, advertise, cfg.TLS, hs, logger.Named("raft-stream"))
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  n.stream,
		MaxPool: 3,
		Timeout: hs,
		Logger:  logger.Named("raft-transport"),
	})
	// The stream layer's goroutines end when the caller closes the mux.
	undo = append(undo, n.trans.Close)

	rc := raftConfig(cfg, logger)
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("replication: raft config: %w", err)
	}
	if cfg.Bootstrap {
		existing, err := raft.HasExistingState(n.Store, stable, n.Snapshots)
		if err != nil {
			return nil, fmt.Errorf("replication: check raft state: %w", err)
		}
		if !existing {
			servers := []raft.Server{{ID: raft.ServerID(cfg.ID), Address: raft.ServerAddress(cfg.Advertise)}}
			for _, p := range cfg.Peers {
				servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
			}
			if err := raft.BootstrapCluster(rc, n.Store, stable, n.Snapshots, n.trans, raft.Configuration{Servers: servers}); err != nil {
				return nil, fmt.Errorf("replication: bootstrap: %w", err)
			}
			logger.Info("bootstrapped a new cluster", "servers", len(servers))
		}
	}
	n.clamp = &clampTransport{NetworkTransport: n.trans, synced: n.Log.SyncedIndex}
	if n.Raft, err = raft.NewRaft(rc, n.FSM, n.Store, stable, n.Snapshots, n.clamp); err != nil {
		return nil, fmt.Errorf("replication: start raft: %w", err)
	}
	n.Store.SetRaft(n.Raft)
	return n, nil
}

func raftConfig(cfg NodeConfig, logger hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = logger.Named("raft")
	t := cfg.Raft
	set := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	set(&rc.HeartbeatTimeout, t.HeartbeatTimeout)
	set(&rc.ElectionTimeout, t.ElectionTimeout)
	set(&rc.LeaderLeaseTimeout, t.LeaderLeaseTimeout)
	set(&rc.CommitTimeout, t.CommitTimeout)
	rc.SnapshotInterval = 30 * time.Second
	set(&rc.SnapshotInterval, t.SnapshotInterval)
	rc.SnapshotThreshold = 1024
	if t.SnapshotThreshold != 0 {
		rc.SnapshotThreshold = t.SnapshotThreshold
	}
	rc.TrailingLogs = 10240
	if t.TrailingLogs != 0 {
		rc.TrailingLogs = t.TrailingLogs
	}
	if t.MaxAppendEntries != 0 {
		rc.MaxAppendEntries = t.MaxAppendEntries
	}
	// Raft's per-peer metrics carry a peer_id label; without this it also
	// emits each under a second name per peer (raft_replication_
	// appendEntries_rpc_n2, ...), which doubles the metrics work of every
	// replication message (9% of the leader's allocations on a one-record
	// write) for series nobody needs.
	rc.NoLegacyTelemetry = true
	// BatchApplyCh stays off: with it, an Apply racing Shutdown can get a
	// future that is never answered (hashicorp/raft#498). The server
	// batches records into entries itself (group commit).
	return rc
}

// ID is the node's raft server ID.
func (n *Node) ID() string { return n.id }

// Advertise is the node's RPC address.
func (n *Node) Advertise() string { return n.advertise }

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.Raft.State() == raft.Leader }

// Leader returns the leader's RPC address and ID, empty if unknown.
func (n *Node) Leader() (addr, id string) {
	a, i := n.Raft.LeaderWithID()
	return string(a), string(i)
}

// Close ends raft's connections (StreamLayer.Halt), shuts raft down, then
// its transport, then the log. It is idempotent and returns every error
// joined.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		// Raft's shutdown waits for its replication goroutines, which
		// may sit in a dial or a write to a peer that is down until the
		// transport's timeout: end those first.
		n.stream.Halt()
		if err := n.Raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("replication: raft shutdown: %w", err))
		}
		if err := n.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("replication: close transport: %w", err))
		}
		if err := n.Log.Close(); err != nil {
			errs = append(errs, err)
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// WaitStreams blocks until the raft stream layer's goroutines have ended;
// call it after the mux that feeds RaftListener is closed.
func (n *Node) WaitStreams() { n.stream.Wait() }
