package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// createSegment creates the files of a new, empty active segment: the index
// (sized and mapped), then the store through a temporary file, then fsyncs
// the directory. The store's existence defines the segment, so a crash
// leaves either no segment or a whole empty one. On error nothing is left.
func (l *Log) createSegment(hdr fileHeader) (*segment, error) {
	hdr.magic = magicStore
	if hdr.created == 0 {
		hdr.created = l.opts.Now().UnixNano()
	}
	s := newSegmentPaths(l.dir, hdr)
	idxFile, idxMap, idx, err := openIndexForAppend(l.fs, s, l.opts.MaxSegmentEntries)
	if err != nil {
		return nil, errors.Join(err, l.removeQuietly(s.indexPath))
	}
	s.idxFile, s.idxMap, s.idx = idxFile, idxMap, idx
	undo := func(err error) (*segment, error) {
		err = errors.Join(err, s.closeFiles())
		if serr := l.removeQuietly(s.storePath); serr != nil {
			// The new store may outlive this call, and the segment before
			// it may no longer grow: on reopen it would be sealed at this
			// base index, and anything appended to it would be corrupt.
			l.failed = fmt.Errorf("%w: %w", ErrFailed, serr)
			err = errors.Join(err, l.failed)
		}
		return nil, errors.Join(err, l.removeQuietly(s.indexPath))
	}
	if err := writeFileAtomic(l.fs, s.storePath, hdr.encode()); err != nil {
		return undo(err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return undo(fmt.Errorf("commitlog: sync dir %s: %w", l.dir, err))
	}
	store, err := l.fs.OpenFile(s.storePath, os.O_RDWR, 0o600)
	if err != nil {
		return undo(fmt.Errorf("commitlog: open %s: %w", s.storePath, err))
	}
	s.store = store
	s.opened = true
	s.points = nil
	return s, nil
}

// removeQuietly removes a file, treating "does not exist" as success.
func (l *Log) removeQuietly(path string) error {
	if err := l.fs.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("commitlog: remove %s: %w", path, err)
	}
	return nil
}

// openActive opens the last segment for appending: it scans the whole store,
// cuts a torn or corrupt tail back to the last whole batch, and rewrites the
// index where it disagrees with the store.
func (l *Log) openActive(s *segment) error {
	store, err := l.fs.OpenFile(s.storePath, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("commitlog: open %s: %w", s.storePath, err)
	}
	s.store = store
	size, err := store.Size()
	if err != nil {
		return errors.Join(fmt.Errorf("commitlog: stat %s: %w", s.storePath, err), s.closeFiles())
	}
	res, err := scanStore(store, size, s.hdr, l.opts.TimeIndexInterval)
	if err != nil {
		return errors.Join(err, s.closeFiles())
	}
	rep := &l.recovery
	rep.Segment = s.storePath
	rep.Entries = res.count
	s.alloc = size
	if res.stopped {
		// Zeros from where the scan stopped to the end of the file are
		// space that Options.Preallocate reserved and nothing wrote.
		// After the last whole batch, they are a clean end.
		zero, err := allZero(store, res.stopPos, size)
		if err != nil {
			return errors.Join(err, s.closeFiles())
		}
		if zero && res.unfinished == 0 {
			res.stopped = false
		} else if !zero && res.stopPos < size {
			res.unfinished++ // the entry the scan stopped at
		}
	}
	if res.stopped {
		rep.TruncatedAt = res.end
		rep.DroppedBytes = size - res.end
		rep.DroppedEntries = res.unfinished
		rep.Reason = res.stopReason
		// Everything from the last whole batch goes, zeros included: the
		// remains of a write that did not finish must not lie past the
		// end, where a later, shorter write could leave them readable.
		l.logger.Warn("truncating torn or corrupt tail of the log",
			"file", s.storePath, "at", res.end, "dropped_bytes", rep.DroppedBytes,
			"dropped_entries", rep.DroppedEntries, "reason", res.stopReason)
		if err := store.Truncate(res.end); err != nil {
			return errors.Join(fmt.Errorf("commitlog: truncate %s to %d: %w", s.storePath, res.end, err), s.closeFiles())
		}
		s.alloc = res.end
		if err := store.Sync(); err != nil {
			return errors.Join(fmt.Errorf("commitlog: sync %s: %w", s.storePath, err), s.closeFiles())
		}
	}
	capacity := l.opts.MaxSegmentEntries
	if int(res.count) > capacity {
		capacity = int(res.count)
	}
	idxFile, idxMap, idx, err := openIndexForAppend(l.fs, s, capacity)
	if err != nil {
		return errors.Join(err, s.closeFiles())
	}
	s.idxFile, s.idxMap, s.idx = idxFile, idxMap, idx
	if i := firstDifference(idx, res.idx); i >= 0 {
		rep.IndexRebuilt = true
		if _, err := idxFile.WriteAt(res.idx[i:], int64(fileHeaderSize+i)); err != nil {
			return errors.Join(fmt.Errorf("commitlog: rewrite %s: %w", s.indexPath, err), s.closeFiles())
		}
		l.logger.Info("rebuilt index from store", "file", s.indexPath, "entries", res.count)
	}
	s.next = s.hdr.baseIndex + res.count
	s.size = res.end
	s.maxTime = res.maxTime
	s.points = res.points
	s.nextOff = res.nextOff
	s.opened = true
	return nil
}

