package commitlog

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// TruncateFrom deletes every entry with index >= i (a suffix), across
// segments. Later segments are deleted whole (newest first, so a crash leaves
// a prefix), then the segment holding i is cut and becomes the active one.
// If i <= FirstIndex the log becomes empty and its next entry is FirstIndex;
// if i > LastIndex nothing happens.
func (l *Log) TruncateFrom(i uint64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.segments[len(l.segments)-1]
	if i >= a.next {
		return nil
	}
	l.haltZeroing()
	if first := l.segments[0].hdr.baseIndex; i < first {
		i = first
	}
	k := sort.Search(len(l.segments), func(k int) bool { return l.segments[k].hdr.baseIndex > i }) - 1
	if k < len(l.segments)-1 {
		for j := len(l.segments) - 1; j > k; j-- {
			if err := l.removeSegment(l.segments[j]); err != nil {
				l.segments = l.segments[:j+1]
				l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
				return l.failed
			}
			l.segments = l.segments[:j]
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			l.failed = fmt.Errorf("%w: sync dir %s: %w", ErrFailed, l.dir, err)
			return l.failed
		}
		if err := l.reactivate(l.segments[k]); err != nil {
			l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
			return l.failed
		}
	}
	s := l.segments[k]
	pos, _ := s.entryBounds(i)
	off := s.offsetAt(i)
	if i > s.hdr.baseIndex {
		// The cut may split a batch: the new last entry must end one, or
		// recovery would drop it as part of an unfinished batch.
		if err := s.markBatchEnd(i - 1); err != nil {
			l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
			return l.failed
		}
	}
	if err := s.store.Truncate(pos); err != nil {
		l.failed = fmt.Errorf("%w: truncate %s to %d: %w", ErrFailed, s.storePath, pos, err)
		return l.failed
	}
	if err := s.store.Sync(); err != nil {
		l.failed = fmt.Errorf("%w: sync %s: %w", ErrFailed, s.storePath, err)
		return l.failed
	}
	s.next, s.size, s.alloc, s.nextOff = i, pos, pos, off
	s.writtenBack = min(s.writtenBack, pos) // the bytes past pos are new ones
	// The sync above covered what is left of the active store, and sealed
	// segments were synced when they were sealed.
	l.synced.Store(i - 1)
	p := sort.Search(len(s.points), func(p int) bool { return s.points[p].index >= i })
	s.points = s.points[:p]
	maxTime, err := s.runningMax()
	if err != nil {
		l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		return l.failed
	}
	s.maxTime = maxTime
	return nil
}

// markBatchEnd sets the batch-end flag on entry i, rewriting its header and
// checksum in place, if it is not set already.
func (s *segment) markBatchEnd(i uint64) error {
	buf, e, err := s.readEntry(i, nil)
	if err != nil {
		return err
	}
	if buf[12]&flagBatchEnd != 0 {
		return nil
	}
	putEntry(buf, &e, buf[12]|flagBatchEnd)
	pos, _ := s.entryBounds(i)
	if _, err := s.store.WriteAt(buf[:entryHeaderSize], pos); err != nil {
		return fmt.Errorf("commitlog: rewrite entry header in %s at %d: %w", s.storePath, pos, err)
	}
	return nil
}

// runningMax recomputes the running maximum time after the segment's last
// entry from its last time point, reading at most TimeIndexInterval bytes.
func (s *segment) runningMax() (int64, error) {
	if len(s.points) == 0 {
		return s.hdr.startTime, nil
	}
	pt := s.points[len(s.points)-1]
	m := pt.time
	var buf []byte
	for i := pt.index + 1; i < s.next; i++ {
		var (
			e   Entry
			err error
		)
		buf, e, err = s.readEntry(i, buf)
		if err != nil {
			return 0, err
		}
		m = max(m, e.Time)
	}
	return m, nil
}

