package replication

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/record"
	"github.com/loghouse/loghouse/pkg/vfs"
)

// TestLogStoreSyncsWhenNotLeader: a store that does not serve the leader
// (here, one that serves no raft yet) stores durably, and before it hands
// raft an entry it wrote without a sync (as a leader that has since stepped
// down would have), it syncs it, since a follower's AppendEntries reports
// the entries it finds in its log as stored.
func TestLogStoreSyncsWhenNotLeader(t *testing.T) {
	s := lsOpen(t, t.TempDir())
	lsStore(t, s, 1, 3, 1)
	if got := s.Log().SyncedIndex(); got != 3 {
		t.Fatalf("after StoreLogs on a follower, SyncedIndex = %d, want 3", got)
	}
	var entries []commitlog.Entry
	for i := uint64(4); i <= 6; i++ {
		l := lsLog(t, i, 1)
		entries = append(entries, commitlog.Entry{Index: i, Term: 1, Type: uint8(l.Type), Data: l.Data})
	}
	if err := s.Log().AppendNoSync(entries); err != nil {
		t.Fatal(err)
	}
	if got := s.Log().SyncedIndex(); got != 3 {
		t.Fatalf("SyncedIndex = %d, want 3", got)
	}
	var out raft.Log
	if err := s.GetLog(5, &out); err != nil {
		t.Fatal(err)
	}
	if got := s.Log().SyncedIndex(); got < 5 {
		t.Fatalf("GetLog(5) on a follower left SyncedIndex at %d", got)
	}
}

// gateFS holds every store fsync of one node while closed, to stand for a
// slow disk under the leader.
type gateFS struct {
	vfs.FS
	mu      sync.Mutex
	gate    chan struct{} // nil while open
	waiting atomic.Int32
}

func (g *gateFS) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate == nil {
		g.gate = make(chan struct{})
	}
}

func (g *gateFS) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
}

func (g *gateFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".store") {
		return f, err
	}
	return &gateFile{File: f, g: g}, nil
}

type gateFile struct {
	vfs.File
	g *gateFS
}

func (f *gateFile) Sync() error {
	f.g.mu.Lock()
	gate := f.g.gate
	f.g.mu.Unlock()
	if gate != nil {
		f.g.waiting.Add(1)
		<-gate
		f.g.waiting.Add(-1)
	}
	return f.File.Sync()
}

// TestRaftLeaderSyncsInParallel holds the leader's fsync while it appends a
// batch. The followers must still receive and store the batch (the leader
// replicates while its own sync runs), and raft commits it on their copies;
// but until the leader's copy is durable, the producer must not be
// answered and no node may apply it: the leader's FSM waits for its sync,
// and the followers are never told a commit index past it.
func TestRaftLeaderSyncsInParallel(t *testing.T) {
	gates := make([]*gateFS, 3)
	nodes := make([]*rtNode, 3)
	var servers []raft.Server
	for i := range nodes {
		gates[i] = &gateFS{FS: vfs.OS{}}
		nodes[i] = rtStart(t, fmt.Sprintf("node%d", i), t.TempDir(), "", commitlog.Options{FS: gates[i]})
		servers = append(servers, raft.Server{ID: raft.ServerID(nodes[i].id), Address: raft.ServerAddress(nodes[i].addr)})
	}
	t.Cleanup(func() {
		for _, g := range gates {
			g.release()
		}
	})
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	want := rtProduce(t, nodes, 2, 3, "before")
	rtSame(t, nodes, want)

	leader := rtLeader(t, nodes)
	var gate *gateFS
	var followers []*rtNode
	for i, n := range nodes {
		if n == leader {
			gate = gates[i]
		} else {
			followers = append(followers, n)
		}
	}
	committedBefore := make(map[string]uint64)
	for _, n := range nodes {
		committedBefore[n.id], _ = n.fsm.Committed()
	}
	index := leader.log.LastIndex() + 1

	gate.hold()
	data, err := record.AppendBatch(nil, []record.Record{{Value: []byte("held")}})
	if err != nil {
		t.Fatal(err)
	}
	f := leader.raft.Apply(data, 20*time.Second)
	answered := make(chan error, 1)
	go func() { answered <- f.Error() }()

	rtWait(t, "the followers to store the batch while the leader's fsync is held", func() bool {
		for _, n := range followers {
			if n.log.LastIndex() < index {
				return false
			}
		}
		return true
	})
	rtWait(t, "raft to commit the batch on the followers' copies", func() bool {
		return leader.raft.CommitIndex() >= index
	})
	if got := leader.log.SyncedIndex(); got >= index {
		t.Fatalf("the leader's SyncedIndex is %d with its fsync held; the batch is at %d", got, index)
	}
	if gate.waiting.Load() == 0 {
		t.Fatal("no fsync of the leader's is waiting at the gate")
	}
	unapplied := func() {
		for _, n := range nodes {
			if c, _ := n.fsm.Committed(); c != committedBefore[n.id] {
				t.Fatalf("%s made the batch readable (committed %d, was %d) before the leader's copy was durable", n.id, c, committedBefore[n.id])
			}
		}
	}
	rtWait(t, "raft to send the followers the batch's commit index (and the transport to lower it)", func() bool {
		unapplied()
		return leader.node.clamp.heldBack.Load() >= index
	})
	rtWait(t, "raft to hand the batch to the leader's FSM", func() bool {
		return leader.raft.AppliedIndex() >= index
	})
	// What must not happen now (a follower applying the commit index it
	// was sent, the FSM answering the batch it was handed) would follow
	// within a millisecond; the window allows for a loaded machine.
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-answered:
		t.Fatalf("the producer was answered (%v) before the leader's copy was durable", err)
	default:
	}
	unapplied()
	for _, n := range followers {
		if c := n.raft.CommitIndex(); c >= index {
			t.Fatalf("%s was told commit index %d, past the leader's durable log", n.id, c)
		}
	}

	gate.release()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("apply after the leader's fsync: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the producer was never answered after the leader's fsync")
	}
	if res, ok := f.Response().(ApplyResult); !ok || res.Err != nil || res.Index != index {
		t.Fatalf("response %#v, want index %d", f.Response(), index)
	}
	rtSame(t, nodes, append(want, "held"))
}
