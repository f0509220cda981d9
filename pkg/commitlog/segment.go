package commitlog

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/loghouse/loghouse/pkg/vfs"
)

const (
	storeExt = ".store"
	indexExt = ".index"
	timeExt  = ".timeindex"
	tmpExt   = ".tmp"
)

func segmentName(base uint64) string { return fmt.Sprintf("%020d", base) }

// segment is one store file with its index and time index. Its header fields
// never change. Which lock guards the rest is noted per field.
type segment struct {
	hdr       fileHeader
	storePath string
	indexPath string
	timePath  string

	// next is the index after the segment's last entry. For the active
	// segment it changes under Log.mu (write); for sealed ones it is fixed.
	next uint64
	// nextOff is the record offset after the last entry; same rule as next.
	nextOff uint64
	// size is the store's logical size; same rule as next.
	size int64
	// alloc is, for the active segment, the store file's length as the
	// appender last set it: at least size, more when preallocated (the
	// bytes past size are zeros). Only the appender (under appendMu)
	// uses it.
	alloc int64
	// writtenBack is, for the active segment, where the appender last
	// started the store's writeback up to (Options.WritebackBytes). Only
	// the appender (under appendMu) uses it.
	writtenBack int64
	// maxTime is the running maximum entry time after the last entry; same
	// rule as next.
	maxTime int64

	// openMu serializes opening and closing the segment's files.
	openMu sync.Mutex
	// The open state. Set under openMu; read by readers that hold a ref.
	opened  bool
	store   vfs.File
	idxFile vfs.File    // only while active: the index, open for writing
	idxMap  vfs.Mapping // nil when idx is on the heap
	idx     []byte      // index entries (the mapping after its header)
	points  []timePoint // sparse time index; active: appended under Log.mu

	// Guarded by Log.cacheMu.
	refs int
	elem *list.Element // position in Log.lru while an opened sealed segment
}

func newSegmentPaths(dir string, hdr fileHeader) *segment {
	name := segmentName(hdr.baseIndex)
	return &segment{
		hdr:       hdr,
		storePath: filepath.Join(dir, name+storeExt),
		indexPath: filepath.Join(dir, name+indexExt),
		timePath:  filepath.Join(dir, name+timeExt),
		next:      hdr.baseIndex,
		nextOff:   hdr.baseOffset,
		size:      fileHeaderSize,
		alloc:     fileHeaderSize,
		maxTime:   hdr.startTime,
	}
}

func (s *segment) count() uint64 { return s.next - s.hdr.baseIndex }

// entryBounds returns the store byte range of entry i, which the caller has
// checked lies in [base, next).
func (s *segment) entryBounds(i uint64) (pos, end int64) {
	rel := i - s.hdr.baseIndex
	p, _ := getIndexEntry(s.idx[rel*indexEntrySize:])
	if i+1 < s.next {
		e, _ := getIndexEntry(s.idx[(rel+1)*indexEntrySize:])
		return int64(p), int64(e)
	}
	return int64(p), s.size
}

// offsetAt is the base offset of entry i, from the index.
func (s *segment) offsetAt(i uint64) uint64 {
	_, off := getIndexEntry(s.idx[(i-s.hdr.baseIndex)*indexEntrySize:])
	return off
}

// readEntry reads and verifies entry i into buf (grown as needed) and returns
// the encoded bytes and the decoded entry, which aliases them.
func (s *segment) readEntry(i uint64, buf []byte) ([]byte, Entry, error) {
	pos, end := s.entryBounds(i)
	if pos < fileHeaderSize || end <= pos || end-pos < entryHeaderSize || end > s.size {
		return buf, Entry{}, &CorruptError{File: s.indexPath, Pos: fileHeaderSize + int64(i-s.hdr.baseIndex)*indexEntrySize,
			Reason: fmt.Sprintf("index entry for %d points at bytes [%d, %d) of a %d-byte store", i, pos, end, s.size)}
	}
	n := int(end - pos)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := readFull(s.store, buf, pos, end); err != nil {
		return buf, Entry{}, err
	}
	e, used, err := DecodeEntry(buf)
	if err != nil {
		return buf, Entry{}, &CorruptError{File: s.storePath, Pos: pos, Reason: err.Error()}
	}
	if used != n || e.Index != i {
		return buf, Entry{}, &CorruptError{File: s.storePath, Pos: pos,
			Reason: fmt.Sprintf("entry at index slot %d is index %d of %d bytes, index says %d bytes", i, e.Index, used, n)}
	}
	return buf, e, nil
}