// allZero says whether bytes [from, to) of f are all zero.
func allZero(f vfs.File, from, to int64) (bool, error) {
	const chunk = 1 << 20
	buf := make([]byte, min(chunk, to-from))
	zeros := make([]byte, len(buf))
	for pos := from; pos < to; {
		n, err := readFull(f, buf, pos, to)
		if err != nil {
			return false, err
		}
		if !bytes.Equal(buf[:n], zeros[:n]) {
			return false, nil
		}
		pos += int64(n)
	}
	return true, nil
}

// firstDifference returns the first byte position where have does not start
// with want, or -1 if it does.
func firstDifference(have, want []byte) int {
	if len(have) < len(want) {
		return 0
	}
	if bytes.Equal(have[:len(want)], want) {
		return -1
	}
	for i := 0; i < len(want); i += indexEntrySize {
		if !bytes.Equal(have[i:i+indexEntrySize], want[i:i+indexEntrySize]) {
			return i
		}
	}
	return -1
}

// acquire makes sure s's files are open and pins them until release. Caller
// holds l.mu (shared or exclusive).
func (l *Log) acquire(s *segment) error {
	l.cacheMu.Lock()
	if s.opened {
		s.refs++
		if s.elem != nil {
			l.lru.MoveToFront(s.elem)
		}
		l.cacheMu.Unlock()
		return nil
	}
	l.cacheMu.Unlock()

	s.openMu.Lock()
	defer s.openMu.Unlock()
	l.cacheMu.Lock()
	if s.opened { // opened by another reader meanwhile
		s.refs++
		if s.elem != nil {
			l.lru.MoveToFront(s.elem)
		}
		l.cacheMu.Unlock()
		return nil
	}
	l.cacheMu.Unlock()
	if err := l.openSealed(s); err != nil {
		return err
	}
	l.cacheMu.Lock()
	s.opened = true
	s.refs++
	s.elem = l.lru.PushFront(s)
	l.nOpen++
	l.evictLocked()
	l.cacheMu.Unlock()
	return nil
}

// evictLocked closes the least recently used idle sealed segments until at
// most MaxOpenSegments remain open. Caller holds cacheMu, so no reader can
// pin or reopen a segment while it closes (closing is a few syscalls).
func (l *Log) evictLocked() {
	for e := l.lru.Back(); e != nil && l.nOpen > l.opts.MaxOpenSegments; {
		prev := e.Prev()
		v := e.Value.(*segment)
		if v.refs == 0 {
			l.lru.Remove(e)
			v.elem = nil
			v.opened = false
			l.nOpen--
			if err := v.closeFiles(); err != nil {
				l.logger.Warn("closing an idle segment failed", "file", v.storePath, "error", err)
			}
		}
		e = prev
	}
}

func (l *Log) release(s *segment) {
	l.cacheMu.Lock()
	s.refs--
	l.cacheMu.Unlock()
}

// dropFromCache forgets s in the LRU list; the caller then closes its files.
// Caller holds l.mu exclusively, so no reader holds a ref.
func (l *Log) dropFromCache(s *segment) {
	l.cacheMu.Lock()
	if s.elem != nil {
		l.lru.Remove(s.elem)
		s.elem = nil
		l.nOpen--
	}
	s.opened = false
	l.cacheMu.Unlock()
}

