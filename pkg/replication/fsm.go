package replication

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/record"
)

// ApplyResult is what FSM.Apply returns for a command: the record offsets
// the entry took. Raft hands it to the ApplyFuture of the node that
// proposed the entry.
type ApplyResult struct {
	// Index is the raft index of the entry.
	Index uint64
	// Offset is the offset of the entry's first record.
	Offset uint64
	// Count is the number of records.
	Count uint32
	// Time is the entry's timestamp (unix nanoseconds), assigned by the
	// leader: every record of the entry carries it.
	Time int64
	// Err is set if the entry could not be found in the log (a bug).
	Err error
}

// FSM is raft's state machine. The records are already in the log (the log
// is raft's LogStore), so applying an entry only moves the commit
// watermark: records below it are committed and visible to consumers on
// this node. Applying is idempotent, so replays after a restart are
// harmless.
type FSM struct {
	log    *commitlog.Log
	logger hclog.Logger

	mu        sync.Mutex
	applied   uint64        // raft index of the last applied entry
	committed uint64        // records with offsets below this are committed
	changed   chan struct{} // closed and replaced whenever committed grows
}

var _ raft.BatchingFSM = (*FSM)(nil)

// NewFSM returns the state machine over l.
func NewFSM(l *commitlog.Log, logger hclog.Logger) *FSM {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &FSM{log: l, logger: logger, changed: make(chan struct{}), committed: l.FirstOffset()}
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: one watermark move per batch.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	var next uint64
	last := uint64(0)
	for i, l := range logs {
		off, err := f.log.OffsetOf(l.Index)
		if err != nil {
			f.logger.Error("applied entry is not in the log", "index", l.Index, "error", err)
			out[i] = ApplyResult{Index: l.Index, Err: fmt.Errorf("replication: apply %d: %w", l.Index, err)}
			continue
		}
		var n uint32
		if l.Type == raft.LogCommand {
			n = record.Count(l.Data)
		}
		out[i] = ApplyResult{Index: l.Index, Offset: off, Count: n, Time: toUnixNano(l.AppendedAt)}
		next = off + uint64(n)
		last = l.Index
	}
	if last == 0 {
		return out
	}
	// The leader's own copy of an entry may still be on its way to disk
	// (LogStore.StoreLogs syncs in the background): raft may call it
	// committed on the followers' copies alone. Nothing is acknowledged
	// or readable here before this node's copy is durable too.
	if err := f.log.SyncTo(last); err != nil {
		f.logger.Error("cannot make applied entries durable; they stay uncommitted here", "index", last, "error", err)
		for i := range out {
			if r, ok := out[i].(ApplyResult); ok && r.Err == nil {
				out[i] = ApplyResult{Index: r.Index, Err: fmt.Errorf("replication: apply %d: %w", r.Index, err)}
			}
		}
		return out
	}
	f.advance(last, next)
	return out
}

