package replication

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/record"
)

// LogStore is raft's LogStore over the commit log: each raft entry is one
// commit log entry, so a record is written once per replica. Command entries
// carrying a record batch take as many record offsets as they hold records;
// other entries take none.
type LogStore struct {
	log *commitlog.Log
}

var _ raft.LogStore = (*LogStore)(nil)

// NewLogStore returns a LogStore over l. It does not take ownership: the
// caller closes l after raft has shut down.
func NewLogStore(l *commitlog.Log) *LogStore { return &LogStore{log: l} }

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
func (s *LogStore) GetLog(index uint64, out *raft.Log) error {
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

// StoreLog implements raft.LogStore.
func (s *LogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore. The logs are appended as one atomic,
// durable (with sync = "always") batch; they must continue the log without a
// gap. (The snapshot restore rebuilds the log up to the snapshot, so raft
// never needs a gap here.)
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	entries := make([]commitlog.Entry, len(logs))
	for i, l := range logs {
		var n uint32
		if l.Type == raft.LogCommand {
			n = record.Count(l.Data)
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
	if err := s.log.Append(entries); err != nil {
		return fmt.Errorf("replication: store logs [%d, %d]: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	return nil
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
