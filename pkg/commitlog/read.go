package commitlog

import (
	"fmt"
	"sort"
)

// readChunk is how many store bytes an Iterator reads at once.
const readChunk = 256 << 10

// readable says whether the log can serve reads. Caller holds l.mu.
func (l *Log) readable() error {
	if l.closed {
		return ErrClosed
	}
	if len(l.segments) == 0 {
		return ErrFailed
	}
	return nil
}

// segmentFor returns the segment holding index i. Caller holds l.mu.
func (l *Log) segmentFor(i uint64) (*segment, error) {
	if err := l.readable(); err != nil {
		return nil, err
	}
	first, next := l.segments[0].hdr.baseIndex, l.segments[len(l.segments)-1].next
	if i < first || i >= next {
		return nil, fmt.Errorf("%w: index %d, the log holds [%d, %d)", ErrOutOfRange, i, first, next)
	}
	k := sort.Search(len(l.segments), func(k int) bool { return l.segments[k].hdr.baseIndex > i }) - 1
	return l.segments[k], nil
}

// Read returns the entry at index i. Its Extensions and Data are a fresh copy
// owned by the caller.
func (l *Log) Read(i uint64) (Entry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, err := l.segmentFor(i)
	if err != nil {
		return Entry{}, err
	}
	if err := l.acquire(s); err != nil {
		return Entry{}, err
	}
	defer l.release(s)
	_, e, err := s.readEntry(i, nil)
	return e, err
}

// OffsetOf returns the record offset of entry i (the offset of its first
// record, or of the next record if it holds none), from the index alone.
func (l *Log) OffsetOf(i uint64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, err := l.segmentFor(i)
	if err != nil {
		return 0, err
	}
	if err := l.acquire(s); err != nil {
		return 0, err
	}
	defer l.release(s)
	return s.offsetAt(i), nil
}

// EncodedSize returns the number of store bytes that entries [from, to]
// take, which is also what Iterator.Raw yields for them.
func (l *Log) EncodedSize(from, to uint64) (int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if to < from {
		return 0, nil
	}
	if _, err := l.segmentFor(from); err != nil {
		return 0, err
	}
	if _, err := l.segmentFor(to); err != nil {
		return 0, err
	}
	var total int64
	for _, s := range l.segments {
		if s.next <= from || s.hdr.baseIndex > to || s.count() == 0 {
			continue
		}
		lo, hi := max(from, s.hdr.baseIndex), min(to, s.next-1)
		if err := l.acquire(s); err != nil {
			return 0, err
		}
		pos, _ := s.entryBounds(lo)
		_, end := s.entryBounds(hi)
		l.release(s)
		total += end - pos
	}
	return total, nil
}

// IndexOfOffset returns the index of the entry holding record offset off.
func (l *Log) IndexOfOffset(off uint64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, err := l.segmentForOffset(off)
	if err != nil {
		return 0, err
	}
	if err := l.acquire(s); err != nil {
		return 0, err
	}
	defer l.release(s)
	// The index's offsets are not checksummed: check the answer against
	// the entry's header rather than trust them. Only the header is read
	// (entries can be large); whoever reads the entry verifies its
	// checksum then.
	i := s.searchOffset(off)
	pos, end := s.entryBounds(i)
	if pos < fileHeaderSize || end-pos < entryHeaderSize || end > s.size {
		return 0, &CorruptError{File: s.indexPath, Pos: fileHeaderSize + int64(i-s.hdr.baseIndex)*indexEntrySize,
			Reason: fmt.Sprintf("index entry for %d points at bytes [%d, %d) of a %d-byte store", i, pos, end, s.size)}
	}
	var hb [entryHeaderSize]byte
	if _, err := readFull(s.store, hb[:], pos, end); err != nil {
		return 0, err
	}
	e, err := decodeEntryHeader(hb[:])
	if err != nil || e.index != i || e.size() != end-pos {
		reason := fmt.Sprintf("entry header at index slot %d does not match the index", i)
		if err != nil {
			reason = err.Error()
		}
		return 0, &CorruptError{File: s.storePath, Pos: pos, Reason: reason}
	}
	if off < e.offset || off-e.offset >= uint64(e.count) {
		return 0, &CorruptError{File: s.indexPath, Pos: fileHeaderSize + int64(i-s.hdr.baseIndex)*indexEntrySize,
			Reason: fmt.Sprintf("index leads offset %d to entry %d holding [%d, %d)", off, i, e.offset, e.offset+uint64(e.count))}
	}
	return i, nil
}