// advance moves the watermark forward (never back) and wakes waiters.
func (f *FSM) advance(index, next uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index > f.applied {
		f.applied = index
	}
	if next > f.committed {
		f.committed = next
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

// Committed returns the offset below which records are committed, and a
// channel that is closed when it grows.
func (f *FSM) Committed() (uint64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.committed, f.changed
}

// Applied is the raft index of the last entry applied on this node.
func (f *FSM) Applied() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// WaitCommitted blocks until the record at offset is committed on this node
// (committed > offset) or ctx ends. It returns the watermark.
func (f *FSM) WaitCommitted(ctx context.Context, offset uint64) (uint64, error) {
	for {
		c, ch := f.Committed()
		if c > offset {
			return c, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return c, ctx.Err()
		}
	}
}

// Snapshot implements raft.FSM in O(1): the snapshot is the index it was
// taken at; the SnapshotStore streams the entries when a follower needs
// them.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return manifestSnapshot{}, nil
}

// manifestSnapshot persists nothing of its own: raft records the index and
// term in the snapshot's metadata, which is all the manifest needs.
type manifestSnapshot struct{}

func (manifestSnapshot) Persist(sink raft.SnapshotSink) error { return nil }
func (manifestSnapshot) Release()                             {}

// Restore implements raft.FSM. rc is a snapshot stream (see
// SnapshotStore): a header naming the last index and term and the first
// entry streamed, then the entries. If this node's log already holds the
// last index with the same term, the log is left as it is (a restart, or a
// snapshot this node made itself). Otherwise the log is replaced by the
// streamed entries.
func (f *FSM) Restore(rc io.ReadCloser) (err error) {
	defer func() {
		if cerr := rc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("replication: close snapshot stream: %w", cerr)
		}
	}()
	br := bufio.NewReaderSize(rc, 1<<20)
	h, err := readStreamHeader(br)
	if err != nil {
		return err
	}
	if e, err := f.log.Read(h.lastIndex); err == nil && e.Term == h.lastTerm {
		f.advance(h.lastIndex, e.Offset+uint64(e.Count))
		f.logger.Info("snapshot already in the log", "index", h.lastIndex, "term", h.lastTerm)
		return nil
	}
	if h.lastIndex < h.firstIndex {
		return fmt.Errorf("%w: snapshot of index %d streams no entries (first %d)", ErrBadSnapshot, h.lastIndex, h.firstIndex)
	}
	f.logger.Info("replacing the log from a snapshot", "first", h.firstIndex, "last", h.lastIndex, "term", h.lastTerm)
	if err := f.log.Reset(h.firstIndex, h.firstOffset); err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	var (
		batch []commitlog.Entry
		bytes int
		next  = h.firstIndex
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := f.log.Append(batch)
		batch, bytes = batch[:0], 0
		return err
	}
	for next <= h.lastIndex {
		e, err := readStreamEntry(br)
		if err != nil {
			return fmt.Errorf("replication: restore entry %d: %w", next, err)
		}
		if e.Index != next {
			return fmt.Errorf("%w: streamed entry %d, want %d", ErrBadSnapshot, e.Index, next)
		}
		batch = append(batch, e)
		bytes += len(e.Data) + len(e.Extensions)
		next++
		if bytes >= 4<<20 || len(batch) >= 1024 {
			if err := flush(); err != nil {
				return fmt.Errorf("replication: restore: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	last, err := f.log.Read(h.lastIndex)
	if err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	if last.Term != h.lastTerm {
		return fmt.Errorf("%w: entry %d has term %d, the snapshot says %d", ErrBadSnapshot, h.lastIndex, last.Term, h.lastTerm)
	}
	f.advance(h.lastIndex, last.Offset+uint64(last.Count))
	return nil
}

// ErrBadSnapshot means a snapshot stream failed a check.
var ErrBadSnapshot = errors.New("replication: bad snapshot stream")

// The snapshot stream: a 48-byte header, then entries in the commit log's
// entry framing (commitlog.AppendEntry), each preceded by its uint32 length.
//
//	0  8 magic "LHSNAP01"
//	8  8 last index (raft's snapshot index)
//	16 8 last term
//	24 8 first index streamed
//	32 8 record offset of the first entry streamed
//	40 4 reserved, 0
//	44 4 CRC-32C of bytes 0..43
type streamHeader struct {
	lastIndex, lastTerm, firstIndex, firstOffset uint64
}

const streamHeaderSize = 48

var streamMagic = []byte("LHSNAP01")

func (h streamHeader) encode() []byte {
	b := make([]byte, streamHeaderSize)
	copy(b, streamMagic)
	binary.LittleEndian.PutUint64(b[8:], h.lastIndex)
	binary.LittleEndian.PutUint64(b[16:], h.lastTerm)
	binary.LittleEndian.PutUint64(b[24:], h.firstIndex)
	binary.LittleEndian.PutUint64(b[32:], h.firstOffset)
	binary.LittleEndian.PutUint32(b[44:], crc32.Checksum(b[:44], castagnoli))
	return b
}

func readStreamHeader(r io.Reader) (streamHeader, error) {
	var h streamHeader
	b := make([]byte, streamHeaderSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrBadSnapshot, err)
	}
	if string(b[:8]) != string(streamMagic) {
		return h, fmt.Errorf("%w: bad magic %q", ErrBadSnapshot, b[:8])
	}
	if crc32.Checksum(b[:44], castagnoli) != binary.LittleEndian.Uint32(b[44:]) {
		return h, fmt.Errorf("%w: header checksum mismatch", ErrBadSnapshot)
	}
	h.lastIndex = binary.LittleEndian.Uint64(b[8:])
	h.lastTerm = binary.LittleEndian.Uint64(b[16:])
	h.firstIndex = binary.LittleEndian.Uint64(b[24:])
	h.firstOffset = binary.LittleEndian.Uint64(b[32:])
	return h, nil
}

// maxStreamEntry bounds one streamed entry, like the commit log's format.
const maxStreamEntry = 1<<30 + 64

func readStreamEntry(r io.Reader) (commitlog.Entry, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return commitlog.Entry{}, err
	}
	n := binary.LittleEndian.Uint32(lb[:])
	if n > maxStreamEntry {
		return commitlog.Entry{}, fmt.Errorf("%w: entry of %d bytes", ErrBadSnapshot, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return commitlog.Entry{}, err
	}
	e, used, err := commitlog.DecodeEntry(b)
	if err != nil {
		return commitlog.Entry{}, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if used != int(n) {
		return commitlog.Entry{}, fmt.Errorf("%w: entry frame of %d bytes holds %d", ErrBadSnapshot, n, used)
	}
	return e, nil
}
