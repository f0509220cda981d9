package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/record"
	"github.com/loghouse/loghouse/pkg/tlsutil"
	"github.com/loghouse/loghouse/pkg/vfs"
)

// rtNode is one raft node of an in-process cluster over loopback TCP.
type rtNode struct {
	id     string
	dir    string
	addr   string
	log    *commitlog.Log
	fsm    *FSM
	snaps  *SnapshotStore
	node   *Node
	mux    *Mux
	raft   *raft.Raft
	logger hclog.Logger
}

// rtLogWriter sends hclog output to t.Log.
type rtLogWriter struct{ t *testing.T }

func (w rtLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// rtNoLockFS hides vfs.OS's Locker, so a test can "kill" a node (abandon
// its log without Close) and start it again on the same directory.
type rtNoLockFS struct{ vfs.FS }

func rtStart(t *testing.T, id, dir, addr string, opts commitlog.Options) *rtNode {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Name: id, Output: rtLogWriter{t}, Level: hclog.Info})
	if opts.FS == nil {
		opts.FS = vfs.OS{}
	}
	opts.FS = rtNoLockFS{opts.FS}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	// Raft runs as in production: over the shared-port mux, mutual TLS,
	// server certificates on both ends.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mux := NewMux(ln, 2*time.Second, logger.Named("mux"))
	node, err := NewNode(NodeConfig{
		ID:           id,
		DataDir:      dir,
		Advertise:    ln.Addr().String(),
		RaftListener: mux.RaftListener(),
		TLS:          rtServerStore(t, id),
		Log:          opts,
		Raft: RaftTiming{
			// Short enough for quick elections, long enough that a loaded
			// 2-core machine running -race does not lose leaders.
			HeartbeatTimeout:   time.Second,
			ElectionTimeout:    time.Second,
			LeaderLeaseTimeout: 500 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
			SnapshotThreshold:  1 << 62, // tests take snapshots explicitly
			SnapshotInterval:   time.Hour,
			TrailingLogs:       16,
		},
		HandshakeTimeout: 2 * time.Second,
		Logger:           logger,
	})
	if err != nil {
		t.Fatal(errors.Join(err, mux.Close()))
	}
	n := &rtNode{id: id, dir: dir, addr: ln.Addr().String(), node: node, log: node.Log, fsm: node.FSM, snaps: node.Snapshots, mux: mux, raft: node.Raft, logger: logger}
	t.Cleanup(func() { n.stop(t, true) })
	return n
}

// stop shuts the node down; graceful closes the log, otherwise the log is
// abandoned as a killed process would leave it.
func (n *rtNode) stop(t *testing.T, graceful bool) {
	t.Helper()
	if n.raft == nil {
		return
	}
	if graceful {
		if err := n.node.Close(); err != nil {
			t.Errorf("%s: close: %v", n.id, err)
		}
	} else {
		if err := n.raft.Shutdown().Error(); err != nil {
			t.Errorf("%s: shutdown: %v", n.id, err)
		}
		if err := n.node.trans.Close(); err != nil {
			t.Errorf("%s: close transport: %v", n.id, err)
		}
	}
	if err := n.mux.Close(); err != nil {
		t.Errorf("%s: close mux: %v", n.id, err)
	}
	n.node.WaitStreams()
	n.raft = nil
}

var (
	rtCAOnce sync.Once
	rtCA     tlsutil.KeyPair
	rtCAErr  error
)

// rtServerStore makes a server certificate for id, signed by the tests' CA.
func rtServerStore(t *testing.T, id string) *tlsutil.Store {
	t.Helper()
	rtCAOnce.Do(func() { rtCA, rtCAErr = tlsutil.CreateCA(tlsutil.CAOptions{}) })
	if rtCAErr != nil {
		t.Fatal(rtCAErr)
	}
	pair, err := tlsutil.CreateCert(rtCA, tlsutil.CertOptions{Kind: tlsutil.ServerCert, Name: id})
	if err != nil {
		t.Fatal(err)
	}
	st, err := tlsutil.NewStoreFromPEM(rtCA.CertPEM, pair)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func rtWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not hoping
	}
}

