package commitlog

import (
	"errors"
	"fmt"
	"math"
	"time"

	metrics "github.com/hashicorp/go-metrics"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// fsyncMetric times the fsync of each durable append
// (loghouse_commitlog_fsync_ms, see pkg/telemetry).
var fsyncMetric = []string{"loghouse", "commitlog", "fsync_ms"}

// Append adds a batch of entries at the end of the log, atomically: readers
// see all of them or none, and after a crash recovery keeps all of them or
// none. entries[0].Index must be LastIndex()+1 and the indexes dense. Append
// assigns each entry's Offset (writing it into the slice). With SyncAlways
// the batch is durable when Append returns nil.
//
// If Append fails, nothing of the batch is visible and the log is unchanged;
// the next Append may succeed (for example once disk space is freed). A
// failed fsync is different: the on-disk state is then unknown, and the log
// returns ErrFailed for every later write until it is reopened.
func (l *Log) Append(entries []Entry) error {
	return l.append(entries, l.opts.Sync == SyncAlways)
}

// AppendNoSync is Append without the fsync, whatever Options.Sync says: the
// batch is visible to readers at once and durable only once a Sync or
// SyncTo covers it (SyncedIndex tells). A crash before that may lose it,
// and the batches after it, but never leaves part of a batch, a gap, or a
// batch without the ones before it: recovery keeps the longest run of
// whole, checksummed batches. The raft leader uses it to send entries to
// the followers while its own fsync runs (see pkg/replication/DESIGN.md).
func (l *Log) AppendNoSync(entries []Entry) error {
	return l.append(entries, false)
}

// SyncedIndex is the index of the last entry that is as durable as
// Options.Sync promises: with SyncAlways, the last one an fsync covered;
// with SyncNone, the last one appended. Entries after it were added by
// AppendNoSync and wait for a Sync.
func (l *Log) SyncedIndex() uint64 { return l.synced.Load() }

// SyncTo returns once every entry the log holds up to index i is durable,
// syncing the active store if one of them is not yet. It returns at once
// when SyncedIndex is already i or more.
func (l *Log) SyncTo(i uint64) error {
	if l.synced.Load() >= i {
		return nil
	}
	return l.Sync()
}

// Sync makes every entry appended so far durable. Concurrent calls share
// one fsync where they can: a call that finds its entries already covered
// by another's returns without one. Appends wait while it runs, as they
// would for their own fsync. A failed fsync fails the log (ErrFailed), as
// in Append; the entries it was to cover stay visible, since readers may
// already have seen them, but SyncedIndex never covers them.
func (l *Log) Sync() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	a := l.segments[len(l.segments)-1]
	last := a.next - 1
	if l.synced.Load() >= last {
		return nil
	}
	start := time.Now()
	if err := a.store.Sync(); err != nil {
		l.failed = fmt.Errorf("%w: sync %s: %w", ErrFailed, a.storePath, err)
		return l.failed
	}
	metrics.MeasureSince(fsyncMetric, start)
	l.synced.Store(last)
	return nil
}