// ReadOffset returns the entry holding record offset off: the entry e with
// e.Offset <= off < e.Offset+e.Count.
func (l *Log) ReadOffset(off uint64) (Entry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, err := l.segmentForOffset(off)
	if err != nil {
		return Entry{}, err
	}
	if err := l.acquire(s); err != nil {
		return Entry{}, err
	}
	defer l.release(s)
	i := s.searchOffset(off)
	_, e, err := s.readEntry(i, nil)
	if err != nil {
		return Entry{}, err
	}
	if off < e.Offset || off-e.Offset >= uint64(e.Count) {
		return Entry{}, &CorruptError{File: s.indexPath, Pos: fileHeaderSize + int64(i-s.hdr.baseIndex)*indexEntrySize,
			Reason: fmt.Sprintf("index leads offset %d to entry %d holding [%d, %d)", off, i, e.Offset, e.Offset+uint64(e.Count))}
	}
	return e, nil
}

// segmentForOffset returns the segment holding record offset off. Caller
// holds l.mu.
func (l *Log) segmentForOffset(off uint64) (*segment, error) {
	if err := l.readable(); err != nil {
		return nil, err
	}
	first, next := l.segments[0].hdr.baseOffset, l.segments[len(l.segments)-1].nextOff
	if off < first || off >= next {
		return nil, fmt.Errorf("%w: offset %d, the log holds [%d, %d)", ErrOutOfRange, off, first, next)
	}
	// The last segment whose base offset is <= off; segments holding no
	// records share their base offset with the next one, so the last wins.
	k := sort.Search(len(l.segments), func(k int) bool { return l.segments[k].hdr.baseOffset > off }) - 1
	return l.segments[k], nil
}

// SearchTime returns the index of the first entry whose time is at or after
// t (unix nanoseconds), treating times as their running maximum so that a
// clock that stepped back cannot hide later entries. It is a binary search
// over segments, then over the segment's sparse time index, then a scan of
// at most TimeIndexInterval bytes.
func (l *Log) SearchTime(t int64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, ErrClosed
	}
	k := sort.Search(len(l.segments), func(k int) bool { return l.segments[k].maxTime >= t })
	for ; k < len(l.segments); k++ {
		s := l.segments[k]
		if s.count() == 0 {
			continue
		}
		if err := l.acquire(s); err != nil {
			return 0, err
		}
		i, err := l.searchTimeIn(s, t)
		l.release(s)
		return i, err
	}
	return 0, fmt.Errorf("%w: no entry at or after time %d", ErrOutOfRange, t)
}