func rtCluster(t *testing.T, n int, opts commitlog.Options) []*rtNode {
	t.Helper()
	nodes := make([]*rtNode, n)
	var servers []raft.Server
	for i := range nodes {
		nodes[i] = rtStart(t, fmt.Sprintf("node%d", i), t.TempDir(), "", opts)
		servers = append(servers, raft.Server{ID: raft.ServerID(nodes[i].id), Address: raft.ServerAddress(nodes[i].addr)})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	rtLeader(t, nodes)
	return nodes
}

func rtLeader(t *testing.T, nodes []*rtNode) *rtNode {
	t.Helper()
	var leader *rtNode
	rtWait(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.raft != nil && n.raft.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// rtProduce applies batches of records with unique values through the
// current leader and returns the values in offset order. A batch refused
// with ErrNotLeader was never appended, so it is retried on the new leader;
// any other failure fails the test.
func rtProduce(t *testing.T, nodes []*rtNode, batches, perBatch int, tag string) []string {
	t.Helper()
	var values []string
	for b := range batches {
		recs := make([]record.Record, perBatch)
		var vals []string
		for i := range recs {
			v := fmt.Sprintf("%s-%d-%d", tag, b, i)
			recs[i] = record.Record{Value: []byte(v)}
			vals = append(vals, v)
		}
		data, err := record.AppendBatch(nil, recs)
		if err != nil {
			t.Fatal(err)
		}
		for attempt := 0; ; attempt++ {
			f := rtLeader(t, nodes).raft.Apply(data, 5*time.Second)
			err := f.Error()
			if errors.Is(err, raft.ErrNotLeader) && attempt < 20 {
				continue
			}
			if errors.Is(err, raft.ErrLeadershipLost) && attempt < 20 {
				// The outcome is unknown. Once a new leader has committed
				// a barrier, the batch is either committed or gone for
				// good: look for it, and retry only if it is gone.
				if rtCommittedOnLeader(t, nodes, vals[0]) {
					break
				}
				continue
			}
			if err != nil {
				t.Fatalf("apply batch %d: %v", b, err)
			}
			res, ok := f.Response().(ApplyResult)
			if !ok || res.Err != nil || res.Count != uint32(perBatch) {
				t.Fatalf("apply batch %d: response %#v", b, f.Response())
			}
			break
		}
		values = append(values, vals...)
	}
	return values
}

// rtEqual fails the test unless node id holds exactly want, in order.
func rtEqual(t *testing.T, id string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s holds %d records, want %d", id, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: record %d is %q, want %q", id, i, got[i], want[i])
		}
	}
}

// rtCommittedOnLeader waits for a leader to commit a barrier and reports
// whether value is among its committed records.
func rtCommittedOnLeader(t *testing.T, nodes []*rtNode, value string) bool {
	t.Helper()
	for try := 0; try < 20; try++ {
		l := rtLeader(t, nodes)
		if err := l.raft.Barrier(5 * time.Second).Error(); err != nil {
			t.Logf("barrier on %s: %v; trying again", l.id, err)
			continue
		}
		for _, v := range rtRecords(t, l) {
			if v == value {
				return true
			}
		}
		return false
	}
	t.Fatal("no leader could commit a barrier")
	return false
}

