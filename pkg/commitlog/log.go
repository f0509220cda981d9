package commitlog

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// Entry is one element of the log. Index, Term, Type, Time, Count, Extensions
// and Data are the caller's; Offset is assigned by Append.
type Entry struct {
	// Index is the entry's position in the log: dense and increasing.
	Index uint64
	// Term is opaque to the log (raft's term).
	Term uint64
	// Type is opaque to the log (raft's log type).
	Type uint8
	// Time is the entry's timestamp in unix nanoseconds. Times need not
	// increase; time lookups use the running maximum.
	Time int64
	// Offset is the record offset of the first record the entry holds,
	// assigned by Append: the previous entry's Offset plus its Count.
	Offset uint64
	// Count is how many records the entry holds (zero for entries that
	// hold none, such as raft configuration entries).
	Count uint32
	// Extensions is opaque metadata stored beside Data (raft's Extensions).
	Extensions []byte
	// Data is the payload.
	Data []byte
}

// RecoveryReport says what Open found and repaired in the active segment.
type RecoveryReport struct {
	// Segment is the store file that was scanned.
	Segment string
	// Entries is the number of whole entries kept in it.
	Entries uint64
	// TruncatedAt is the store position the file was cut back to, or -1
	// if nothing was cut.
	TruncatedAt int64
	// DroppedBytes is how many bytes were cut.
	DroppedBytes int64
	// DroppedEntries is how many entries were dropped: whole entries of an
	// unfinished batch, plus one for a torn or corrupt entry.
	DroppedEntries int
	// Reason says why the tail was cut.
	Reason string
	// IndexRebuilt is true if the index file disagreed with the store and
	// was rewritten from it.
	IndexRebuilt bool
	// OrphansRemoved lists leftover files (temporary files, index files
	// without a store) that Open removed.
	OrphansRemoved []string
	// Ignored lists files in the directory that are not the log's.
	Ignored []string
}

// Log is a segmented, append-only log of entries. It is safe for concurrent
// use: appends and other writes are serialized; reads run concurrently with
// each other and with appends.
type Log struct {
	dir    string
	opts   Options
	fs     vfs.FS
	logger hclog.Logger

	// appendMu serializes every change: Append, truncation, retention,
	// Reset and Close.
	appendMu sync.Mutex
	encBuf   []byte // encoding buffer, under appendMu
	idxBuf   []byte // index entries buffer, under appendMu
	failed   error  // sticky write failure, under appendMu
	// synced is SyncedIndex. It changes under appendMu and is read
	// without it.
	synced atomic.Uint64
	// noAllocate is set, under appendMu, once the file system has said
	// it cannot preallocate (Options.Preallocate).
	noAllocate bool
	// noWriteback is set, under appendMu, once starting writeback has
	// failed or the file system cannot (Options.WritebackBytes).
	noWriteback bool
	// zero writes zeros over the preallocated space ahead of the appends
	// (zero.go); nil when the log does not zero ahead.
	zero *zeroer

	// mu guards the segment list and the active segment's published
	// bounds. Writers hold it only to publish; readers hold it (shared)
	// while they read, so truncation and retention cannot pull files from
	// under them.
	mu       sync.RWMutex
	segments []*segment
	closed   bool

	// cacheMu guards refs and the LRU list of opened sealed segments.
	cacheMu sync.Mutex
	lru     list.List
	nOpen   int

	recovery RecoveryReport
	lock     io.Closer // the directory lock, if the FS can lock
}

// lockName is the lock file in a log directory; see Open.
const lockName = "LOCK"

var segmentFileRE = regexp.MustCompile(`^([0-9]{20})(\.store|\.index|\.timeindex)$`)

