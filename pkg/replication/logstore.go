package replication

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/record"
)

// LogStore is raft's LogStore over the commit log: each raft entry is one
// commit log entry, so a record is written once per replica. Command entries
// carrying a record batch take as many record offsets as they hold records;
// other entries take none.
//
// It keeps the entries it stored last in memory (recentEntries of them), so
// that raft's reads of what it has just written (the leader's replicators
// building AppendEntries, a follower applying what it stored) do not go back
// to the file: on the write path of one record that is five preads less.
//
// On the leader it does not wait for its own fsync: StoreLogs of command
// entries appends without syncing and starts the sync in the background, so
// that raft sends the entries to the followers while the leader's disk
// writes them (Raft thesis §10.2.1). What makes that safe lives in three
// places (DESIGN.md, "The leader's fsync runs in parallel"): the FSM does
// not apply an entry before it is durable here, the transport never tells
// followers a commit index beyond it, and a node that is not the leader
// syncs before it stores or reports an entry as its own (StoreLogs and
// GetLog below).
type LogStore struct {
	log *commitlog.Log

	// raft is the node's raft, once it runs; until then the store acts
	// as on a follower.
	raft atomic.Pointer[raft.Raft]
	// syncing is set while a background sync goroutine runs.
	syncing atomic.Bool

	mu sync.Mutex
	// recent[i%recentEntries] is the entry with index i, if it is one of
	// the last stored. GetLog trusts a slot only for its own index and
	// only while the log holds that index; StoreLogs overwrites the slots
	// of the indexes it writes, and DeleteRange clears them all.
	recent [recentEntries]*raft.Log
}

// recentEntries is how many of the last stored entries LogStore keeps. A
// replicator reads at most its follower's lag; a few dozen entries cover a
// follower that keeps up, and bound the memory to that many batches.
const recentEntries = 64

var _ raft.LogStore = (*LogStore)(nil)

// NewLogStore returns a LogStore over l. It does not take ownership: the
// caller closes l after raft has shut down.
func NewLogStore(l *commitlog.Log) *LogStore { return &LogStore{log: l} }

// SetRaft tells the store which raft it serves, so that it can tell when it
// is the leader's.
func (s *LogStore) SetRaft(r *raft.Raft) { s.raft.Store(r) }

// leading reports whether the store serves the current leader.
func (s *LogStore) leading() bool {
	r := s.raft.Load()
	return r != nil && r.State() == raft.Leader
}

// Log is the commit log underneath.
func (s *LogStore) Log() *commitlog.Log { return s.log }

// FirstIndex implements raft.LogStore: 0 when the log is empty.
func (s *LogStore) FirstIndex() (uint64, error) {
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	if last < first {
		return 0, nil
	}
	return first, nil
}

// LastIndex implements raft.LogStore: 0 when the log is empty.
func (s *LogStore) LastIndex() (uint64, error) {
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	if last < first {
		return 0, nil
	}
	return last, nil
}

// GetLog implements raft.LogStore. An index the log does not hold is
// raft.ErrLogNotFound itself, as raft compares with ==.
//
// A node that is not the leader reads entries to compare them with the
// leader's (AppendEntries skips those it holds already) and then reports
// them as stored. If it wrote them as a leader and their sync has not run
// yet, GetLog syncs them first, so that a follower never acknowledges an
// entry it could lose.
func (s *LogStore) GetLog(index uint64, out *raft.Log) error {
	if index > s.log.SyncedIndex() && !s.leading() {
		if err := s.log.SyncTo(index); err != nil {
			return fmt.Errorf("replication: sync log up to %d: %w", index, err)
		}
	}
	if l := s.cached(index); l != nil {
		*out = *l
		return nil
	}
	e, err := s.log.Read(index)
	if errors.Is(err, commitlog.ErrOutOfRange) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("replication: read log %d: %w", index, err)
	}
	*out = raft.Log{
		Index:      e.Index,
		Term:       e.Term,
		Type:       raft.LogType(e.Type),
		Data:       e.Data,
		Extensions: e.Extensions,
		AppendedAt: fromUnixNano(e.Time),
	}
	return nil
}

