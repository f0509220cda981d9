package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// StableStore is raft's StableStore: a handful of keys (current term, vote)
// kept in one small file that is rewritten whole on every Set, through a
// temporary file, fsync, rename and a directory fsync. Sets are rare (term
// changes and votes), so simplicity wins over a database.
//
// File format: magic "LHSTABLE", uint32 LE entry count, then per entry
// uint32 LE key length, key, uint32 LE value length, value, and last a
// CRC-32C (Castagnoli) of everything before it.
type StableStore struct {
	fs   vfs.FS
	path string

	mu sync.Mutex
	kv map[string][]byte
}

var _ raft.StableStore = (*StableStore)(nil)

var (
	stableMagic = []byte("LHSTABLE")
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
)

// ErrStableCorrupt means the stable store's file failed its checks.
var ErrStableCorrupt = errors.New("replication: stable store file is corrupt")

// OpenStableStore loads the store at path, or starts an empty one if the
// file does not exist. A file that exists but fails its checksum is an
// error: raft's term and vote must never silently reset.
func OpenStableStore(fs vfs.FS, path string) (*StableStore, error) {
	if fs == nil {
		fs = vfs.OS{}
	}
	s := &StableStore{fs: fs, path: path, kv: map[string][]byte{}}
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := fs.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("replication: create %s: %w", filepath.Dir(path), err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replication: open %s: %w", path, err)
	}
	size, err := f.Size()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("replication: stat %s: %w", path, err), f.Close())
	}
	b := make([]byte, size)
	n, rerr := f.ReadAt(b, 0)
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("replication: close %s: %w", path, err)
	}
	if int64(n) != size {
		return nil, fmt.Errorf("replication: read %s: %w", path, rerr)
	}
	if err := s.decode(b); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrStableCorrupt, path, err)
	}
	return s, nil
}

func (s *StableStore) decode(b []byte) error {
	if len(b) < len(stableMagic)+8 || string(b[:len(stableMagic)]) != string(stableMagic) {
		return errors.New("bad magic or too short")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return errors.New("checksum mismatch")
	}
	p := body[len(stableMagic):]
	n := binary.LittleEndian.Uint32(p)
	p = p[4:]
	next := func() ([]byte, error) {
		if len(p) < 4 {
			return nil, errors.New("truncated length")
		}
		l := binary.LittleEndian.Uint32(p)
		p = p[4:]
		if uint64(l) > uint64(len(p)) {
			return nil, errors.New("length past end")
		}
		v := append([]byte(nil), p[:l]...)
		p = p[l:]
		return v, nil
	}
	for range n {
		k, err := next()
		if err != nil {
			return err
		}
		v, err := next()
		if err != nil {
			return err
		}
		s.kv[string(k)] = v
	}
	if len(p) != 0 {
		return errors.New("trailing bytes")
	}
	return nil
}

func (s *StableStore) encode(kv map[string][]byte) []byte {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := append([]byte(nil), stableMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[k])))
		b = append(b, kv[k]...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// Set implements raft.StableStore; the value is durable when it returns.
func (s *StableStore) Set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string][]byte, len(s.kv)+1)
	for k, v := range s.kv {
		next[k] = v
	}
	next[string(key)] = append([]byte(nil), val...)
	if err := s.write(s.encode(next)); err != nil {
		return err
	}
	s.kv = next
	return nil
}

func (s *StableStore) write(b []byte) error {
	tmp := s.path + ".tmp"
	f, err := s.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("replication: create %s: %w", tmp, err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return errors.Join(fmt.Errorf("replication: write %s: %w", tmp, err), f.Close(), s.fs.Remove(tmp))
	}
	if err := f.Sync(); err != nil {
		return errors.Join(fmt.Errorf("replication: sync %s: %w", tmp, err), f.Close(), s.fs.Remove(tmp))
	}
	if err := f.Close(); err != nil {
		return errors.Join(fmt.Errorf("replication: close %s: %w", tmp, err), s.fs.Remove(tmp))
	}
	if err := s.fs.Rename(tmp, s.path); err != nil {
		return errors.Join(fmt.Errorf("replication: rename %s: %w", tmp, err), s.fs.Remove(tmp))
	}
	if err := s.fs.SyncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("replication: sync dir of %s: %w", s.path, err)
	}
	return nil
}

// Get implements raft.StableStore: an empty value for a missing key.
func (s *StableStore) Get(key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.kv[string(key)]...), nil
}

// SetUint64 implements raft.StableStore.
func (s *StableStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.LittleEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore: 0 for a missing key.
func (s *StableStore) GetUint64(key []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[string(key)]
	if !ok {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("replication: stable key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.LittleEndian.Uint64(v), nil
}