// Open opens the log in dir, creating dir and an empty log if needed. It
// reads every store file's header, scans only the last segment, repairs a
// torn tail and reports what it did (see Recovery). If the FS can lock
// (vfs.OS can), Open takes an exclusive lock on dir/LOCK, so a second Open of
// the same directory, in this process or another, fails with vfs.ErrLocked
// until Close.
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: opts, fs: opts.FS, logger: opts.Logger}
	l.recovery.TruncatedAt = -1
	if err := l.fs.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("commitlog: create %s: %w", dir, err)
	}
	if lk, ok := l.fs.(vfs.Locker); ok {
		lock, err := lk.Lock(filepath.Join(dir, lockName))
		if err != nil {
			return nil, fmt.Errorf("commitlog: lock %s (is another process using this log?): %w", dir, err)
		}
		l.lock = lock
	}
	names, err := l.fs.ReadDir(dir)
	if err != nil {
		return nil, l.closeAfter(fmt.Errorf("commitlog: list %s: %w", dir, err))
	}
	type files struct{ store, index, time bool }
	found := map[uint64]*files{}
	var bases []uint64
	for _, name := range names {
		if strings.HasSuffix(name, tmpExt) && segmentFileRE.MatchString(strings.TrimSuffix(name, tmpExt)) {
			if err := l.fs.Remove(filepath.Join(dir, name)); err != nil {
				return nil, l.closeAfter(fmt.Errorf("commitlog: remove leftover %s: %w", name, err))
			}
			l.recovery.OrphansRemoved = append(l.recovery.OrphansRemoved, name)
			continue
		}
		m := segmentFileRE.FindStringSubmatch(name)
		if name == lockName {
			continue
		}
		if m == nil {
			l.recovery.Ignored = append(l.recovery.Ignored, name)
			l.logger.Warn("ignoring a file that is not part of the log", "dir", dir, "file", name)
			continue
		}
		base, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil || base == 0 {
			l.recovery.Ignored = append(l.recovery.Ignored, name)
			l.logger.Warn("ignoring a segment file with an invalid base index", "dir", dir, "file", name)
			continue
		}
		fs := found[base]
		if fs == nil {
			fs = &files{}
			found[base] = fs
			bases = append(bases, base)
		}
		switch m[2] {
		case storeExt:
			fs.store = true
		case indexExt:
			fs.index = true
		case timeExt:
			fs.time = true
		}
	}
	// ReadDir sorts by name and names are zero-padded, so bases ascend.
	for _, base := range bases {
		fs := found[base]
		if fs.store {
			hdr, size, err := l.readStoreHeader(filepath.Join(dir, segmentName(base)+storeExt))
			if err != nil {
				return nil, l.closeAfter(err)
			}
			if hdr.baseIndex != base {
				return nil, l.closeAfter(&CorruptError{File: filepath.Join(dir, segmentName(base)+storeExt), Pos: 16,
					Reason: fmt.Sprintf("header says base index %d, file name says %d", hdr.baseIndex, base)})
			}
			if n := len(l.segments); n > 0 && hdr.baseOffset < l.segments[n-1].hdr.baseOffset {
				return nil, l.closeAfter(&CorruptError{File: filepath.Join(dir, segmentName(base)+storeExt), Pos: 24,
					Reason: fmt.Sprintf("base offset %d is below the previous segment's %d", hdr.baseOffset, l.segments[n-1].hdr.baseOffset)})
			}
			s := newSegmentPaths(dir, hdr)
			s.size = size
			l.segments = append(l.segments, s)
			continue
		}
		// An index or time index without its store: left behind by a
		// deletion that a crash interrupted. The store defines the segment.
		for ext, has := range map[string]bool{indexExt: fs.index, timeExt: fs.time} {
			if !has {
				continue
			}
			name := segmentName(base) + ext
			if err := l.fs.Remove(filepath.Join(dir, name)); err != nil {
				return nil, l.closeAfter(fmt.Errorf("commitlog: remove orphan %s: %w", name, err))
			}
			l.recovery.OrphansRemoved = append(l.recovery.OrphansRemoved, name)
		}
	}
	if len(l.recovery.OrphansRemoved) > 0 {
		l.logger.Info("removed leftover files", "dir", dir, "files", l.recovery.OrphansRemoved)
		if err := l.fs.SyncDir(dir); err != nil {
			return nil, l.closeAfter(fmt.Errorf("commitlog: sync dir %s: %w", dir, err))
		}
	}
	for i := 0; i+1 < len(l.segments); i++ {
		s := l.segments[i]
		s.next = l.segments[i+1].hdr.baseIndex
		s.nextOff = l.segments[i+1].hdr.baseOffset
		s.maxTime = l.segments[i+1].hdr.startTime
	}
	if len(l.segments) == 0 {
		s, err := l.createSegment(fileHeader{baseIndex: opts.InitialIndex, baseOffset: 0, startTime: math.MinInt64})
		if err != nil {
			return nil, l.closeAfter(err)
		}
		l.segments = []*segment{s}
		l.synced.Store(opts.InitialIndex - 1)
		l.startZeroing()
		return l, nil
	}
	a := l.segments[len(l.segments)-1]
	if err := l.openActive(a); err != nil {
		return nil, l.closeAfter(err)
	}
	// What recovery found may still be only in the page cache, written
	// without a sync by a process that then died (AppendNoSync): sync it
	// before calling it durable.
	if opts.Sync == SyncAlways && a.count() > 0 {
		if err := a.store.Sync(); err != nil {
			return nil, l.closeAfter(fmt.Errorf("commitlog: sync %s: %w", a.storePath, err))
		}
	}
	l.synced.Store(a.next - 1)
	if n := len(l.segments); n >= 2 {
		// Check that the last sealed segment ends where the active one
		// starts (index and offset), so a stray or mismatched store can
		// never pass for the log's tail. Opening it runs those checks.
		prev := l.segments[n-2]
		if err := l.acquire(prev); err != nil {
			return nil, l.closeAfter(err)
		}
		l.release(prev)
	}
	l.startZeroing()
	return l, nil
}