// cached returns the kept copy of entry index, or nil. A slot is trusted
// only while the log holds its index: an entry retention deleted, or one a
// snapshot install (FSM.Restore resets the log) left behind, is not found.
func (s *LogStore) cached(index uint64) *raft.Log {
	s.mu.Lock()
	l := s.recent[index%recentEntries]
	s.mu.Unlock()
	if l == nil || l.Index != index || index < s.log.FirstIndex() || index > s.log.LastIndex() {
		return nil
	}
	return l
}

// StoreLog implements raft.LogStore.
func (s *LogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore. The logs are appended as one atomic,
// durable (with sync = "always") batch; they must continue the log without a
// gap. (The snapshot restore rebuilds the log up to the snapshot, so raft
// never needs a gap here.)
//
// On the leader, a batch of command entries is the exception: it is
// appended without the fsync, which a background goroutine runs while raft
// replicates the batch. Raft then counts the leader toward the commit before
// its copy is durable; the FSM and the transport hold back what that
// premature commit would expose (see LogStore). Other entries (no-ops,
// configurations, barriers) are synced here as before, so that raft's own
// view of its committed configuration never runs ahead of the disk.
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	entries := make([]commitlog.Entry, len(logs))
	commands := true
	for i, l := range logs {
		var n uint32
		if l.Type == raft.LogCommand {
			n = record.Count(l.Data)
		} else {
			commands = false
		}
		entries[i] = commitlog.Entry{
			Index:      l.Index,
			Term:       l.Term,
			Type:       uint8(l.Type),
			Time:       toUnixNano(l.AppendedAt),
			Count:      n,
			Extensions: l.Extensions,
			Data:       l.Data,
		}
	}
	deferSync := commands && s.leading()
	var err error
	if deferSync {
		err = s.log.AppendNoSync(entries)
	} else {
		err = s.log.Append(entries)
	}
	if err != nil {
		return fmt.Errorf("replication: store logs [%d, %d]: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	// Raft does not change an entry after storing it, nor reuse its
	// memory, so keeping the pointers is safe.
	s.mu.Lock()
	for _, l := range logs[max(0, len(logs)-recentEntries):] {
		s.recent[l.Index%recentEntries] = l
	}
	s.mu.Unlock()
	// With sync = "none" an append is as durable as it gets at once.
	if deferSync && s.log.SyncedIndex() < logs[len(logs)-1].Index && s.syncing.CompareAndSwap(false, true) {
		go s.syncBehind()
	}
	return nil
}

// syncBehind syncs the log until it has caught up with the appends, then
// ends; StoreLogs starts it again when it appends without a sync. A failed
// sync ends it too: the log is then failed, the next StoreLogs returns the
// error, and the FSM, which waits for durable entries, reports it.
func (s *LogStore) syncBehind() {
	for {
		err := s.log.Sync()
		s.syncing.Store(false)
		if err != nil || s.log.SyncedIndex() >= s.log.LastIndex() || !s.syncing.CompareAndSwap(false, true) {
			return
		}
	}
}

// DeleteRange implements raft.LogStore. Raft deletes a suffix when a
// follower's log conflicts with the leader's: that is honoured exactly. Raft
// also deletes a prefix after each snapshot (log compaction): that is
// ignored, because the log is the data and only retention deletes it.
// A range in the middle of the log is an error.
func (s *LogStore) DeleteRange(lo, hi uint64) error {
	if hi < lo {
		return fmt.Errorf("replication: delete range [%d, %d] is empty", lo, hi)
	}
	// A deleted suffix may be written again with other entries at the
	// same indexes; forget every kept entry before the log changes.
	s.mu.Lock()
	clear(s.recent[:])
	s.mu.Unlock()
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	switch {
	case last < first || lo > last:
		return nil // nothing stored in the range
	case hi >= last:
		if err := s.log.TruncateFrom(lo); err != nil {
			return fmt.Errorf("replication: delete logs from %d: %w", lo, err)
		}
		return nil
	case lo <= first:
		return nil // compaction: retention owns the head of the log
	default:
		return fmt.Errorf("replication: delete range [%d, %d] is inside the log [%d, %d]", lo, hi, first, last)
	}
}

func toUnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