// append is Append, with the fsync only if sync is set.
func (l *Log) append(entries []Entry, sync bool) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.writable(); err != nil {
		return err
	}
	a := l.segments[len(l.segments)-1]
	if err := l.checkBatch(a, entries); err != nil {
		return err
	}
	var batchBytes int64
	for i := range entries {
		batchBytes += entryHeaderSize + int64(len(entries[i].Extensions)) + int64(len(entries[i].Data))
	}
	if l.needsRoll(a, batchBytes, len(entries)) {
		if err := l.roll(a); err != nil {
			return err
		}
		a = l.segments[len(l.segments)-1]
	}

	// Encode the batch, its index entries and its time points.
	if int64(cap(l.encBuf)) < batchBytes {
		l.encBuf = make([]byte, batchBytes)
	}
	buf := l.encBuf[:batchBytes]
	l.idxBuf = l.idxBuf[:0]
	var (
		pos       = a.size
		off       = a.nextOff
		runMax    = a.maxTime
		lastPoint = int64(-1 << 62)
		points    []timePoint
		p         int64
	)
	if n := len(a.points); n > 0 {
		lastPoint, _ = a.entryBounds(a.points[n-1].index)
	}
	for i := range entries {
		e := &entries[i]
		e.Offset = off
		off += uint64(e.Count)
		n := entryHeaderSize + int64(len(e.Extensions)) + int64(len(e.Data))
		var flags uint8
		if i == len(entries)-1 {
			flags = flagBatchEnd
		}
		putEntry(buf[p:p+n], e, flags)
		var ie [indexEntrySize]byte
		putIndexEntry(ie[:], uint64(pos+p), e.Offset)
		l.idxBuf = append(l.idxBuf, ie[:]...)
		if e.Time > runMax {
			runMax = e.Time
		}
		if (a.count() == 0 && i == 0) || pos+p-lastPoint >= int64(l.opts.TimeIndexInterval) {
			points = append(points, timePoint{time: runMax, index: e.Index})
			lastPoint = pos + p
		}
		p += n
	}

	l.allocate(a, pos+batchBytes)
	if l.zero != nil {
		l.zero.claim(a, pos+batchBytes, a.alloc)
	}
	if _, err := a.store.WriteAt(buf, pos); err != nil {
		return l.undoAppend(a, fmt.Errorf("commitlog: write %s at %d: %w", a.storePath, pos, err))
	}
	a.alloc = max(a.alloc, pos+batchBytes)
	idxPos := int64(fileHeaderSize) + int64(a.count())*indexEntrySize
	if _, err := a.idxFile.WriteAt(l.idxBuf, idxPos); err != nil {
		return l.undoAppend(a, fmt.Errorf("commitlog: write %s at %d: %w", a.indexPath, idxPos, err))
	}
	if sync {
		start := time.Now()
		if err := a.store.Sync(); err != nil {
			l.failed = fmt.Errorf("%w: sync %s: %w", ErrFailed, a.storePath, err)
			return errors.Join(l.failed, l.truncateStore(a))
		}
		metrics.MeasureSince(fsyncMetric, start)
	}

	l.mu.Lock()
	a.next += uint64(len(entries))
	a.size += batchBytes
	a.nextOff = off
	a.maxTime = runMax
	a.points = append(a.points, points...)
	l.mu.Unlock()
	if sync || l.opts.Sync == SyncNone {
		l.synced.Store(a.next - 1)
	}
	if !sync {
		l.writeBack(a)
	}
	return nil
}

// writeBack starts the writeback of the active store's bytes written since
// it last did, once they reach Options.WritebackBytes, under SyncNone (see
// there). It only saves work later: a failure turns it off for the log.
func (l *Log) writeBack(a *segment) {
	if l.opts.Sync != SyncNone || l.opts.WritebackBytes <= 0 || l.noWriteback || a.size-a.writtenBack < l.opts.WritebackBytes {
		return
	}
	w, ok := a.store.(vfs.WritebackStarter)
	if !ok {
		l.noWriteback = true
		return
	}
	if err := w.StartWriteback(a.writtenBack, a.size-a.writtenBack); err != nil {
		l.noWriteback = true
		l.logger.Info("could not start writeback; sealing a segment will write it all", "file", a.storePath, "error", err)
		return
	}
	a.writtenBack = a.size
}

// writable says whether the log accepts writes. Caller holds appendMu.
func (l *Log) writable() error {
	if l.closed {
		return ErrClosed
	}
	return l.failed
}

func (l *Log) checkBatch(a *segment, entries []Entry) error {
	if len(entries) == 0 {
		return fmt.Errorf("%w: no entries", ErrInvalidBatch)
	}
	if len(entries) > l.opts.MaxSegmentEntries {
		return fmt.Errorf("%w: %d entries, a segment holds at most %d", ErrInvalidBatch, len(entries), l.opts.MaxSegmentEntries)
	}
	if a.next > math.MaxUint64-uint64(len(entries)) {
		// The index after the batch must exist: index MaxUint64 is never used.
		return fmt.Errorf("%w: %d entries from index %d would overflow the index", ErrInvalidBatch, len(entries), a.next)
	}
	off := a.nextOff
	for i := range entries {
		e := &entries[i]
		if off > math.MaxUint64-uint64(e.Count) {
			return fmt.Errorf("%w: entry %d's %d records would overflow the record offset", ErrInvalidBatch, e.Index, e.Count)
		}
		off += uint64(e.Count)
		if want := a.next + uint64(i); e.Index != want {
			return fmt.Errorf("%w: entry %d of the batch has index %d, want %d", ErrInvalidBatch, i, e.Index, want)
		}
		if n := len(e.Extensions) + len(e.Data); n > l.opts.MaxEntryBytes {
			return fmt.Errorf("%w: entry %d is %d bytes, the limit is %d", ErrEntryTooLarge, e.Index, n, l.opts.MaxEntryBytes)
		}
	}
	return nil
}