// reactivate turns a sealed segment back into the active one after the
// segments behind it were deleted. Caller holds l.mu exclusively.
func (l *Log) reactivate(s *segment) error {
	if !s.opened {
		if err := l.openSealed(s); err != nil {
			return err
		}
	}
	l.dropFromCache(s)
	if s.idxMap != nil {
		if err := s.idxMap.Unmap(); err != nil {
			return fmt.Errorf("commitlog: unmap %s: %w", s.indexPath, err)
		}
		s.idxMap, s.idx = nil, nil
	}
	capacity := max(l.opts.MaxSegmentEntries, int(s.count()))
	// A sealed index rebuilt in memory (s.idx on the heap) is written out
	// again by openIndexForAppend's caller below.
	heapIdx := s.idx
	f, m, idx, err := openIndexForAppend(l.fs, s, capacity)
	if err != nil {
		return err
	}
	if heapIdx != nil {
		if _, err := f.WriteAt(heapIdx, fileHeaderSize); err != nil {
			return errors.Join(fmt.Errorf("commitlog: write %s: %w", s.indexPath, err), m.Unmap(), f.Close())
		}
	}
	s.idxFile, s.idxMap, s.idx = f, m, idx
	s.alloc = s.size // a sealed store is exactly its entries
	s.opened = true
	return nil
}

// removeSegment closes a segment and deletes its files, the store first:
// the store defines the segment, so a crash part-way leaves orphans that
// Open removes, never a segment with missing parts. Caller holds l.mu
// exclusively; the caller fsyncs the directory.
func (l *Log) removeSegment(s *segment) error {
	l.dropFromCache(s)
	err := s.closeFiles()
	for _, p := range []string{s.storePath, s.indexPath, s.timePath} {
		err = errors.Join(err, l.removeQuietly(p))
	}
	return err
}

// DeleteBefore deletes whole sealed segments all of whose entries have an
// index below i, oldest first. It never deletes the active segment, so the
// log may keep entries below i. It returns how many segments it deleted.
func (l *Log) DeleteBefore(i uint64) (int, error) {
	return l.deleteHead(func(s *segment, _ int64) bool { return s.next <= i })
}

// RetentionResult says what ApplyRetention deleted.
type RetentionResult struct {
	Segments int
	Bytes    int64
}

// ApplyRetention deletes the oldest sealed segments while the log is larger
// than Options.RetentionBytes, and those whose newest entry is older than
// Options.RetentionAge. The active segment is never deleted. Call it
// periodically; the log runs no goroutines of its own.
func (l *Log) ApplyRetention() (RetentionResult, error) {
	var res RetentionResult
	cutoff := int64(math.MinInt64)
	if l.opts.RetentionAge > 0 {
		cutoff = l.opts.Now().Add(-l.opts.RetentionAge).UnixNano()
	}
	n, err := l.deleteHead(func(s *segment, total int64) bool {
		del := (l.opts.RetentionBytes > 0 && total > l.opts.RetentionBytes) || s.maxTime < cutoff
		if del {
			res.Bytes += s.size
		}
		return del
	})
	res.Segments = n
	return res, err
}

// deleteHead deletes sealed segments from the head while del says so; del
// gets the segment and the log's total size before deleting it.
func (l *Log) deleteHead(del func(s *segment, total int64) bool) (int, error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var total int64
	for _, s := range l.segments {
		total += s.size
	}
	n := 0
	var err error
	for n < len(l.segments)-1 && del(l.segments[n], total) {
		if err = l.removeSegment(l.segments[n]); err != nil {
			// Its files are closed and some may be gone, so it can no
			// longer be read; a reopen sorts out what is left.
			l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
			err = l.failed
			break
		}
		total -= l.segments[n].size
		n++
	}
	l.segments = l.segments[n:]
	if n > 0 {
		if serr := l.fs.SyncDir(l.dir); serr != nil {
			err = errors.Join(err, fmt.Errorf("commitlog: sync dir %s: %w", l.dir, serr))
		}
	}
	return n, err
}

// Reset deletes every segment and starts an empty log whose next entry has
// index nextIndex and record offset nextOffset, for a log that is replaced
// wholesale (a raft snapshot install). Segments are deleted newest first;
// a crash part-way leaves a prefix of the old log or an empty log.
func (l *Log) Reset(nextIndex, nextOffset uint64) error {
	if nextIndex == 0 {
		return fmt.Errorf("%w: index 0", ErrInvalidBatch)
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.haltZeroing()
	for j := len(l.segments) - 1; j >= 0; j-- {
		if err := l.removeSegment(l.segments[j]); err != nil {
			l.segments = l.segments[:j+1]
			l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
			return l.failed
		}
		l.segments = l.segments[:j]
	}
	s, err := l.createSegment(fileHeader{baseIndex: nextIndex, baseOffset: nextOffset, startTime: math.MinInt64})
	if err != nil {
		l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		return l.failed
	}
	l.segments = []*segment{s}
	l.synced.Store(nextIndex - 1)
	return nil
}
