package replication

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
)

// SnapshotStore is raft's SnapshotStore. A snapshot this node takes is only
// metadata (index, term, configuration): taking it costs O(1) whatever the
// log's size. When raft sends it to a follower, Open streams the entries
// the log still holds up to the snapshot's index, read live from the
// segments. A snapshot received from a leader is kept as the stream it
// came in, for FSM.Restore to rebuild the log from.
//
// Layout: dir/<id>/meta.json (raft.SnapshotMeta) and, for received
// snapshots, dir/<id>/stream. A snapshot being written lives in
// dir/<id>.tmp until it is complete.
type SnapshotStore struct {
	dir    string
	log    *commitlog.Log
	retain int
	logger hclog.Logger
}

var _ raft.SnapshotStore = (*SnapshotStore)(nil)

const (
	metaFile   = "meta.json"
	streamFile = "stream"
	tmpSuffix  = ".tmp"
)

// NewSnapshotStore returns a store in dir over the log l, keeping the
// newest retain snapshots (at least 1). It removes snapshots left half
// written by a crash.
func NewSnapshotStore(dir string, l *commitlog.Log, retain int, logger hclog.Logger) (*SnapshotStore, error) {
	if retain < 1 {
		return nil, fmt.Errorf("replication: snapshot retain must be at least 1, got %d", retain)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("replication: create %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("replication: list %s: %w", dir, err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			logger.Warn("removing an incomplete snapshot", "dir", e.Name())
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return nil, fmt.Errorf("replication: remove %s: %w", e.Name(), err)
			}
		}
	}
	return &SnapshotStore{dir: dir, log: l, retain: retain, logger: logger}, nil
}

// Create implements raft.SnapshotStore.
func (s *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("replication: unsupported snapshot version %d", version)
	}
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	tmp := filepath.Join(s.dir, id+tmpSuffix)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("replication: create snapshot %s: %w", id, err)
	}
	return &snapshotSink{
		store: s,
		dir:   tmp,
		meta: raft.SnapshotMeta{
			Version: version, ID: id, Index: index, Term: term,
			Configuration: configuration, ConfigurationIndex: configurationIndex,
		},
	}, nil
}

// List implements raft.SnapshotStore: newest first.
func (s *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("replication: list %s: %w", s.dir, err)
	}
	var metas []*raft.SnapshotMeta
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), tmpSuffix) {
			continue
		}
		m, err := s.readMeta(e.Name())
		if err != nil {
			s.logger.Warn("skipping an unreadable snapshot", "id", e.Name(), "error", err)
			continue
		}
		metas = append(metas, m)
	}
	sort.Slice(metas, func(i, j int) bool {
		a, b := metas[i], metas[j]
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		return a.ID > b.ID
	})
	return metas, nil
}

func (s *SnapshotStore) readMeta(id string) (*raft.SnapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, id, metaFile))
	if err != nil {
		return nil, err
	}
	var m raft.SnapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", metaFile, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("%s names snapshot %q", metaFile, m.ID)
	}
	return &m, nil
}

// Open implements raft.SnapshotStore. For a snapshot received from a
// leader it returns the stored stream; for one taken here it streams the
// log's entries from its first index up to the snapshot's index.
func (s *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	m, err := s.readMeta(id)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: open snapshot %s: %w", id, err)
	}
	f, err := os.Open(filepath.Join(s.dir, id, streamFile))
	if err == nil {
		fi, err := f.Stat()
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("replication: stat snapshot %s: %w", id, err), f.Close())
		}
		m.Size = fi.Size()
		return m, f, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("replication: open snapshot %s: %w", id, err)
	}
	first := s.log.FirstIndex()
	e, err := s.log.Read(m.Index)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: snapshot %s: the log no longer holds its index %d: %w", id, m.Index, err)
	}
	if e.Term != m.Term {
		return nil, nil, fmt.Errorf("%w: snapshot %s: entry %d has term %d, the snapshot says %d", ErrBadSnapshot, id, m.Index, e.Term, m.Term)
	}
	firstOffset, err := s.log.OffsetOf(first)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	size, err := s.log.EncodedSize(first, m.Index)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: snapshot %s: %w", id, err)
	}
	hdr := streamHeader{lastIndex: m.Index, lastTerm: m.Term, firstIndex: first, firstOffset: firstOffset}
	m.Size = streamHeaderSize + size + 4*int64(m.Index-first+1)
	return m, &liveStream{it: s.log.NewIterator(first), last: m.Index, buf: hdr.encode()}, nil
}

// liveStream reads a snapshot stream from the log.
type liveStream struct {
	it   *commitlog.Iterator
	last uint64
	buf  []byte // bytes ready to be read
	done bool
}

func (r *liveStream) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if r.it.Index() > r.last {
			r.done = true
			continue
		}
		if !r.it.Next() {
			if err := r.it.Err(); err != nil {
				return 0, fmt.Errorf("replication: stream snapshot entry %d: %w", r.it.Index(), err)
			}
			return 0, fmt.Errorf("replication: stream snapshot: the log ends before index %d", r.last)
		}
		raw := r.it.Raw()
		r.buf = binary.LittleEndian.AppendUint32(r.buf[:0], uint32(len(raw)))
		r.buf = append(r.buf, raw...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *liveStream) Close() error { return nil }

// snapshotSink writes a snapshot into its temporary directory.
type snapshotSink struct {
	store  *SnapshotStore
	dir    string
	meta   raft.SnapshotMeta
	stream *os.File
	closed bool
}

func (k *snapshotSink) ID() string { return k.meta.ID }

// Write stores streamed bytes (a snapshot received from a leader). A
// snapshot taken locally writes nothing.
func (k *snapshotSink) Write(p []byte) (int, error) {
	if k.stream == nil {
		f, err := os.OpenFile(filepath.Join(k.dir, streamFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return 0, fmt.Errorf("replication: create snapshot stream: %w", err)
		}
		k.stream = f
	}
	n, err := k.stream.Write(p)
	k.meta.Size += int64(n)
	return n, err
}

// Close makes the snapshot durable and visible, then removes old ones.
func (k *snapshotSink) Close() error {
	if k.closed {
		return nil
	}
	k.closed = true
	if err := k.finish(); err != nil {
		return errors.Join(err, os.RemoveAll(k.dir))
	}
	return k.store.reap()
}

func (k *snapshotSink) finish() error {
	if k.stream != nil {
		err := k.stream.Sync()
		if err = errors.Join(err, k.stream.Close()); err != nil {
			return fmt.Errorf("replication: write snapshot stream: %w", err)
		}
	}
	b, err := json.Marshal(&k.meta)
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(k.dir, metaFile), b); err != nil {
		return err
	}
	final := strings.TrimSuffix(k.dir, tmpSuffix)
	if err := os.Rename(k.dir, final); err != nil {
		return fmt.Errorf("replication: publish snapshot: %w", err)
	}
	return syncDir(k.store.dir)
}

// Cancel abandons the snapshot.
func (k *snapshotSink) Cancel() error {
	if k.closed {
		return nil
	}
	k.closed = true
	var err error
	if k.stream != nil {
		err = k.stream.Close()
	}
	return errors.Join(err, os.RemoveAll(k.dir))
}

// reap removes all but the newest retain snapshots.
func (s *SnapshotStore) reap() error {
	metas, err := s.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range metas[min(len(metas), s.retain):] {
		if err := os.RemoveAll(filepath.Join(s.dir, m.ID)); err != nil {
			errs = append(errs, fmt.Errorf("replication: remove snapshot %s: %w", m.ID, err))
		}
	}
	return errors.Join(errs...)
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("replication: create %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("replication: write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
