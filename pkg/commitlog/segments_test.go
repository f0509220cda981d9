package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// utCountFDs is the number of open file descriptors of this process.
func utCountFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// utCountMaps is the number of memory mappings of files under dir.
func utCountMaps(t testing.TB, dir string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("cannot read mappings: %v", err)
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, dir) {
			n++
		}
	}
	return n
}

// utManyEntry is entry i of the many-segments log: 16 data bytes, index%3
// records, times that step back every seventh entry.
func utManyEntry(i uint64) Entry {
	tm := int64(i) * 10
	if i%7 == 0 {
		tm -= 25
	}
	return utEntry(i, 0, 16, uint32(i%3), tm)
}

// TestUnitManySegmentsBoundedResources builds a log of 10,000 segments (two
// entries each) and reads it at random, in order, by offset and by time,
// before and after a reopen: the open file descriptors, the mappings and
// Stats().OpenSegments must stay bounded by MaxOpenSegments.
func TestUnitManySegmentsBoundedResources(t *testing.T) {
	const maxOpen = 16
	segments := 10000
	if testing.Short() {
		segments = 1000
	}
	entries := uint64(2 * segments)
	// Two entries of 16 bytes fill a segment exactly.
	opts := Options{
		Logger:            utLogger(t),
		FS:                vfs.NoSync{FS: vfs.OS{}},
		Sync:              SyncNone,
		MaxSegmentBytes:   fileHeaderSize + 2*(entryHeaderSize+16),
		MaxSegmentEntries: 4,
		MaxOpenSegments:   maxOpen,
		TimeIndexInterval: 1,
	}
	dir := t.TempDir()
	// What the log must hold: offsets and running maximum times by index.
	offsets := make([]uint64, entries+2) // offsets[i] is entry i's; offsets[entries+1] the next
	runMax := make([]int64, entries+1)
	for i := uint64(1); i <= entries; i++ {
		e := utManyEntry(i)
		offsets[i+1] = offsets[i] + uint64(e.Count)
		runMax[i] = e.Time
		if i > 1 {
			runMax[i] = max(runMax[i-1], e.Time)
		}
	}
	want := func(i uint64) Entry {
		e := utManyEntry(i)
		e.Offset = offsets[i]
		return e
	}

	baseFDs := utCountFDs(t)
	maxFDs, maxMaps := 0, 0
	bounded := func(what string) {
		t.Helper()
		fds := utCountFDs(t) - baseFDs
		maps := utCountMaps(t, dir)
		maxFDs, maxMaps = max(maxFDs, fds), max(maxMaps, maps)
		// One descriptor per open sealed segment (its store), two for the
		// active segment, one for the directory lock, and slack.
		if bound := maxOpen + 3 + 4; fds > bound {
			t.Fatalf("%s: %d file descriptors opened, the bound is %d", what, fds, bound)
		}
		if maps > maxOpen+1 {
			t.Fatalf("%s: %d mappings of log files, want at most %d", what, maps, maxOpen+1)
		}
	}

	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	for i := uint64(1); i <= entries; i += 2 {
		if err := l.Append([]Entry{utManyEntry(i), utManyEntry(i + 1)}); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if i%1001 == 0 {
			bounded(fmt.Sprintf("appending %d", i))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	exercise := func(round string) {
		t.Helper()
		st := l.Stats()
		if st.Segments != segments || st.OpenSegments > maxOpen+1 {
			t.Fatalf("%s: Stats = %+v, want %d segments and at most %d open", round, st, segments, maxOpen+1)
		}
		if l.FirstIndex() != 1 || l.LastIndex() != entries || l.NextOffset() != offsets[entries+1] {
			t.Fatalf("%s: bounds [%d, %d] next offset %d", round, l.FirstIndex(), l.LastIndex(), l.NextOffset())
		}
		for k := range 3000 {
			i := 1 + rng.Uint64N(entries)
			e, err := l.Read(i)
			if err != nil {
				t.Fatalf("%s: Read(%d): %v", round, i, err)
			}
			utSameEntry(t, fmt.Sprintf("%s: Read(%d)", round, i), e, want(i))
			if st := l.Stats(); st.OpenSegments > maxOpen+1 {
				t.Fatalf("%s: %d open segments after a read", round, st.OpenSegments)
			}
			if k%250 == 0 {
				bounded(fmt.Sprintf("%s: random reads", round))
			}
		}
		for k := range 1000 {
			off := rng.Uint64N(offsets[entries+1])
			e, err := l.ReadOffset(off)
			// The entry holding off: the last one whose offset is <= off.
			i := uint64(sort.Search(int(entries), func(j int) bool { return offsets[j+1] > off }))
			if err != nil {
				t.Fatalf("%s: ReadOffset(%d): %v", round, off, err)
			}
			utSameEntry(t, fmt.Sprintf("%s: ReadOffset(%d)", round, off), e, want(i))
			if k%250 == 0 {
				bounded(fmt.Sprintf("%s: offset reads", round))
			}
		}
		for k := range 1000 {
			tm := int64(rng.Uint64N(entries*10+20)) - 10
			got, err := l.SearchTime(tm)
			i := uint64(1 + sort.Search(int(entries), func(j int) bool { return runMax[j+1] >= tm }))
			if i > entries {
				utWantErr(t, fmt.Sprintf("%s: SearchTime(%d)", round, tm), err, ErrOutOfRange)
				continue
			}
			if err != nil || got != i {
				t.Fatalf("%s: SearchTime(%d) = %d, %v; want %d", round, tm, got, err, i)
			}
			if k%250 == 0 {
				bounded(fmt.Sprintf("%s: time searches", round))
			}
		}
		it := l.NewIterator(1)
		next := uint64(1)
		for it.Next() {
			utSameEntry(t, fmt.Sprintf("%s: iterator", round), it.Entry(), want(next))
			next++
			if next%2001 == 0 {
				bounded(fmt.Sprintf("%s: iterating", round))
			}
		}
		if it.Err() != nil || next != entries+1 {
			t.Fatalf("%s: iterator stopped at %d of %d: %v", round, next, entries, it.Err())
		}
		bounded(round + ": done")
	}
	exercise("first open")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if fds := utCountFDs(t) - baseFDs; fds > 0 {
		t.Fatalf("%d file descriptors still open after Close", fds)
	}
	if maps := utCountMaps(t, dir); maps > 0 {
		t.Fatalf("%d mappings still in place after Close", maps)
	}
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	bounded("reopened")
	exercise("reopened")
	t.Logf("%d segments: at most %d file descriptors and %d mappings above the baseline", segments, maxFDs, maxMaps)
}

// utBatchData is the payload of entry k of batch b (of n entries) whose
// first record offset is off.
func utBatchData(b, k, n int, off uint64) []byte {
	s := fmt.Sprintf("b%d k%d n%d o%d ", b, k, n, off)
	return append([]byte(s), bytes.Repeat([]byte{'.'}, 48-len(s))...)
}

// utParseBatch reads back what utBatchData wrote and checks the entry's other
// fields against it.
func utParseBatch(e Entry) (b, k, n int, err error) {
	var off uint64
	if _, err := fmt.Sscanf(string(e.Data), "b%d k%d n%d o%d ", &b, &k, &n, &off); err != nil {
		return 0, 0, 0, fmt.Errorf("entry %d: data %q: %w", e.Index, e.Data, err)
	}
	if e.Offset != off || e.Time != int64(b)*1000 || e.Count != uint32((b+k)%3) || k >= n || !bytes.Equal(e.Data, utBatchData(b, k, n, off)) {
		return 0, 0, 0, fmt.Errorf("entry %d (offset %d time %d count %d) does not match its data %q", e.Index, e.Offset, e.Time, e.Count, e.Data)
	}
	return b, k, n, nil
}

// TestUnitConcurrentReadersAppenderRetention runs one appender, readers of
// every kind and periodic retention at once (run it with -race). Batches
// must be visible whole or not at all, and reads may fail only with
// ErrOutOfRange, only for entries retention deleted.
func TestUnitConcurrentReadersAppenderRetention(t *testing.T) {
	const batches = 1500
	opts := Options{
		Logger:            utLogger(t),
		FS:                vfs.NoSync{FS: vfs.OS{}},
		MaxSegmentBytes:   2048,
		MaxSegmentEntries: 64,
		MaxOpenSegments:   3,
		TimeIndexInterval: 256,
		RetentionBytes:    16 << 10,
	}
	dir := t.TempDir()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()

	var (
		wg      sync.WaitGroup
		stop    atomic.Bool // a goroutine failed
		done    = make(chan struct{})
		retain  = make(chan struct{}, 1)
		deleted atomic.Int64 // segments deleted by retention
		// restarts of the lagging iterator
		lagRestarts atomic.Int64
	)
	// deletions returns a channel that is closed at the next deletion by
	// retention, so the lagging iterator can wait for one.
	var (
		delMu   sync.Mutex
		delCh   = make(chan struct{})
		retDone = make(chan struct{})
	)
	deletions := func() <-chan struct{} {
		delMu.Lock()
		defer delMu.Unlock()
		return delCh
	}
	deleteHappened := func() {
		delMu.Lock()
		defer delMu.Unlock()
		close(delCh)
		delCh = make(chan struct{})
	}
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		stop.Store(true)
	}
	isDone := func() bool {
		select {
		case <-done:
			return true
		default:
			return stop.Load()
		}
	}
	// gone says whether an ErrOutOfRange for index i is explained by
	// retention: i is below the first index now.
	gone := func(err error, i uint64) bool {
		return errors.Is(err, ErrOutOfRange) && i < l.FirstIndex()
	}

	// The appender: batch b has 1 + b%5 entries.
	wg.Go(func() {
		defer close(done)
		defer close(retain)
		var off uint64
		for b := 0; b < batches && !stop.Load(); b++ {
			n := 1 + b%5
			es := make([]Entry, n)
			first := l.LastIndex() + 1
			for k := range es {
				es[k] = Entry{Index: first + uint64(k), Term: 1, Time: int64(b) * 1000, Count: uint32((b + k) % 3), Data: utBatchData(b, k, n, off)}
				off += uint64(es[k].Count)
			}
			if err := l.Append(es); err != nil {
				fail("Append batch %d: %v", b, err)
				return
			}
			if b%25 == 0 {
				select {
				case retain <- struct{}{}:
				default:
				}
			}
		}
	})

	// Retention, when the appender asks: by bytes, or everything more than
	// 200 entries behind the end.
	wg.Go(func() {
		defer close(retDone)
		k := 0
		for range retain {
			if stop.Load() {
				return
			}
			firstBefore := l.FirstIndex()
			var n int
			var err error
			if k++; k%2 == 0 {
				var res RetentionResult
				res, err = l.ApplyRetention()
				n = res.Segments
			} else if last := l.LastIndex(); last > 200 {
				n, err = l.DeleteBefore(last - 200)
			}
			if err != nil {
				fail("retention: %v", err)
				return
			}
			deleted.Add(int64(n))
			if n > 0 {
				deleteHappened()
			}
			if first := l.FirstIndex(); first < firstBefore || (n > 0) != (first > firstBefore) {
				fail("retention deleted %d segments and moved the first index from %d to %d", n, firstBefore, first)
				return
			}
		}
	})

	// Reader: the last entry always ends a batch, and its whole batch is
	// readable; random entries read back consistent.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(3, 4))
		for !isDone() {
			last := l.LastIndex()
			if last < l.FirstIndex() {
				continue
			}
			e, err := l.Read(last)
			if err != nil {
				if gone(err, last) {
					continue
				}
				fail("Read(LastIndex %d): %v", last, err)
				return
			}
			_, k, n, err := utParseBatch(e)
			if err != nil {
				fail("Read(LastIndex): %v", err)
				return
			}
			if k != n-1 {
				fail("LastIndex %d is entry %d of a batch of %d: a partial batch is visible", last, k, n)
				return
			}
			for i := last - uint64(k); i < last; i++ {
				if _, err := l.Read(i); err != nil && !gone(err, i) {
					fail("Read(%d) in the last batch [%d, %d]: %v", i, last-uint64(k), last, err)
					return
				}
			}
			first := l.FirstIndex()
			if first > last {
				continue // retention moved past last meanwhile
			}
			i := first + rng.Uint64N(last-first+1)
			e, err = l.Read(i)
			if err != nil {
				if !gone(err, i) {
					fail("Read(%d) in [%d, %d]: %v", i, first, last, err)
					return
				}
				continue
			}
			if _, _, _, err := utParseBatch(e); err != nil || e.Index != i {
				fail("Read(%d): entry %d: %v", i, e.Index, err)
				return
			}
		}
	})

	// Reader: by offset.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(5, 6))
		for !isDone() {
			firstOff, nextOff := l.FirstOffset(), l.NextOffset()
			if nextOff <= firstOff {
				continue
			}
			off := firstOff + rng.Uint64N(nextOff-firstOff)
			e, err := l.ReadOffset(off)
			if err != nil {
				if !errors.Is(err, ErrOutOfRange) || off >= l.FirstOffset() {
					fail("ReadOffset(%d) in [%d, %d): %v", off, firstOff, nextOff, err)
					return
				}
				continue
			}
			if _, _, _, err := utParseBatch(e); err != nil || off < e.Offset || off-e.Offset >= uint64(e.Count) {
				fail("ReadOffset(%d) = entry %d holding [%d, +%d): %v", off, e.Index, e.Offset, e.Count, err)
				return
			}
			if i, err := l.IndexOfOffset(off); err != nil && !gone(err, e.Index) || err == nil && i != e.Index {
				fail("IndexOfOffset(%d) = %d, %v; want %d", off, i, err, e.Index)
				return
			}
		}
	})

	// Readers: iterators tailing the log. An iterator sees whole batches
	// in order; when retention deletes what it was about to read, it
	// starts again at the first index, which begins a batch. Iterator 1
	// lags: every 100 entries it waits until retention has deleted its
	// position (or the appender is done), so it must restart.
	for r := range 2 {
		wg.Go(func() {
			it := l.NewIterator(l.FirstIndex())
			wantK, wantB := 0, -1
			restarts, read := 0, 0
			for {
				finished := isDone()
				for it.Next() {
					if read++; r == 1 && read%100 == 0 {
						for {
							ch := deletions()
							if it.Index() < l.FirstIndex() || isDone() {
								break
							}
							select {
							case <-ch:
							case <-done:
							case <-retDone:
							}
						}
					}
					e := it.Entry()
					b, k, n, err := utParseBatch(e)
					if err != nil {
						fail("iterator %d: %v", r, err)
						return
					}
					if k != wantK || (k > 0 && b != wantB) || (k == 0 && wantB >= 0 && b != wantB+1) {
						fail("iterator %d: entry %d is entry %d of batch %d, want entry %d of batch %d", r, e.Index, k, b, wantK, wantB)
						return
					}
					wantB, wantK = b, (k+1)%n
				}
				if err := it.Err(); err != nil {
					if !gone(err, it.Index()) {
						fail("iterator %d at %d: %v", r, it.Index(), err)
						return
					}
					it = l.NewIterator(l.FirstIndex())
					wantK, wantB = 0, -1
					restarts++
					continue
				}
				if wantK != 0 {
					fail("iterator %d reached the end inside a batch (at entry %d of batch %d)", r, wantK, wantB)
					return
				}
				if finished {
					if !stop.Load() && it.Index() != l.LastIndex()+1 {
						fail("iterator %d stopped at %d, the log ends at %d", r, it.Index(), l.LastIndex())
					}
					t.Logf("iterator %d restarted %d times after retention", r, restarts)
					if r == 1 {
						lagRestarts.Store(int64(restarts))
					}
					return
				}
			}
		})
	}

	// Reader: by time (batch b has time b*1000), and Stats.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(7, 8))
		for !isDone() {
			if st := l.Stats(); st.Segments < 1 {
				fail("Stats = %+v", st)
				return
			}
			first, last := l.FirstIndex(), l.LastIndex()
			if last < first {
				continue
			}
			e, err := l.Read(first + rng.Uint64N(last-first+1))
			if err != nil {
				continue // deleted meanwhile; the other readers check that
			}
			tm := e.Time - int64(rng.IntN(1000))
			i, err := l.SearchTime(tm)
			if err != nil {
				fail("SearchTime(%d), entry %d has time %d: %v", tm, e.Index, e.Time, err)
				return
			}
			got, err := l.Read(i)
			if err != nil {
				if !gone(err, i) {
					fail("Read(SearchTime(%d) = %d): %v", tm, i, err)
					return
				}
				continue
			}
			if got.Time < tm {
				fail("SearchTime(%d) = %d, whose time is %d", tm, i, got.Time)
				return
			}
			if prev, err := l.Read(i - 1); err == nil && prev.Time >= tm {
				fail("SearchTime(%d) = %d, but entry %d has time %d", tm, i, i-1, prev.Time)
				return
			}
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	if deleted.Load() == 0 || lagRestarts.Load() == 0 {
		t.Fatalf("retention deleted %d segments and the lagging iterator restarted %d times; the test did not exercise them",
			deleted.Load(), lagRestarts.Load())
	}

	// Afterwards the log holds whole batches from a segment base to the
	// end, and the same after a reopen.
	verify := func(what string) {
		t.Helper()
		it := l.NewIterator(l.FirstIndex())
		n, wantK, wantB := 0, 0, -1
		for it.Next() {
			b, k, bn, err := utParseBatch(it.Entry())
			if err != nil || k != wantK || (wantB >= 0 && k == 0 && b != wantB+1) {
				t.Fatalf("%s: entry %d: batch %d entry %d (want entry %d): %v", what, it.Entry().Index, b, k, wantK, err)
			}
			wantB, wantK = b, (k+1)%bn
			n++
		}
		if it.Err() != nil || wantK != 0 || wantB != batches-1 {
			t.Fatalf("%s: iteration ended at batch %d entry %d: %v", what, wantB, wantK, it.Err())
		}
		t.Logf("%s: %d entries from %d, %d segments deleted by retention", what, n, l.FirstIndex(), deleted.Load())
	}
	verify("after the run")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	verify("reopened")
}