// searchOffset returns the entry of s holding record offset off, which the
// caller has checked lies in the segment's offset range: the last entry
// whose base offset is <= off.
func (s *segment) searchOffset(off uint64) uint64 {
	n := int(s.count())
	k := sort.Search(n, func(j int) bool { return s.offsetAt(s.hdr.baseIndex+uint64(j)) > off })
	if k == 0 {
		return s.hdr.baseIndex
	}
	return s.hdr.baseIndex + uint64(k-1)
}

// closeFiles releases the segment's files and mapping. Caller holds openMu
// (or is the only user).
func (s *segment) closeFiles() error {
	var errs []error
	if s.idxMap != nil {
		if err := s.idxMap.Unmap(); err != nil {
			errs = append(errs, fmt.Errorf("commitlog: unmap %s: %w", s.indexPath, err))
		}
	}
	if s.idxFile != nil {
		if err := s.idxFile.Close(); err != nil {
			errs = append(errs, fmt.Errorf("commitlog: close %s: %w", s.indexPath, err))
		}
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("commitlog: close %s: %w", s.storePath, err))
		}
	}
	s.idxMap, s.idxFile, s.store, s.idx, s.points = nil, nil, nil, nil, nil
	s.opened = false
	return errors.Join(errs...)
}

// writeFileAtomic writes b to path through a temporary file: write, fsync,
// rename, (caller) fsync the directory.
func writeFileAtomic(fs vfs.FS, path string, b []byte) error {
	tmp := path + tmpExt
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("commitlog: create %s: %w", tmp, err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return errors.Join(fmt.Errorf("commitlog: write %s: %w", tmp, err), f.Close(), fs.Remove(tmp))
	}
	if err := f.Sync(); err != nil {
		return errors.Join(fmt.Errorf("commitlog: sync %s: %w", tmp, err), f.Close(), fs.Remove(tmp))
	}
	if err := f.Close(); err != nil {
		return errors.Join(fmt.Errorf("commitlog: close %s: %w", tmp, err), fs.Remove(tmp))
	}
	if err := fs.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("commitlog: rename %s: %w", tmp, err), fs.Remove(tmp))
	}
	return nil
}

// openIndexForAppend opens (or creates) the index file of an active segment
// with room for capacity entries, writes its header if it is missing or
// wrong, and maps it. It returns the file, the mapping and the entry region.
func openIndexForAppend(fs vfs.FS, s *segment, capacity int) (vfs.File, vfs.Mapping, []byte, error) {
	f, err := fs.OpenFile(s.indexPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("commitlog: open %s: %w", s.indexPath, err)
	}
	fail := func(err error) (vfs.File, vfs.Mapping, []byte, error) {
		return nil, nil, nil, errors.Join(err, f.Close())
	}
	want := int64(fileHeaderSize + capacity*indexEntrySize)
	size, err := f.Size()
	if err != nil {
		return fail(fmt.Errorf("commitlog: stat %s: %w", s.indexPath, err))
	}
	if size != want {
		// Sparse: the blocks are allocated as entries are written.
		if err := f.Truncate(want); err != nil {
			return fail(fmt.Errorf("commitlog: size %s to %d: %w", s.indexPath, want, err))
		}
	}
	hb := make([]byte, fileHeaderSize)
	if _, err := readFull(f, hb, 0, want); err != nil {
		return fail(err)
	}
	ih := s.hdr
	ih.magic = magicIndex
	if h, err := decodeFileHeader(hb, magicIndex); err != nil || h != ih {
		if _, err := f.WriteAt(ih.encode(), 0); err != nil {
			return fail(fmt.Errorf("commitlog: write header of %s: %w", s.indexPath, err))
		}
	}
	m, err := f.Map(int(want))
	if err != nil {
		return fail(fmt.Errorf("commitlog: map %s: %w", s.indexPath, err))
	}
	return f, m, m.Bytes()[fileHeaderSize:], nil
}