// rtRecords reads every committed record of a node in offset order.
func rtRecords(t *testing.T, n *rtNode) []string {
	t.Helper()
	committed, _ := n.fsm.Committed()
	var out []string
	it := n.log.NewIterator(n.log.FirstIndex())
	for it.Next() {
		e := it.Entry()
		if e.Offset != n.log.FirstOffset()+uint64(len(out)) {
			t.Fatalf("%s: entry %d has offset %d, want %d", n.id, e.Index, e.Offset, n.log.FirstOffset()+uint64(len(out)))
		}
		if e.Count == 0 {
			continue
		}
		recs, err := record.Decode(e.Data)
		if err != nil {
			t.Fatalf("%s: entry %d: %v", n.id, e.Index, err)
		}
		for _, r := range recs {
			if e.Offset+uint64(len(recs)) > committed {
				return out
			}
			out = append(out, string(r.Value))
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func rtSame(t *testing.T, nodes []*rtNode, want []string) {
	t.Helper()
	for _, n := range nodes {
		if n.raft == nil {
			continue
		}
		rtWait(t, n.id+" to commit everything", func() bool {
			c, _ := n.fsm.Committed()
			return c >= n.log.FirstOffset()+uint64(len(want))
		})
		got := rtRecords(t, n)
		rtEqual(t, n.id, got, want)
	}
}

func TestRaftReplicatesOverCommitLog(t *testing.T) {
	for _, size := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("%d-nodes", size), func(t *testing.T) { rtReplicate(t, size) })
	}
}

// rtReplicate replicates, fails the leader over (clusters of 3 or more),
// and brings it back on its data.
func rtReplicate(t *testing.T, size int) {
	nodes := rtCluster(t, size, commitlog.Options{MaxSegmentBytes: 64 << 10})
	leader := rtLeader(t, nodes)
	if size == 1 {
		want := rtProduce(t, nodes, 100, 10, "a")
		rtSame(t, nodes, want)
		leader.stop(t, true)
		nodes[0] = rtStart(t, leader.id, leader.dir, leader.addr, commitlog.Options{MaxSegmentBytes: 64 << 10})
		rtSame(t, nodes, want)
		rtSame(t, nodes, append(want, rtProduce(t, nodes, 10, 10, "b")...))
		return
	}
	want := rtProduce(t, nodes, 100, 10, "a")
	rtSame(t, nodes, want)

	// Fail the leader over; the survivors go on.
	leader.stop(t, true)
	if rtLeader(t, nodes) == leader {
		t.Fatal("the stopped node is still the leader")
	}
	want = append(want, rtProduce(t, nodes, 50, 10, "b")...)
	rtSame(t, nodes, want)

	// The old leader comes back on its data and catches up with no
	// duplicate, missing or reordered record.
	old := rtStart(t, leader.id, leader.dir, leader.addr, commitlog.Options{MaxSegmentBytes: 64 << 10})
	for i, n := range nodes {
		if n == leader {
			nodes[i] = old
		}
	}
	want = append(want, rtProduce(t, nodes, 20, 10, "c")...)
	rtSame(t, nodes, want)
}

func TestRaftFollowerKilledRestarts(t *testing.T) {
	nodes := rtCluster(t, 3, commitlog.Options{})
	leader := rtLeader(t, nodes)
	want := rtProduce(t, nodes, 50, 4, "a")
	rtSame(t, nodes, want)
	var f *rtNode
	for _, n := range nodes {
		if n != leader {
			f = n
			break
		}
	}
	f.stop(t, false) // killed: the log is never closed
	want = append(want, rtProduce(t, nodes, 50, 4, "b")...)
	back := rtStart(t, f.id, f.dir, f.addr, commitlog.Options{})
	for i, n := range nodes {
		if n == f {
			nodes[i] = back
		}
	}
	want = append(want, rtProduce(t, nodes, 10, 4, "c")...)
	rtSame(t, nodes, want)
}

// TestRaftSnapshotInstall takes a follower away, lets retention delete the
// entries it would need, and checks it catches up through a snapshot
// streamed from the leader's live segments.
func TestRaftSnapshotInstall(t *testing.T) {
	opts := commitlog.Options{MaxSegmentBytes: 8 << 10, RetentionBytes: 32 << 10}
	nodes := rtCluster(t, 3, opts)
	leader := rtLeader(t, nodes)
	want := rtProduce(t, nodes, 20, 4, "a")
	rtSame(t, nodes, want)
	var f *rtNode
	for _, n := range nodes {
		if n != leader {
			f = n
			break
		}
	}
	f.stop(t, true)

	want = append(want, rtProduce(t, nodes, 400, 4, "b")...)
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	res, err := leader.log.ApplyRetention()
	if err != nil || res.Segments == 0 {
		t.Fatalf("retention deleted %d segments, %v; the test needs it to delete some", res.Segments, err)
	}
	first := leader.log.FirstIndex()
	if first <= 21 {
		t.Fatalf("first index %d: retention left what the follower needs", first)
	}

	// The follower restarts on its old data; the leader no longer has the
	// entries after it, so it must install a snapshot.
	back := rtStart(t, f.id, f.dir, f.addr, opts)
	for i, n := range nodes {
		if n == f {
			nodes[i] = back
		}
	}
	more := rtProduce(t, nodes, 5, 4, "c")
	rtWait(t, "the follower to install the snapshot", func() bool {
		c, _ := back.fsm.Committed()
		return back.log.FirstIndex() == first && c == leader.log.NextOffset()
	})
	// Compare the records both hold from the leader's first offset on.
	skip := int(leader.log.FirstOffset())
	want = append(want[skip:], more...)
	for _, n := range []*rtNode{leader, back} {
		got := rtRecords(t, n)
		rtEqual(t, n.id, got, want)
	}
}

// TestRaftNewNodeInstallsSnapshot adds a brand-new voter after retention
// deleted the start of the log: it can only catch up through a snapshot.
func TestRaftNewNodeInstallsSnapshot(t *testing.T) {
	opts := commitlog.Options{MaxSegmentBytes: 8 << 10, RetentionBytes: 16 << 10}
	nodes := rtCluster(t, 3, opts)
	rtProduce(t, nodes, 600, 4, "a")
	leader := rtLeader(t, nodes)
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := n.log.ApplyRetention(); err != nil {
			t.Fatal(err)
		}
	}
	if leader.log.FirstIndex() <= 1 {
		t.Fatal("retention deleted nothing; the test needs it to")
	}
	fresh := rtStart(t, "node3", t.TempDir(), "", opts)
	if err := leader.raft.AddVoter(raft.ServerID(fresh.id), raft.ServerAddress(fresh.addr), 0, 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	nodes = append(nodes, fresh)
	rtProduce(t, nodes, 5, 4, "b")
	leader = rtLeader(t, nodes)
	rtWait(t, "the new node to catch up", func() bool {
		c, _ := fresh.fsm.Committed()
		lc, _ := leader.fsm.Committed()
		return c == lc && fresh.log.LastIndex() >= leader.log.LastIndex()-1
	})
	if fresh.log.FirstIndex() <= 1 || fresh.log.FirstOffset() == 0 {
		t.Fatalf("the new node's log starts at index %d, offset %d: it did not come from a snapshot", fresh.log.FirstIndex(), fresh.log.FirstOffset())
	}
	// From the new node's first offset on, both hold the same records.
	lr, fr := rtRecords(t, leader), rtRecords(t, fresh)
	if fresh.log.FirstOffset() < leader.log.FirstOffset() {
		t.Fatalf("the new node starts at offset %d, before the leader's %d", fresh.log.FirstOffset(), leader.log.FirstOffset())
	}
	skip := int(fresh.log.FirstOffset() - leader.log.FirstOffset())
	if skip > len(lr) {
		t.Fatalf("leader holds %d records from offset %d, new node starts at %d", len(lr), leader.log.FirstOffset(), fresh.log.FirstOffset())
	}
	rtEqual(t, fresh.id, fr, lr[skip:])
}

// TestSnapshotStreamRoundTrip streams a live snapshot and restores it into
// an empty log.
func TestSnapshotStreamRoundTrip(t *testing.T) {
	src := lsOpen(t, t.TempDir())
	lsStore(t, src, 1, 50, 2)
	snaps, err := NewSnapshotStore(t.TempDir(), src.Log(), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := snaps.Create(1, 40, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := snaps.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != meta.Size {
		t.Fatalf("stream is %d bytes, meta.Size says %d", len(b), meta.Size)
	}
	dst := lsOpen(t, t.TempDir())
	fsm := NewFSM(dst.Log(), nil)
	if err := fsm.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	lsCheck(t, dst, 1, 40, func(uint64) uint64 { return 2 })
	if c, _ := fsm.Committed(); c != dst.Log().NextOffset() {
		t.Fatalf("committed %d after restore, want %d", c, dst.Log().NextOffset())
	}
	// Restoring the same snapshot again is a no-op.
	if err := fsm.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	lsCheck(t, dst, 1, 40, func(uint64) uint64 { return 2 })
	// A damaged stream is refused.
	bad := append([]byte(nil), b...)
	bad[len(bad)-3] ^= 1
	other := lsOpen(t, t.TempDir())
	if err := NewFSM(other.Log(), nil).Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
		t.Fatal("restore of a damaged stream succeeded")
	}
}