func (l *Log) searchTimeIn(s *segment, t int64) (uint64, error) {
	p := sort.Search(len(s.points), func(p int) bool { return s.points[p].time >= t })
	if p == 0 {
		return s.hdr.baseIndex, nil
	}
	runMax := s.points[p-1].time
	var buf []byte
	for i := s.points[p-1].index + 1; i < s.next; i++ {
		var (
			e   Entry
			err error
		)
		buf, e, err = s.readEntry(i, buf)
		if err != nil {
			return 0, err
		}
		if e.Time > runMax {
			runMax = e.Time
		}
		if runMax >= t {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: no entry at or after time %d", ErrOutOfRange, t)
}

// Iterator reads entries in order from a starting index, a chunk of entries
// per read. When it reaches the end of the log, Next returns false; a later
// Next returns entries appended since. It is not safe for concurrent use.
type Iterator struct {
	l    *Log
	next uint64 // index of the next entry to decode
	buf  []byte
	pos  int    // decode position in buf
	left uint64 // entries in buf not yet decoded
	cur  Entry
	raw  []byte
	err  error
	// The store file buf was read from and the position of buf[0] in it,
	// for the *CorruptError of an entry that fails to decode.
	file    string
	filePos int64
}

// NewIterator returns an iterator whose first entry is index from.
func (l *Log) NewIterator(from uint64) *Iterator {
	return &Iterator{l: l, next: from}
}

// Seek moves the iterator to index from, as NewIterator(from) would, and
// clears any error. What it had read ahead is dropped (the log may have
// changed since: a suffix truncated and written again), but its buffer is
// kept, so that a reader making many short passes (a consumer stream, a
// response at a time) does not allocate and clear a chunk for each. Entries
// it returned before are no longer valid.
func (it *Iterator) Seek(from uint64) {
	it.next, it.left, it.pos, it.err = from, 0, 0, nil
	it.cur, it.raw = Entry{}, nil
}

// Next advances to the next entry. It returns false at the end of the log or
// on error; Err tells which.
func (it *Iterator) Next() bool {
	if it.err != nil {
		return false
	}
	if it.left == 0 {
		ok, err := it.fill()
		if err != nil {
			it.err = err
			return false
		}
		if !ok {
			return false
		}
	}
	e, n, err := DecodeEntry(it.buf[it.pos:])
	if err == nil && e.Index != it.next {
		err = fmt.Errorf("%w: read index %d, want %d", ErrCorrupt, e.Index, it.next)
	}
	if err != nil {
		it.err = fmt.Errorf("commitlog: iterator at index %d: %w", it.next,
			&CorruptError{File: it.file, Pos: it.filePos + int64(it.pos), Reason: err.Error()})
		return false
	}
	it.cur = e
	it.raw = it.buf[it.pos : it.pos+n]
	it.pos += n
	it.left--
	it.next++
	return true
}

// Entry is the current entry. Its Extensions and Data alias the iterator's
// buffer and are valid until the next call to Next.
func (it *Iterator) Entry() Entry { return it.cur }

// Raw is the current entry in the store's encoding (DecodeEntry reads it),
// aliasing the iterator's buffer until the next call to Next.
func (it *Iterator) Raw() []byte { return it.raw }

// Err is the error that stopped the iterator, if any. Reaching the end of the
// log is not an error.
func (it *Iterator) Err() error { return it.err }

// Index is the index of the entry the next Next will return.
func (it *Iterator) Index() uint64 { return it.next }

// fill reads the next chunk of whole entries into the buffer.
func (it *Iterator) fill() (bool, error) {
	l := it.l
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.readable(); err != nil {
		return false, err
	}
	if it.next >= l.segments[len(l.segments)-1].next {
		return false, nil
	}
	s, err := l.segmentFor(it.next)
	if err != nil {
		return false, err
	}
	if err := l.acquire(s); err != nil {
		return false, err
	}
	defer l.release(s)
	pos, _ := s.entryBounds(it.next)
	// The last entry j such that the chunk [pos, end(j)) fits readChunk;
	// at least one entry.
	n := int(s.next - it.next)
	k := sort.Search(n, func(k int) bool {
		_, e := s.entryBounds(it.next + uint64(k))
		return e-pos > readChunk
	})
	if k == 0 {
		k = 1
	}
	_, end := s.entryBounds(it.next + uint64(k) - 1)
	if pos < fileHeaderSize || end <= pos || end > s.size {
		return false, &CorruptError{File: s.indexPath, Pos: fileHeaderSize + int64(it.next-s.hdr.baseIndex)*indexEntrySize,
			Reason: fmt.Sprintf("index gives bytes [%d, %d) of a %d-byte store", pos, end, s.size)}
	}
	size := int(end - pos)
	if cap(it.buf) < size {
		it.buf = make([]byte, size, max(size, readChunk))
	}
	it.buf = it.buf[:size]
	if _, err := readFull(s.store, it.buf, pos, end); err != nil {
		return false, err
	}
	it.pos = 0
	it.left = uint64(k)
	it.file, it.filePos = s.storePath, pos
	return true, nil
}