// openSealed opens a sealed segment's store, checks its index against it
// (rebuilding the index from the store if it does not match) and loads its
// time index (rebuilding it if it is missing or damaged). A corrupt entry
// found while rebuilding is an error naming the file and position.
func (l *Log) openSealed(s *segment) (err error) {
	store, err := l.fs.OpenFile(s.storePath, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("commitlog: open %s: %w", s.storePath, err)
	}
	s.store = store
	defer func() {
		if err != nil {
			err = errors.Join(err, s.closeFiles())
		}
	}()
	size, err := store.Size()
	if err != nil {
		return fmt.Errorf("commitlog: stat %s: %w", s.storePath, err)
	}
	if size != s.size {
		// A sealed store does not change while the log is open. Its size
		// is read by readers holding only Log.mu shared (Stats), so it is
		// never rewritten here.
		return &CorruptError{File: s.storePath, Pos: size,
			Reason: fmt.Sprintf("sealed store is %d bytes, it was %d when sealed or opened", size, s.size)}
	}
	var scanned *scanResult
	scan := func() (*scanResult, error) {
		if scanned != nil {
			return scanned, nil
		}
		res, err := scanStore(store, size, s.hdr, l.opts.TimeIndexInterval)
		if err != nil {
			return nil, err
		}
		if res.stopped || res.end != size || res.count != s.count() {
			pos, reason := res.stopPos, res.stopReason
			if !res.stopped {
				pos, reason = res.end, fmt.Sprintf("store holds %d entries, the next segment starts at index %d", res.count, s.next)
			}
			return nil, &CorruptError{File: s.storePath, Pos: pos, Reason: "sealed segment: " + reason}
		}
		if res.count > 0 && res.maxTime != s.maxTime {
			l.logger.Warn("sealed segment's newest time disagrees with the next segment's header", "file", s.storePath)
		}
		scanned = &res
		return scanned, nil
	}

	if err := l.mapSealedIndex(s); err != nil {
		l.logger.Warn("rebuilding index of a sealed segment", "file", s.indexPath, "reason", err)
		res, err := scan()
		if err != nil {
			return err
		}
		ih := s.hdr
		ih.magic = magicIndex
		b := append(ih.encode(), res.idx...)
		if err := writeFileAtomic(l.fs, s.indexPath, b); err != nil {
			l.logger.Warn("could not write the rebuilt index; keeping it in memory", "file", s.indexPath, "error", err)
		} else if err := l.fs.SyncDir(l.dir); err != nil {
			l.logger.Warn("could not sync the directory after rebuilding an index", "dir", l.dir, "error", err)
		}
		s.idxMap = nil
		s.idx = res.idx
	}

	pts, err := l.loadTimeIndex(s)
	if err != nil {
		l.logger.Warn("rebuilding time index of a sealed segment", "file", s.timePath, "reason", err)
		res, err := scan()
		if err != nil {
			return err
		}
		pts = res.points
		th := s.hdr
		th.magic = magicTime
		if err := writeFileAtomic(l.fs, s.timePath, encodeTimeIndex(th, pts)); err != nil {
			l.logger.Warn("could not write the rebuilt time index; keeping it in memory", "file", s.timePath, "error", err)
		}
	}
	s.points = pts
	return nil
}

// mapSealedIndex maps a sealed segment's index and checks it against the
// store at both ends: the first entry starts after the header, the last
// entry has the last index and ends at the end of the store, and the record
// offsets run from the segment's base offset to the next segment's.
func (l *Log) mapSealedIndex(s *segment) error {
	f, err := l.fs.OpenFile(s.indexPath, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer func() {
		// The mapping stays valid after the file is closed.
		if cerr := f.Close(); cerr != nil {
			l.logger.Warn("closing a sealed index failed", "file", s.indexPath, "error", cerr)
		}
	}()
	n := s.count()
	want := int64(fileHeaderSize) + int64(n)*indexEntrySize
	size, err := f.Size()
	if err != nil {
		return err
	}
	if size < want {
		return fmt.Errorf("index of %d bytes is too short for %d entries", size, n)
	}
	m, err := f.Map(int(want))
	if err != nil {
		return err
	}
	ih := s.hdr
	ih.magic = magicIndex
	if h, err := decodeFileHeader(m.Bytes(), magicIndex); err != nil || h != ih {
		return errors.Join(fmt.Errorf("index header does not match the store: %w", err), m.Unmap())
	}
	s.idxMap, s.idx = m, m.Bytes()[fileHeaderSize:]
	bad := func(reason string) error {
		uerr := s.idxMap.Unmap()
		s.idxMap, s.idx = nil, nil
		return errors.Join(errors.New(reason), uerr)
	}
	if n == 0 {
		if s.size != fileHeaderSize {
			return bad("empty sealed segment has data")
		}
		return nil
	}
	if pos, off := getIndexEntry(s.idx); pos != fileHeaderSize || off != s.hdr.baseOffset {
		return bad(fmt.Sprintf("first index entry is (%d, %d)", pos, off))
	}
	_, e, err := s.readEntry(s.next-1, nil)
	if err != nil {
		return bad(err.Error())
	}
	if e.Offset+uint64(e.Count) != s.nextOff {
		return bad(fmt.Sprintf("last entry ends at offset %d, the next segment starts at %d", e.Offset+uint64(e.Count), s.nextOff))
	}
	return nil
}

// loadTimeIndex reads a sealed segment's time index file.
func (l *Log) loadTimeIndex(s *segment) ([]timePoint, error) {
	f, err := l.fs.OpenFile(s.timePath, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Size()
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	b := make([]byte, size)
	_, rerr := readFull(f, b, 0, size)
	if err := errors.Join(rerr, f.Close()); err != nil {
		return nil, err
	}
	h, pts, err := decodeTimeIndex(b)
	if err != nil {
		return nil, err
	}
	th := s.hdr
	th.magic = magicTime
	if h != th {
		return nil, fmt.Errorf("time index header does not match the store")
	}
	if len(pts) == 0 && s.count() > 0 || len(pts) > 0 && pts[0].index != s.hdr.baseIndex {
		return nil, fmt.Errorf("time index does not start at the segment's first entry")
	}
	for i := range pts {
		if pts[i].index < s.hdr.baseIndex || pts[i].index >= s.next || i > 0 && (pts[i].index <= pts[i-1].index || pts[i].time < pts[i-1].time) {
			return nil, fmt.Errorf("time index point %d is out of order or out of the segment", i)
		}
	}
	return pts, nil
}