// closeAfter closes what Open had opened and returns err joined with any
// close error.
func (l *Log) closeAfter(err error) error {
	for _, s := range l.segments {
		err = errors.Join(err, s.closeFiles())
	}
	return errors.Join(err, l.unlock())
}

// unlock releases the directory lock, if held.
func (l *Log) unlock() error {
	if l.lock == nil {
		return nil
	}
	err := l.lock.Close()
	l.lock = nil
	if err != nil {
		return fmt.Errorf("commitlog: unlock %s: %w", l.dir, err)
	}
	return nil
}

// readStoreHeader reads a store file's header and size.
func (l *Log) readStoreHeader(path string) (fileHeader, int64, error) {
	f, err := l.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fileHeader{}, 0, fmt.Errorf("commitlog: open %s: %w", path, err)
	}
	b := make([]byte, fileHeaderSize)
	n, rerr := f.ReadAt(b, 0)
	size, serr := f.Size()
	cerr := f.Close()
	if n < fileHeaderSize {
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return fileHeader{}, 0, fmt.Errorf("commitlog: read header of %s: %w", path, rerr)
		}
		return fileHeader{}, 0, &CorruptError{File: path, Pos: 0, Reason: fmt.Sprintf("file of %d bytes is shorter than its %d-byte header", n, fileHeaderSize)}
	}
	hdr, err := decodeFileHeader(b, magicStore)
	if err != nil {
		return hdr, 0, &CorruptError{File: path, Pos: 0, Reason: err.Error()}
	}
	if err := errors.Join(serr, cerr); err != nil {
		return hdr, 0, fmt.Errorf("commitlog: stat %s: %w", path, err)
	}
	return hdr, size, nil
}

// Recovery reports what Open found and repaired.
func (l *Log) Recovery() RecoveryReport { return l.recovery }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// FirstIndex is the index of the first entry. On an empty log it is the
// index the next entry will get, and LastIndex is one less.
func (l *Log) FirstIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segments) == 0 {
		return 0
	}
	return l.segments[0].hdr.baseIndex
}

// LastIndex is the index of the last entry (FirstIndex-1 if the log is empty).
func (l *Log) LastIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segments) == 0 {
		return 0
	}
	return l.segments[len(l.segments)-1].next - 1
}

// FirstOffset is the record offset of the first record the log holds.
func (l *Log) FirstOffset() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.segments) == 0 {
		return 0
	}
	return l.segments[0].hdr.baseOffset
}

// NextOffset is the record offset the next record appended will get; the
// last record offset is NextOffset-1 when NextOffset > FirstOffset.
func (l *Log) NextOffset() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.nextOffsetLocked()
}

func (l *Log) nextOffsetLocked() uint64 {
	if len(l.segments) == 0 {
		return 0
	}
	return l.segments[len(l.segments)-1].nextOff
}

// Stats describe the log's size.
type Stats struct {
	Segments     int
	OpenSegments int // sealed segments whose files are open, plus the active one
	Bytes        int64
}

// Stats returns the number of segments and their total store size.
func (l *Log) Stats() Stats {
	l.mu.RLock()
	defer l.mu.RUnlock()
	st := Stats{Segments: len(l.segments)}
	for _, s := range l.segments {
		st.Bytes += s.size
	}
	l.cacheMu.Lock()
	st.OpenSegments = l.nOpen + 1
	l.cacheMu.Unlock()
	return st
}

// Close closes the log. It is idempotent; later calls return nil, and other
// methods return ErrClosed.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.zero != nil {
		l.zero.close()
	}
	var errs []error
	for _, s := range l.segments {
		s.openMu.Lock()
		errs = append(errs, s.closeFiles())
		s.openMu.Unlock()
	}
	l.cacheMu.Lock()
	l.lru.Init()
	l.nOpen = 0
	l.cacheMu.Unlock()
	errs = append(errs, l.unlock())
	return errors.Join(errs...)
}