func (l *Log) needsRoll(a *segment, batchBytes int64, n int) bool {
	if a.count() == 0 {
		return false
	}
	if a.size+batchBytes > l.opts.MaxSegmentBytes || int(a.count())+n > len(a.idx)/indexEntrySize {
		return true
	}
	return l.opts.MaxSegmentAge > 0 && l.opts.Now().UnixNano()-a.hdr.created >= int64(l.opts.MaxSegmentAge)
}

// undoAppend cuts a failed write's partial bytes off the store. If even that
// fails, the log is marked failed.
func (l *Log) undoAppend(a *segment, err error) error {
	return errors.Join(err, l.truncateStore(a))
}

func (l *Log) truncateStore(a *segment) error {
	l.haltZeroing()
	if terr := a.store.Truncate(a.size); terr != nil {
		if l.failed == nil {
			l.failed = fmt.Errorf("%w: cut %s back to %d after a failed write: %w", ErrFailed, a.storePath, a.size, terr)
		}
		return l.failed
	}
	a.alloc = a.size
	return nil
}

// allocate extends the active store's file ahead of a write that ends at
// end, by a chunk of Options.Preallocate (see there). It only saves
// work: if the file system cannot preallocate, or the disk has no room for
// a whole chunk, the write goes ahead and extends the file itself (and
// fails on its own if the disk is full).
func (l *Log) allocate(a *segment, end int64) {
	// A zeroer needs room ahead of the writes: reserve the next chunk
	// once less than half a chunk is left.
	var ahead int64
	if l.zero != nil {
		ahead = l.opts.Preallocate / 2
	}
	if l.opts.Preallocate < 0 || l.noAllocate || end+ahead <= a.alloc {
		return
	}
	want := max(end, min(a.alloc+l.opts.Preallocate, l.opts.MaxSegmentBytes))
	if want <= a.alloc {
		return // the segment is reserved to its limit
	}
	err := a.store.Allocate(a.alloc, want-a.alloc)
	switch {
	case err == nil:
		a.alloc = want
	case errors.Is(err, errors.ErrUnsupported):
		l.noAllocate = true
		l.logger.Info("the file system cannot preallocate; each write extends the store", "file", a.storePath, "error", err)
	default:
		// Part of the chunk may have been allocated: those bytes are
		// zeros past a.alloc, which recovery and sealing handle.
		l.logger.Debug("could not preallocate", "file", a.storePath, "bytes", want-a.alloc, "error", err)
	}
}

// roll seals the active segment a and starts a new one after it. The old
// segment is made durable (store, index, time index) before the new one
// exists, so every sealed segment on disk is whole.
func (l *Log) roll(a *segment) error {
	l.haltZeroing()
	// A sealed store is exactly its entries (Open and openSealed check
	// its size): the preallocated tail goes first, and the sync below
	// makes the new size durable with the data.
	if err := a.store.Truncate(a.size); err != nil {
		return fmt.Errorf("commitlog: cut %s to its %d bytes of entries before sealing it: %w", a.storePath, a.size, err)
	}
	a.alloc = a.size
	if err := a.store.Sync(); err != nil {
		l.failed = fmt.Errorf("%w: sync %s: %w", ErrFailed, a.storePath, err)
		return l.failed
	}
	if err := a.idxFile.Sync(); err != nil {
		l.failed = fmt.Errorf("%w: sync %s: %w", ErrFailed, a.indexPath, err)
		return l.failed
	}
	l.synced.Store(max(l.synced.Load(), a.next-1))
	th := a.hdr
	th.magic = magicTime
	if err := writeFileAtomic(l.fs, a.timePath, encodeTimeIndex(th, a.points)); err != nil {
		return err
	}
	s, err := l.createSegment(fileHeader{baseIndex: a.next, baseOffset: a.nextOff, startTime: a.maxTime})
	if err != nil {
		return err
	}
	// The old index shrinks to its entries; the mapping stays (nothing
	// reads past the entries) and the write handle closes.
	want := int64(fileHeaderSize) + int64(a.count())*indexEntrySize
	if err := a.idxFile.Truncate(want); err != nil {
		l.logger.Warn("could not shrink a sealed index; it is still valid", "file", a.indexPath, "error", err)
	}
	if err := a.idxFile.Close(); err != nil {
		l.logger.Warn("closing a sealed index failed", "file", a.indexPath, "error", err)
	}
	l.mu.Lock()
	a.idxFile = nil
	l.segments = append(l.segments, s)
	l.mu.Unlock()

	l.cacheMu.Lock()
	a.elem = l.lru.PushFront(a)
	l.nOpen++
	l.evictLocked()
	l.cacheMu.Unlock()
	return nil
}
