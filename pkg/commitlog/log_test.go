package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// This file holds the unit tests of the Log API and the test harness that
// segments_test.go and fuzz_test.go share: a model of what the log must hold
// (utModel), a log under test paired with its model (utLog), and a check that
// compares every observable of the log with the model (utLog.check).

// utT0 is the fake clock's start.
var utT0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// utClock is a settable clock for Options.Now, safe for concurrent use.
type utClock struct{ ns atomic.Int64 }

func utNewClock() *utClock {
	c := &utClock{}
	c.ns.Store(utT0.UnixNano())
	return c
}

func (c *utClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *utClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// utLogWriter routes a logger's output to t.Log.
type utLogWriter struct{ t testing.TB }

func (w utLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func utLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "commitlog", Level: hclog.Info, Output: utLogWriter{t}})
}

// utModel is what a log must hold: entries [first, next) with their offsets,
// and the running maximum time of every entry before first (deleted by
// retention, but still part of the time index's running maximum).
type utModel struct {
	first    uint64
	firstOff uint64
	nextOff  uint64
	startMax int64
	entries  []Entry
}

func utNewModel(first uint64) utModel {
	return utModel{first: first, startMax: math.MinInt64}
}

func (m *utModel) next() uint64 { return m.first + uint64(len(m.entries)) }

func (m *utModel) get(i uint64) (Entry, bool) {
	if i < m.first || i >= m.next() {
		return Entry{}, false
	}
	return m.entries[i-m.first], true
}

// add appends copies of es, assigning offsets as the log must.
func (m *utModel) add(es []Entry) {
	for _, e := range es {
		e.Offset = m.nextOff
		m.nextOff += uint64(e.Count)
		e.Extensions = bytes.Clone(e.Extensions)
		e.Data = bytes.Clone(e.Data)
		m.entries = append(m.entries, e)
	}
}

func (m *utModel) truncateFrom(i uint64) {
	if i >= m.next() {
		return
	}
	i = max(i, m.first)
	k := i - m.first
	m.nextOff = m.entries[k].Offset
	m.entries = m.entries[:k]
}

func (m *utModel) dropBefore(i uint64) {
	for m.first < i && len(m.entries) > 0 {
		e := m.entries[0]
		m.startMax = max(m.startMax, e.Time)
		m.firstOff = e.Offset + uint64(e.Count)
		m.entries = m.entries[1:]
		m.first++
	}
}

func (m *utModel) reset(next, off uint64) {
	*m = utNewModel(next)
	m.firstOff, m.nextOff = off, off
}

// runMax is the running maximum time through entry i (which the model holds).
func (m *utModel) runMax(i uint64) int64 {
	r := m.startMax
	for _, e := range m.entries[:i-m.first+1] {
		r = max(r, e.Time)
	}
	return r
}

// searchTime is the index of the first entry whose running maximum time is
// at or after t.
func (m *utModel) searchTime(t int64) (uint64, bool) {
	r := m.startMax
	for k, e := range m.entries {
		r = max(r, e.Time)
		if r >= t {
			return m.first + uint64(k), true
		}
	}
	return 0, false
}

// atOffset is the entry holding record offset off.
func (m *utModel) atOffset(off uint64) (Entry, bool) {
	for _, e := range m.entries {
		if e.Offset <= off && off-e.Offset < uint64(e.Count) {
			return e, true
		}
	}
	return Entry{}, false
}

// utLog is a log under test and its model.
type utLog struct {
	t     testing.TB
	dir   string
	opts  Options
	clock *utClock
	l     *Log
	m     utModel
	gen   int // bumped by truncation and reset, so rewritten indexes get new data
}

// utOpen opens a new log in a fresh directory. Unset options get test
// defaults: logs to t.Log, the fake clock, and a file system whose fsyncs
// are no-ops (the real fsync path has its own case).
func utOpen(t testing.TB, opts Options) *utLog {
	t.Helper()
	h := &utLog{t: t, dir: filepath.Join(t.TempDir(), "log"), clock: utNewClock()}
	if opts.Logger == nil {
		opts.Logger = utLogger(t)
	}
	if opts.Now == nil {
		opts.Now = h.clock.Now
	}
	if opts.FS == nil {
		opts.FS = vfs.NoSync{FS: vfs.OS{}}
	}
	h.opts = opts
	h.m = utNewModel(max(opts.InitialIndex, 1))
	l, err := Open(h.dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	h.l = l
	t.Cleanup(func() {
		if err := h.l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// reopen closes the log and opens it again, and checks that the reopen after
// a clean close found nothing to repair.
func (h *utLog) reopen() {
	h.t.Helper()
	if err := h.l.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	l, err := Open(h.dir, h.opts)
	if err != nil {
		h.t.Fatalf("reopen: %v", err)
	}
	h.l = l
	rep := l.Recovery()
	if rep.TruncatedAt != -1 || rep.DroppedBytes != 0 || rep.DroppedEntries != 0 || rep.IndexRebuilt ||
		len(rep.OrphansRemoved) != 0 || len(rep.Ignored) != 0 {
		h.t.Fatalf("reopen after a clean close repaired something: %+v", rep)
	}
}

// utEntry is a deterministic entry: its data depends on index and gen.
func utEntry(i uint64, gen, size int, count uint32, tm int64) Entry {
	e := Entry{Index: i, Term: uint64(gen) + 1, Type: uint8(i % 5), Time: tm, Count: count}
	if size > 0 {
		e.Data = make([]byte, size)
		for k := range e.Data {
			e.Data[k] = byte(i*7 + uint64(k)*13 + uint64(gen)*101)
		}
	}
	return e
}

// batch builds n entries following the model's last one: 20 bytes of data,
// one record each, time = the clock plus the index. edit may change them.
func (h *utLog) batch(n int, edit func(k int, e *Entry)) []Entry {
	es := make([]Entry, n)
	for k := range es {
		i := h.m.next() + uint64(k)
		es[k] = utEntry(i, h.gen, 20, 1, h.clock.Now().UnixNano()+int64(i))
		if edit != nil {
			edit(k, &es[k])
		}
	}
	return es
}

// mustAppend appends es, checks the offsets Append assigned, and records
// them in the model.
func (h *utLog) mustAppend(es []Entry) {
	h.t.Helper()
	if err := h.l.Append(es); err != nil {
		h.t.Fatalf("Append [%d, +%d): %v", es[0].Index, len(es), err)
	}
	off := h.m.nextOff
	for _, e := range es {
		if e.Offset != off {
			h.t.Fatalf("Append gave entry %d offset %d, want %d", e.Index, e.Offset, off)
		}
		off += uint64(e.Count)
	}
	h.m.add(es)
}

// appendN appends one default batch per size.
func (h *utLog) appendN(sizes ...int) {
	h.t.Helper()
	for _, n := range sizes {
		h.mustAppend(h.batch(n, nil))
	}
}

// utStores lists the store files in dir: base indexes and sizes, ascending.
func utStores(t testing.TB, dir string) ([]uint64, []int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var bases []uint64
	var sizes []int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), storeExt)
		if !ok || len(name) != 20 {
			continue
		}
		b, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			t.Fatalf("store file %s: %v", e.Name(), err)
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, b)
		sizes = append(sizes, fi.Size())
	}
	if n := len(bases); n > 0 {
		sizes[n-1] = utActiveStoreSize(t, filepath.Join(dir, segmentName(bases[n-1])+storeExt))
	}
	return bases, sizes
}

// utActiveStoreSize is the logical size of an active store file: the end
// of its entries, which must be followed by nothing but zeros (the space
// Options.Preallocate reserved).
func utActiveStoreSize(t testing.TB, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < fileHeaderSize {
		return int64(len(b))
	}
	pos := fileHeaderSize
	for pos < len(b) {
		_, n, err := DecodeEntry(b[pos:])
		if err != nil {
			break
		}
		pos += n
	}
	if i := bytes.IndexFunc(b[pos:], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("%s: a non-zero byte at %d after the entries, which end at %d", path, pos+i, pos)
	}
	return int64(pos)
}

// utSatAdd is a+b, or MaxUint64 if that overflows.
func utSatAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func utExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// utSameEntry fails unless got has every field of want.
func utSameEntry(t testing.TB, what string, got, want Entry) {
	t.Helper()
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type || got.Time != want.Time ||
		got.Offset != want.Offset || got.Count != want.Count ||
		!bytes.Equal(got.Extensions, want.Extensions) || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("%s: got entry {index %d term %d type %d time %d offset %d count %d ext %q data %x}, "+
			"want {index %d term %d type %d time %d offset %d count %d ext %q data %x}", what,
			got.Index, got.Term, got.Type, got.Time, got.Offset, got.Count, got.Extensions, got.Data,
			want.Index, want.Term, want.Type, want.Time, want.Offset, want.Count, want.Extensions, want.Data)
	}
}

func utWantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// check compares every observable of the log with the model: bounds, Read of
// every index and ReadOffset/IndexOfOffset of every offset (and a few
// outside), SearchTime at every entry's time and around it, iterators from
// every start, Stats against the files on disk.
func (h *utLog) check(label string) {
	h.t.Helper()
	t, l, m := h.t, h.l, &h.m
	if got := l.FirstIndex(); got != m.first {
		t.Fatalf("%s: FirstIndex = %d, want %d", label, got, m.first)
	}
	if got := l.LastIndex(); got != m.next()-1 {
		t.Fatalf("%s: LastIndex = %d, want %d", label, got, m.next()-1)
	}
	if got := l.FirstOffset(); got != m.firstOff {
		t.Fatalf("%s: FirstOffset = %d, want %d", label, got, m.firstOff)
	}
	if got := l.NextOffset(); got != m.nextOff {
		t.Fatalf("%s: NextOffset = %d, want %d", label, got, m.nextOff)
	}

	lo := uint64(0)
	if m.first > 3 {
		lo = m.first - 3
	}
	for i := lo; i < utSatAdd(m.next(), 3); i++ {
		got, err := l.Read(i)
		if want, ok := m.get(i); ok {
			if err != nil {
				t.Fatalf("%s: Read(%d): %v", label, i, err)
			}
			utSameEntry(t, fmt.Sprintf("%s: Read(%d)", label, i), got, want)
		} else {
			utWantErr(t, fmt.Sprintf("%s: Read(%d) outside [%d, %d)", label, i, m.first, m.next()), err, ErrOutOfRange)
		}
	}

	for _, off := range h.probeOffsets() {
		got, err := l.ReadOffset(off)
		idx, ierr := l.IndexOfOffset(off)
		if want, ok := m.atOffset(off); ok {
			if err != nil || ierr != nil {
				t.Fatalf("%s: ReadOffset(%d): %v; IndexOfOffset: %v", label, off, err, ierr)
			}
			utSameEntry(t, fmt.Sprintf("%s: ReadOffset(%d)", label, off), got, want)
			if idx != want.Index {
				t.Fatalf("%s: IndexOfOffset(%d) = %d, want %d", label, off, idx, want.Index)
			}
		} else {
			utWantErr(t, fmt.Sprintf("%s: ReadOffset(%d) outside [%d, %d)", label, off, m.firstOff, m.nextOff), err, ErrOutOfRange)
			utWantErr(t, fmt.Sprintf("%s: IndexOfOffset(%d)", label, off), ierr, ErrOutOfRange)
		}
	}

	for _, tm := range h.probeTimes() {
		got, err := l.SearchTime(tm)
		if want, ok := m.searchTime(tm); ok {
			if err != nil || got != want {
				t.Fatalf("%s: SearchTime(%d) = %d, %v; want %d", label, tm, got, err, want)
			}
		} else {
			utWantErr(t, fmt.Sprintf("%s: SearchTime(%d) after every entry", label, tm), err, ErrOutOfRange)
		}
	}

	starts := []uint64{m.first, m.next(), utSatAdd(m.next(), 1), m.first + uint64(len(m.entries))/2}
	if len(m.entries) > 1 {
		starts = append(starts, m.next()-1, m.first+1)
	}
	for _, from := range starts {
		h.checkIterator(label, from)
	}
	if m.first > 0 {
		it := l.NewIterator(m.first - 1)
		if it.Next() {
			t.Fatalf("%s: iterator from %d (before FirstIndex) returned entry %d", label, m.first-1, it.Entry().Index)
		}
		utWantErr(t, fmt.Sprintf("%s: iterator from %d (before FirstIndex)", label, m.first-1), it.Err(), ErrOutOfRange)
	}

	bases, sizes := utStores(t, h.dir)
	st := l.Stats()
	var total int64
	for _, s := range sizes {
		total += s
	}
	if st.Segments != len(bases) || st.Bytes != total {
		t.Fatalf("%s: Stats = %+v, the directory holds %d stores of %d bytes", label, st, len(bases), total)
	}
	if len(bases) == 0 || bases[0] != m.first {
		t.Fatalf("%s: store bases %v, want the first to be %d", label, bases, m.first)
	}
	if st.OpenSegments < 1 || st.OpenSegments > l.opts.MaxOpenSegments+1 {
		t.Fatalf("%s: %d open segments, the limit is %d sealed plus the active one", label, st.OpenSegments, l.opts.MaxOpenSegments)
	}
	for k, b := range bases {
		name := filepath.Join(h.dir, segmentName(b))
		if !utExists(name + indexExt) {
			t.Fatalf("%s: segment %d has no index file", label, b)
		}
		if k < len(bases)-1 && !utExists(name+timeExt) {
			t.Fatalf("%s: sealed segment %d has no time index file", label, b)
		}
	}
}

// probeTimes are the times check passes to SearchTime: the extremes, every
// entry's time and its neighbours, and every time in between if the range
// is small.
func (h *utLog) probeTimes() []int64 {
	ts := []int64{math.MinInt64, math.MaxInt64, 0}
	add := func(v int64) {
		ts = append(ts, v)
		if v > math.MinInt64 {
			ts = append(ts, v-1)
		}
		if v < math.MaxInt64 {
			ts = append(ts, v+1)
		}
	}
	add(h.m.startMax)
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, e := range h.m.entries {
		add(e.Time)
		lo, hi = min(lo, e.Time), max(hi, e.Time)
	}
	if lo <= hi && hi-lo >= 0 && hi-lo < 300 {
		for v := lo - 1; v <= hi+1; v++ {
			ts = append(ts, v)
		}
	}
	return ts
}

// probeOffsets are the record offsets check reads: the bounds, every
// entry's first and last record and their neighbours, and every offset if
// the log holds few.
func (h *utLog) probeOffsets() []uint64 {
	m := &h.m
	offs := []uint64{0, math.MaxUint64}
	add := func(v uint64) {
		offs = append(offs, v)
		if v > 0 {
			offs = append(offs, v-1)
		}
		if v < math.MaxUint64 {
			offs = append(offs, v+1)
		}
		if v < math.MaxUint64-1 {
			offs = append(offs, v+2)
		}
	}
	add(m.firstOff)
	add(m.nextOff)
	for _, e := range m.entries {
		add(e.Offset)
		if e.Count > 0 {
			add(e.Offset + uint64(e.Count) - 1)
		}
	}
	if m.nextOff-m.firstOff < 2000 {
		for off := m.firstOff; off < m.nextOff; off++ {
			offs = append(offs, off)
		}
	}
	return offs
}

// checkIterator iterates from from to the end and compares with the model.
func (h *utLog) checkIterator(label string, from uint64) {
	h.t.Helper()
	t := h.t
	it := h.l.NewIterator(from)
	want := from
	for it.Next() {
		e := it.Entry()
		w, ok := h.m.get(want)
		if !ok {
			t.Fatalf("%s: iterator from %d returned entry %d beyond the log [%d, %d)", label, from, e.Index, h.m.first, h.m.next())
		}
		utSameEntry(t, fmt.Sprintf("%s: iterator from %d", label, from), e, w)
		want++
		if it.Index() != want {
			t.Fatalf("%s: iterator Index = %d after entry %d", label, it.Index(), want-1)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatalf("%s: iterator from %d: %v", label, from, err)
	}
	if end := max(from, h.m.next()); want != end {
		t.Fatalf("%s: iterator from %d stopped at %d, want %d", label, from, want, end)
	}
	if it.Next() {
		t.Fatalf("%s: iterator from %d returned entry %d after the end", label, from, it.Entry().Index)
	}
}

// cycle checks, closes and reopens the log, and checks again.
func (h *utLog) cycle(label string) {
	h.t.Helper()
	h.check(label)
	h.reopen()
	h.check(label + " (reopened)")
}

// wantBases fails unless the directory's store bases are want.
func (h *utLog) wantBases(label string, want ...uint64) {
	h.t.Helper()
	if got, _ := utStores(h.t, h.dir); !slices.Equal(got, want) {
		h.t.Fatalf("%s: segments start at %v, want %v", label, got, want)
	}
}

func TestUnitEmptyLog(t *testing.T) {
	cases := []struct {
		name  string
		opts  Options
		first uint64
	}{
		{"default initial index", Options{}, 1},
		{"initial index 1000", Options{InitialIndex: 1000}, 1000},
		{"real fsync", Options{FS: vfs.OS{}}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, tc.opts)
			for round := range 2 {
				l := h.l
				if l.FirstIndex() != tc.first || l.LastIndex() != tc.first-1 || l.FirstOffset() != 0 || l.NextOffset() != 0 {
					t.Fatalf("round %d: bounds first %d last %d first offset %d next offset %d; want %d, %d, 0, 0",
						round, l.FirstIndex(), l.LastIndex(), l.FirstOffset(), l.NextOffset(), tc.first, tc.first-1)
				}
				for _, i := range []uint64{0, tc.first - 1, tc.first, tc.first + 1} {
					_, err := l.Read(i)
					utWantErr(t, fmt.Sprintf("Read(%d)", i), err, ErrOutOfRange)
				}
				for _, off := range []uint64{0, 1, math.MaxUint64} {
					_, err := l.ReadOffset(off)
					utWantErr(t, fmt.Sprintf("ReadOffset(%d)", off), err, ErrOutOfRange)
				}
				for _, tm := range []int64{math.MinInt64, 0, math.MaxInt64} {
					_, err := l.SearchTime(tm)
					utWantErr(t, fmt.Sprintf("SearchTime(%d)", tm), err, ErrOutOfRange)
				}
				it := l.NewIterator(tc.first)
				if it.Next() || it.Err() != nil {
					t.Fatalf("iterator over an empty log: Next true or error %v", it.Err())
				}
				if st := l.Stats(); st.Segments != 1 || st.Bytes != fileHeaderSize {
					t.Fatalf("Stats of an empty log = %+v, want one segment of %d bytes", st, fileHeaderSize)
				}
				h.check(fmt.Sprintf("round %d", round))
				h.reopen()
			}
			h.wantBases("empty", tc.first)
		})
	}
}

func TestUnitAppendAndRead(t *testing.T) {
	withExt := func(k int, e *Entry) { e.Extensions = []byte(fmt.Sprintf("ext-%d", e.Index)) }
	cases := []struct {
		name  string
		opts  Options
		steps []func(h *utLog)
	}{
		{"one entry", Options{}, []func(h *utLog){
			func(h *utLog) { h.appendN(1) },
		}},
		{"one entry with real fsync", Options{FS: vfs.OS{}}, []func(h *utLog){
			func(h *utLog) { h.appendN(1) },
			func(h *utLog) { h.appendN(2) },
		}},
		{"batches of many sizes", Options{}, []func(h *utLog){
			func(h *utLog) { h.appendN(1, 2, 3) },
			func(h *utLog) { h.appendN(7, 1) },
			func(h *utLog) { h.appendN(16) },
		}},
		{"extensions, empty data, zero counts, many records", Options{}, []func(h *utLog){
			func(h *utLog) { h.mustAppend(h.batch(3, withExt)) },
			func(h *utLog) {
				h.mustAppend(h.batch(4, func(k int, e *Entry) {
					e.Data = nil
					e.Count = uint32(k * 1000)
				}))
			},
			func(h *utLog) {
				h.mustAppend(h.batch(2, func(k int, e *Entry) {
					e.Extensions = []byte{1, 2, 3}
					e.Data = nil
					e.Count = math.MaxUint32
					e.Term = math.MaxUint64
					e.Type = math.MaxUint8
					e.Time = math.MinInt64 + int64(k)
				}))
			},
		}},
		{"entry at the size limit", Options{MaxEntryBytes: 1000, MaxSegmentBytes: 4096}, []func(h *utLog){
			func(h *utLog) {
				h.mustAppend(h.batch(2, func(k int, e *Entry) {
					e.Extensions = make([]byte, 400*k)
					e.Data = bytes.Repeat([]byte{byte(k + 1)}, 1000-400*k)
				}))
			},
			func(h *utLog) { h.appendN(3) },
		}},
		{"large entries across chunk reads", Options{}, []func(h *utLog){
			func(h *utLog) {
				h.mustAppend(h.batch(3, func(k int, e *Entry) {
					if k == 1 {
						e.Data = bytes.Repeat([]byte("big"), 120<<10) // 360 KiB: bigger than a read chunk
					}
				}))
			},
			func(h *utLog) { h.appendN(200) },
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, tc.opts)
			for k, step := range tc.steps {
				step(h)
				h.cycle(fmt.Sprintf("after step %d", k))
			}
		})
	}
}

func TestUnitRollOver(t *testing.T) {
	// Entries of 20 data bytes are 76 bytes stored: three fill a segment
	// of 64 + 3*76 bytes exactly.
	exact := int64(fileHeaderSize + 3*(entryHeaderSize+20))
	cases := []struct {
		name      string
		opts      Options
		steps     []func(h *utLog)
		wantBases []uint64
	}{
		{"by bytes, one entry at a time", Options{MaxSegmentBytes: exact}, []func(h *utLog){
			func(h *utLog) { h.appendN(1, 1, 1) },
			func(h *utLog) { h.appendN(1) },
			func(h *utLog) { h.appendN(1, 1, 1, 1) },
		}, []uint64{1, 4, 7}},
		{"by bytes, a batch does not split", Options{MaxSegmentBytes: exact}, []func(h *utLog){
			func(h *utLog) { h.appendN(2) },
			func(h *utLog) { h.appendN(2) }, // 4 entries do not fit: rolls
			func(h *utLog) { h.appendN(1, 1) },
		}, []uint64{1, 3, 6}},
		{"by bytes, an oversized batch gets a segment of its own", Options{MaxSegmentBytes: exact}, []func(h *utLog){
			func(h *utLog) { h.appendN(1) },
			func(h *utLog) { h.appendN(5) },
			func(h *utLog) { h.appendN(1) },
			func(h *utLog) { h.appendN(7) },
		}, []uint64{1, 2, 7, 8}},
		{"by entries", Options{MaxSegmentEntries: 4}, []func(h *utLog){
			func(h *utLog) { h.appendN(1, 1, 1, 1) },
			func(h *utLog) { h.appendN(1) },
			func(h *utLog) { h.appendN(3, 3) },
			func(h *utLog) { h.appendN(4) },
		}, []uint64{1, 5, 9, 12}},
		{"by age", Options{MaxSegmentAge: time.Minute}, []func(h *utLog){
			func(h *utLog) {
				h.clock.Advance(2 * time.Minute)
				h.appendN(1) // the segment is old but empty: no roll
			},
			func(h *utLog) { h.appendN(1) }, // rolls: created two minutes ago
			func(h *utLog) {
				h.clock.Advance(59 * time.Second)
				h.appendN(1)
			},
			func(h *utLog) {
				h.clock.Advance(time.Second)
				h.appendN(2)
			},
			func(h *utLog) {
				h.clock.Advance(30 * time.Second)
				h.appendN(1)
			},
			func(h *utLog) {
				h.clock.Advance(30 * time.Second) // the age survived the reopen
				h.appendN(1)
			},
		}, []uint64{1, 2, 4, 7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, tc.opts)
			for k, step := range tc.steps {
				step(h)
				h.cycle(fmt.Sprintf("after step %d", k))
			}
			h.wantBases("end", tc.wantBases...)
		})
	}
}

func TestUnitAppendValidation(t *testing.T) {
	cases := []struct {
		name    string
		batch   func(h *utLog) []Entry
		wantErr error
	}{
		{"nil batch", func(h *utLog) []Entry { return nil }, ErrInvalidBatch},
		{"empty batch", func(h *utLog) []Entry { return []Entry{} }, ErrInvalidBatch},
		{"first index repeats the last", func(h *utLog) []Entry {
			es := h.batch(2, nil)
			es[0].Index, es[1].Index = h.m.next()-1, h.m.next()
			return es
		}, ErrInvalidBatch},
		{"first index leaves a gap", func(h *utLog) []Entry {
			return []Entry{utEntry(h.m.next()+1, 0, 5, 1, 0)}
		}, ErrInvalidBatch},
		{"index 0", func(h *utLog) []Entry { return []Entry{utEntry(0, 0, 5, 1, 0)} }, ErrInvalidBatch},
		{"gap inside the batch", func(h *utLog) []Entry {
			es := h.batch(3, nil)
			es[2].Index++
			return es
		}, ErrInvalidBatch},
		{"indexes go back inside the batch", func(h *utLog) []Entry {
			es := h.batch(3, nil)
			es[2].Index = es[1].Index
			return es
		}, ErrInvalidBatch},
		{"data over the entry limit", func(h *utLog) []Entry {
			return h.batch(2, func(k int, e *Entry) {
				if k == 1 {
					e.Data = make([]byte, 101)
				}
			})
		}, ErrEntryTooLarge},
		{"data and extensions over the entry limit", func(h *utLog) []Entry {
			return h.batch(1, func(k int, e *Entry) {
				e.Extensions, e.Data = make([]byte, 50), make([]byte, 51)
			})
		}, ErrEntryTooLarge},
		{"more entries than a segment holds", func(h *utLog) []Entry { return h.batch(5, nil) }, ErrInvalidBatch},
		{"valid: data exactly at the entry limit", func(h *utLog) []Entry {
			return h.batch(2, func(k int, e *Entry) { e.Extensions, e.Data = make([]byte, 10*k), make([]byte, 100-10*k) })
		}, nil},
		{"valid: record counts at their maximum", func(h *utLog) []Entry {
			return h.batch(2, func(k int, e *Entry) { e.Count = math.MaxUint32 })
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{MaxSegmentEntries: 4, MaxEntryBytes: 100, MaxSegmentBytes: 4096})
			h.appendN(3, 2)
			h.check("before")
			b := tc.batch(h)
			err := h.l.Append(b)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				h.m.add(b)
				h.cycle("after a valid append")
				return
			}
			utWantErr(t, "Append", err, tc.wantErr)
			h.cycle("after the rejected append")
			h.appendN(1, 4) // a valid batch still goes in
			h.cycle("after a valid append")
		})
	}
	t.Run("offset overflow from a high base", func(t *testing.T) {
		h := utOpen(t, Options{})
		if err := h.l.Reset(5, math.MaxUint64-10); err != nil {
			t.Fatal(err)
		}
		h.m.reset(5, math.MaxUint64-10)
		err := h.l.Append(h.batch(2, func(k int, e *Entry) { e.Count = 6 }))
		utWantErr(t, "Append overflowing the offset", err, ErrInvalidBatch)
		h.cycle("after the rejected append")
		h.mustAppend(h.batch(2, func(k int, e *Entry) { e.Count = 5 }))
		h.cycle("after filling the offset space")
	})
}

// utBuild appends batches of two entries of 20 bytes with record counts
// index%3, to a log of 4 entries per segment: segments [1-4] [5-8] [9-12]
// and the active [13-14] with the default 7 batches.
func utBuild(h *utLog, batches int) {
	h.t.Helper()
	for range batches {
		h.mustAppend(h.batch(2, func(k int, e *Entry) { e.Count = uint32(e.Index % 3) }))
		h.clock.Advance(10 * time.Second)
	}
}

func TestUnitReadOffset(t *testing.T) {
	cases := []struct {
		name   string
		counts [][]uint32 // per batch; two entries a segment
		spot   map[uint64]uint64
	}{
		{"zero counts mixed in", [][]uint32{{0, 2}, {0, 0}, {3, 0}, {1}, {0}}, map[uint64]uint64{0: 2, 1: 2, 2: 5, 4: 5, 5: 7}},
		{"segments without records in the middle", [][]uint32{{1, 1}, {0, 0}, {0, 0}, {2, 2}, {0, 0}}, map[uint64]uint64{1: 2, 2: 7, 5: 8}},
		{"leading segments without records", [][]uint32{{0, 0}, {0, 0}, {0, 4}}, map[uint64]uint64{0: 6, 3: 6}},
		{"trailing entries without records", [][]uint32{{5}, {0}, {0, 0}, {0}}, map[uint64]uint64{4: 1}},
		{"no records at all", [][]uint32{{0, 0}, {0, 0}, {0}}, nil},
		{"one record per entry", [][]uint32{{1, 1}, {1, 1}, {1}}, map[uint64]uint64{0: 1, 4: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{MaxSegmentEntries: 2})
			for k, counts := range tc.counts {
				h.mustAppend(h.batch(len(counts), func(j int, e *Entry) { e.Count = counts[j] }))
				h.cycle(fmt.Sprintf("after batch %d", k))
			}
			for off, idx := range tc.spot {
				e, err := h.l.ReadOffset(off)
				if err != nil || e.Index != idx {
					t.Fatalf("ReadOffset(%d) = entry %d, %v; want entry %d", off, e.Index, err, idx)
				}
			}
		})
	}
}

func TestUnitSearchTime(t *testing.T) {
	cases := []struct {
		name     string
		times    []int64
		interval int
		spot     map[int64]uint64 // time -> index; 0 means out of range
	}{
		{"increasing", []int64{10, 20, 30, 40, 50, 60, 70}, 1, map[int64]uint64{5: 1, 10: 1, 11: 2, 70: 7, 71: 0}},
		{"non-monotonic", []int64{10, 50, 20, 30, 60, 40, 5, 55}, 1, map[int64]uint64{20: 2, 50: 2, 51: 5, 55: 5, 60: 5, 61: 0, 9: 1}},
		{"non-monotonic, sparse time index", []int64{10, 50, 20, 30, 60, 40, 5, 55}, 200, map[int64]uint64{20: 2, 51: 5, 61: 0}},
		{"non-monotonic, default time index", []int64{10, 50, 20, 30, 60, 40, 5, 55, 70, 1}, 0, map[int64]uint64{51: 5, 65: 9, 71: 0}},
		{"all equal", []int64{7, 7, 7, 7, 7}, 1, map[int64]uint64{6: 1, 7: 1, 8: 0}},
		{"steps back across segments", []int64{100, 90, 80, 70, 60, 110}, 1, map[int64]uint64{95: 1, 100: 1, 101: 6}},
		{"negative times", []int64{-50, -40, -45, -10, -20}, 1, map[int64]uint64{-100: 1, -42: 2, -15: 4, -10: 4, -9: 0}},
		{"extreme times", []int64{math.MinInt64, math.MinInt64, 0, math.MaxInt64, 5}, 1, map[int64]uint64{math.MinInt64: 1, math.MinInt64 + 1: 3, 1: 4, math.MaxInt64: 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{MaxSegmentEntries: 3, TimeIndexInterval: tc.interval})
			for k, tm := range tc.times {
				h.mustAppend(h.batch(1, func(_ int, e *Entry) { e.Time = tm }))
				if k%3 == 2 {
					h.cycle(fmt.Sprintf("after entry %d", k+1))
				}
			}
			h.cycle("all appended")
			for tm, want := range tc.spot {
				got, err := h.l.SearchTime(tm)
				if want == 0 {
					utWantErr(t, fmt.Sprintf("SearchTime(%d)", tm), err, ErrOutOfRange)
				} else if err != nil || got != want {
					t.Fatalf("SearchTime(%d) = %d, %v; want %d", tm, got, err, want)
				}
			}
			// Deleting the head keeps the running maximum of what was deleted.
			if _, err := h.l.DeleteBefore(4); err != nil {
				t.Fatal(err)
			}
			h.m.dropBefore(4)
			h.cycle("after deleting the first segment")
		})
	}
}

func TestUnitIterator(t *testing.T) {
	t.Run("every start over many segments", func(t *testing.T) {
		h := utOpen(t, Options{MaxSegmentEntries: 3})
		h.appendN(1, 2, 3, 1, 1, 2)
		for from := uint64(0); from <= h.m.next()+1; from++ {
			if from < h.m.first {
				it := h.l.NewIterator(from)
				if it.Next() {
					t.Fatalf("iterator from %d returned entry %d", from, it.Entry().Index)
				}
				utWantErr(t, fmt.Sprintf("iterator from %d", from), it.Err(), ErrOutOfRange)
				continue
			}
			h.checkIterator("many segments", from)
		}
	})
	cases := []struct {
		name  string
		opts  Options
		sizes []int // data size of the entries appended one batch at a time
	}{
		{"small entries, rolling by entries", Options{MaxSegmentEntries: 3}, []int{10, 0, 30, 10, 10, 5, 7, 9, 100, 3}},
		{"entries larger than a read chunk", Options{MaxSegmentBytes: 1 << 20}, []int{10, 300 << 10, 20, 400 << 10, 5, 260 << 10, 1}},
	}
	for _, tc := range cases {
		t.Run("catches up: "+tc.name, func(t *testing.T) {
			h := utOpen(t, tc.opts)
			it := h.l.NewIterator(1)
			if it.Next() || it.Err() != nil {
				t.Fatalf("iterator over an empty log: %v", it.Err())
			}
			for k, size := range tc.sizes {
				// Append one or two batches, then drain: the iterator
				// must return exactly the new entries, in order, with
				// their data.
				n := 1 + k%2
				h.mustAppend(h.batch(n, func(_ int, e *Entry) { e.Data = utEntry(e.Index, 0, size, 1, 0).Data }))
				for range n {
					if !it.Next() {
						t.Fatalf("after append %d: iterator stopped at %d: %v", k, it.Index(), it.Err())
					}
					want, _ := h.m.get(it.Entry().Index)
					utSameEntry(t, fmt.Sprintf("after append %d", k), it.Entry(), want)
				}
				if it.Next() || it.Err() != nil {
					t.Fatalf("after append %d: iterator went past the end (error %v)", k, it.Err())
				}
				if it.Index() != h.m.next() {
					t.Fatalf("iterator Index = %d at the end, want %d", it.Index(), h.m.next())
				}
			}
			h.cycle("all appended")
		})
	}
}

func TestUnitTruncateFrom(t *testing.T) {
	// utBuild(h, 7): segments [1-4] [5-8] [9-12] [13-14], batches of two.
	cases := []struct {
		name      string
		pre       func(h *utLog)
		from      uint64
		wantBases []uint64
	}{
		{"active segment, mid-batch", nil, 14, []uint64{1, 5, 9, 13}},
		{"active segment, at its base", nil, 13, []uint64{1, 5, 9, 13}},
		{"earlier segment, mid-batch", nil, 6, []uint64{1, 5}},
		{"earlier segment, at a batch end", nil, 7, []uint64{1, 5}},
		{"earlier segment, at its base", nil, 5, []uint64{1, 5}},
		{"first segment, mid-batch", nil, 2, []uint64{1}},
		{"at FirstIndex", nil, 1, []uint64{1}},
		{"below FirstIndex after retention", func(h *utLog) {
			if _, err := h.l.DeleteBefore(5); err != nil {
				h.t.Fatal(err)
			}
			h.m.dropBefore(5)
		}, 2, []uint64{5}},
		{"at FirstIndex after retention", func(h *utLog) {
			if _, err := h.l.DeleteBefore(9); err != nil {
				h.t.Fatal(err)
			}
			h.m.dropBefore(9)
		}, 9, []uint64{9}},
		{"just beyond LastIndex", nil, 15, []uint64{1, 5, 9, 13}},
		{"far beyond LastIndex", nil, math.MaxUint64, []uint64{1, 5, 9, 13}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{MaxSegmentEntries: 4})
			utBuild(h, 7)
			if tc.pre != nil {
				tc.pre(h)
			}
			h.check("before")
			if err := h.l.TruncateFrom(tc.from); err != nil {
				t.Fatalf("TruncateFrom(%d): %v", tc.from, err)
			}
			h.m.truncateFrom(tc.from)
			h.gen++
			h.wantBases("after truncation", tc.wantBases...)
			if want := max(min(tc.from, 15), h.m.first) - 1; h.l.LastIndex() != want {
				t.Fatalf("LastIndex = %d after TruncateFrom(%d), want %d", h.l.LastIndex(), tc.from, want)
			}
			h.cycle("after truncation")
			// Appends continue at the cut, with the cut's offset.
			utBuild(h, 3)
			h.cycle("after appending again")
		})
	}
}

func TestUnitDeleteBefore(t *testing.T) {
	// utBuild(h, 7): segments [1-4] [5-8] [9-12] [13-14].
	cases := []struct {
		name      string
		steps     []uint64 // DeleteBefore arguments, in order
		wantN     []int
		wantFirst uint64
	}{
		{"nothing below the first index", []uint64{0, 1}, []int{0, 0}, 1},
		{"inside the first segment", []uint64{4}, []int{0}, 1},
		{"exactly the first segment", []uint64{5}, []int{1}, 5},
		{"one segment at a time", []uint64{5, 7, 9, 13}, []int{1, 0, 1, 1}, 13},
		{"everything: the active segment stays", []uint64{100}, []int{3}, 13},
		{"twice", []uint64{math.MaxUint64, math.MaxUint64}, []int{3, 0}, 13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{MaxSegmentEntries: 4})
			utBuild(h, 7)
			for k, i := range tc.steps {
				n, err := h.l.DeleteBefore(i)
				if err != nil || n != tc.wantN[k] {
					t.Fatalf("DeleteBefore(%d) = %d, %v; want %d", i, n, err, tc.wantN[k])
				}
				bases, _ := utStores(t, h.dir)
				h.m.dropBefore(bases[0])
				h.cycle(fmt.Sprintf("after DeleteBefore(%d)", i))
			}
			if h.l.FirstIndex() != tc.wantFirst {
				t.Fatalf("FirstIndex = %d, want %d", h.l.FirstIndex(), tc.wantFirst)
			}
			utBuild(h, 3)
			h.cycle("after appending again")
		})
	}
	t.Run("a log emptied by truncation", func(t *testing.T) {
		h := utOpen(t, Options{MaxSegmentEntries: 4})
		utBuild(h, 7)
		if err := h.l.TruncateFrom(13); err != nil {
			t.Fatal(err)
		}
		h.m.truncateFrom(13)
		n, err := h.l.DeleteBefore(13)
		if err != nil || n != 3 {
			t.Fatalf("DeleteBefore(13) = %d, %v; want 3", n, err)
		}
		h.m.dropBefore(13)
		if h.l.FirstIndex() != 13 || h.l.LastIndex() != 12 || h.l.FirstOffset() != h.l.NextOffset() {
			t.Fatalf("bounds of the emptied log: first %d last %d offsets [%d, %d)",
				h.l.FirstIndex(), h.l.LastIndex(), h.l.FirstOffset(), h.l.NextOffset())
		}
		h.cycle("emptied")
		utBuild(h, 1)
		h.cycle("after appending again")
	})
}

// utExpectRetention simulates retention over the files on disk and the
// model's times: it returns how many segments and bytes must go.
func (h *utLog) utExpectRetention(retBytes int64, retAge time.Duration) (int, int64) {
	bases, sizes := utStores(h.t, h.dir)
	var total int64
	for _, s := range sizes {
		total += s
	}
	cutoff := int64(math.MinInt64)
	if retAge > 0 {
		cutoff = h.clock.Now().Add(-retAge).UnixNano()
	}
	n, freed := 0, int64(0)
	for n < len(bases)-1 {
		newest := h.m.runMax(bases[n+1] - 1)
		if !(retBytes > 0 && total > retBytes) && !(newest < cutoff) {
			break
		}
		total -= sizes[n]
		freed += sizes[n]
		n++
	}
	return n, freed
}

func TestUnitApplyRetention(t *testing.T) {
	// utBuild(h, 9): segments [1-4] [5-8] [9-12] [13-16] [17-18], stores
	// of 368 bytes (sealed) and 216 (active); batch b's entries have
	// times t0 + 10s*b + index ns.
	cases := []struct {
		name      string
		retBytes  int64
		retAge    time.Duration
		advance   time.Duration
		wantN     int
		wantFirst uint64
	}{
		{"no limits", 0, 0, 0, 0, 1},
		{"bytes: all fit", 4096, 0, 0, 0, 1},
		{"bytes: exactly fit", 4*368 + 216, 0, 0, 0, 1},
		{"bytes: one byte too many", 4*368 + 215, 0, 0, 1, 5},
		{"bytes: two segments", 1000, 0, 0, 2, 9},
		{"bytes: down to the active segment", 1, 0, 0, 4, 17},
		{"age: nothing old enough", 0, time.Hour, 0, 0, 1},
		{"age: the first two segments", 0, 55 * time.Second, 0, 2, 9},
		{"age: newest entry exactly at the cutoff stays", 0, 80*time.Second - 4, 0, 0, 1},
		{"age: newest entry just before the cutoff goes", 0, 80*time.Second - 5, 0, 1, 5},
		{"age: all sealed, never the active", 0, time.Second, time.Hour, 4, 17},
		{"bytes and age together", 1500, 70 * time.Second, 0, 1, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{MaxSegmentEntries: 4, RetentionBytes: tc.retBytes, RetentionAge: tc.retAge})
			utBuild(h, 9)
			h.clock.Advance(tc.advance)
			h.check("before")
			wantN, wantBytes := h.utExpectRetention(tc.retBytes, tc.retAge)
			if wantN != tc.wantN {
				t.Fatalf("the test's own simulation expects %d segments to go, the table says %d", wantN, tc.wantN)
			}
			res, err := h.l.ApplyRetention()
			if err != nil || res.Segments != wantN || res.Bytes != wantBytes {
				t.Fatalf("ApplyRetention = %+v, %v; want %d segments, %d bytes", res, err, wantN, wantBytes)
			}
			h.m.dropBefore(tc.wantFirst)
			if h.l.FirstIndex() != tc.wantFirst {
				t.Fatalf("FirstIndex = %d, want %d", h.l.FirstIndex(), tc.wantFirst)
			}
			h.cycle("after retention")
			if res, err := h.l.ApplyRetention(); err != nil || res.Segments != 0 {
				t.Fatalf("second ApplyRetention = %+v, %v; want nothing deleted", res, err)
			}
			utBuild(h, 2)
			h.cycle("after appending again")
		})
	}
}

func TestUnitReset(t *testing.T) {
	cases := []struct {
		name      string
		nextIndex uint64
		nextOff   uint64
	}{
		{"back to the start", 1, 0},
		{"far ahead", 1000, 5000},
		{"where the log ended", 15, 0}, // offset fixed below
		{"behind the log", 3, 2},
		{"the top of the offset space", 7, math.MaxUint64 - 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{MaxSegmentEntries: 4})
			utBuild(h, 7)
			off := tc.nextOff
			if tc.nextIndex == 15 {
				off = h.m.nextOff
			}
			if err := h.l.Reset(tc.nextIndex, off); err != nil {
				t.Fatalf("Reset(%d, %d): %v", tc.nextIndex, off, err)
			}
			h.m.reset(tc.nextIndex, off)
			h.gen++
			h.wantBases("after reset", tc.nextIndex)
			ents, err := os.ReadDir(h.dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				if e.Name() != lockName {
					names = append(names, e.Name())
				}
			}
			if want := []string{segmentName(tc.nextIndex) + indexExt, segmentName(tc.nextIndex) + storeExt}; !slices.Equal(names, want) {
				t.Fatalf("after Reset the directory holds %v, want %v", names, want)
			}
			h.cycle("after reset")
			utBuild(h, 3)
			h.cycle("after appending")
		})
	}
	t.Run("index 0 is refused", func(t *testing.T) {
		h := utOpen(t, Options{MaxSegmentEntries: 4})
		utBuild(h, 3)
		utWantErr(t, "Reset(0, 0)", h.l.Reset(0, 0), ErrInvalidBatch)
		h.cycle("after the refused reset")
	})
}

func TestUnitInitialIndex(t *testing.T) {
	h := utOpen(t, Options{InitialIndex: 42, MaxSegmentEntries: 2})
	utWantErr(t, "Append at index 1", h.l.Append([]Entry{utEntry(1, 0, 3, 1, 0)}), ErrInvalidBatch)
	h.appendN(1, 2, 1)
	h.cycle("appended from 42")
	h.wantBases("appended from 42", 42, 43, 45)
	// The option only applies to a new log.
	h.opts.InitialIndex = 7
	h.reopen()
	h.check("reopened with another initial index")
}

func TestUnitOptionsValidation(t *testing.T) {
	cases := []struct {
		name string
		opts Options
	}{
		{"unknown sync policy", Options{Sync: SyncPolicy(7)}},
		{"negative sync policy", Options{Sync: -1}},
		{"segment smaller than a header and an entry", Options{MaxSegmentBytes: fileHeaderSize + entryHeaderSize - 1}},
		{"negative segment size", Options{MaxSegmentBytes: -1}},
		{"negative segment entries", Options{MaxSegmentEntries: -1}},
		{"too many segment entries", Options{MaxSegmentEntries: 1<<28 + 1}},
		{"negative entry size", Options{MaxEntryBytes: -1}},
		{"entry size over the format limit", Options{MaxEntryBytes: 1<<30 + 1, MaxSegmentBytes: 1 << 31}},
		{"entry larger than a segment", Options{MaxEntryBytes: 4097, MaxSegmentBytes: 4096}},
		{"negative time index interval", Options{TimeIndexInterval: -1}},
		{"negative open segments", Options{MaxOpenSegments: -1}},
		{"negative segment age", Options{MaxSegmentAge: -time.Second}},
		{"negative retention age", Options{RetentionAge: -time.Second}},
		{"negative retention bytes", Options{RetentionBytes: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			l, err := Open(dir, tc.opts)
			if err == nil {
				l.Close()
				t.Fatalf("Open accepted %+v", tc.opts)
			}
			utWantErr(t, "Open", err, ErrInvalidOptions)
			if utExists(dir) {
				t.Fatalf("Open created %s despite invalid options", dir)
			}
		})
	}
	t.Run("smallest valid values", func(t *testing.T) {
		h := utOpen(t, Options{MaxSegmentBytes: fileHeaderSize + entryHeaderSize, MaxSegmentEntries: 1,
			MaxEntryBytes: 0, TimeIndexInterval: 1, MaxOpenSegments: 1})
		h.mustAppend(h.batch(1, func(_ int, e *Entry) { e.Data = nil }))
		h.mustAppend(h.batch(1, func(_ int, e *Entry) { e.Data = []byte("x") }))
		h.wantBases("smallest", 1, 2)
		h.cycle("smallest")
	})
}

func TestUnitParseSyncPolicy(t *testing.T) {
	cases := []struct {
		in      string
		want    SyncPolicy
		wantErr bool
	}{
		{"always", SyncAlways, false},
		{"none", SyncNone, false},
		{" Always\n", SyncAlways, false},
		{"NONE", SyncNone, false},
		{"", 0, true},
		{"sometimes", 0, true},
		{"always,none", 0, true},
	}
	for _, tc := range cases {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			got, err := ParseSyncPolicy(tc.in)
			if tc.wantErr {
				utWantErr(t, "ParseSyncPolicy", err, ErrInvalidOptions)
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSyncPolicy(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if back, err := ParseSyncPolicy(got.String()); err != nil || back != got {
				t.Fatalf("ParseSyncPolicy(%q.String()) = %v, %v", got, back, err)
			}
		})
	}
	if s := SyncPolicy(9).String(); !strings.Contains(s, "9") {
		t.Fatalf("SyncPolicy(9).String() = %q", s)
	}
}

func TestUnitClose(t *testing.T) {
	h := utOpen(t, Options{MaxSegmentEntries: 2})
	h.appendN(2, 2, 1)
	if _, err := h.l.Read(1); err != nil { // opens a sealed segment
		t.Fatal(err)
	}
	it := h.l.NewIterator(1)
	l := h.l
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for k := range 2 {
		if err := l.Close(); err != nil {
			t.Fatalf("Close again (%d): %v", k, err)
		}
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { return l.Append(h.batch(1, nil)) }},
		{"Read", func() error { _, err := l.Read(1); return err }},
		{"ReadOffset", func() error { _, err := l.ReadOffset(0); return err }},
		{"IndexOfOffset", func() error { _, err := l.IndexOfOffset(0); return err }},
		{"SearchTime", func() error { _, err := l.SearchTime(0); return err }},
		{"TruncateFrom", func() error { return l.TruncateFrom(2) }},
		{"DeleteBefore", func() error { _, err := l.DeleteBefore(3); return err }},
		{"ApplyRetention", func() error { _, err := l.ApplyRetention(); return err }},
		{"Reset", func() error { return l.Reset(1, 0) }},
		{"Iterator", func() error {
			if it.Next() {
				return fmt.Errorf("iterator returned entry %d", it.Entry().Index)
			}
			return it.Err()
		}},
		{"new Iterator", func() error {
			it := l.NewIterator(1)
			if it.Next() {
				return fmt.Errorf("iterator returned entry %d", it.Entry().Index)
			}
			return it.Err()
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			utWantErr(t, c.name+" after Close", c.call(), ErrClosed)
		})
	}
	// Nothing was changed by the calls after Close.
	l2, err := Open(h.dir, h.opts)
	if err != nil {
		t.Fatal(err)
	}
	h.l = l2
	h.check("reopened after Close")
}

func TestUnitAppendRejectsIndexOverflow(t *testing.T) {
	cases := []struct {
		name    string
		next    uint64
		n       int
		wantErr bool
	}{
		{"last usable index", math.MaxUint64 - 1, 1, false},
		{"index MaxUint64", math.MaxUint64, 1, true},
		{"batch running into MaxUint64", math.MaxUint64 - 2, 3, true},
		{"batch ending just below MaxUint64", math.MaxUint64 - 2, 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{})
			if err := h.l.Reset(tc.next, 7); err != nil {
				t.Fatal(err)
			}
			h.m.reset(tc.next, 7)
			err := h.l.Append(h.batch(tc.n, nil))
			if tc.wantErr {
				utWantErr(t, "Append", err, ErrInvalidBatch)
			} else if err != nil {
				t.Fatalf("Append: %v", err)
			} else {
				h.m.add(h.batch(tc.n, nil))
			}
			h.cycle("after append")
		})
	}
}

// utBatchEnds reads every store in dir and returns, by entry index, whether
// the entry carries the batch-end flag.
func utBatchEnds(t testing.TB, dir string) map[uint64]bool {
	t.Helper()
	ends := map[uint64]bool{}
	bases, sizes := utStores(t, dir)
	for k, b := range bases {
		store, err := os.ReadFile(filepath.Join(dir, segmentName(b)+storeExt))
		if err != nil {
			t.Fatal(err)
		}
		store = store[:sizes[k]]
		for pos := fileHeaderSize; pos < len(store); {
			e, n, err := DecodeEntry(store[pos:])
			if err != nil {
				t.Fatalf("store %d at %d: %v", b, pos, err)
			}
			ends[e.Index] = store[pos+12]&flagBatchEnd != 0
			pos += n
		}
	}
	return ends
}

func TestUnitBatchEndFlagOnDisk(t *testing.T) {
	cases := []struct {
		name     string
		batches  []int
		truncate uint64 // 0: none
		wantEnds []uint64
	}{
		{"single entries", []int{1, 1, 1}, 0, []uint64{1, 2, 3}},
		{"batches", []int{3, 1, 2}, 0, []uint64{3, 4, 6}},
		{"batches across segments", []int{2, 3, 3, 1}, 0, []uint64{2, 5, 8, 9}},
		{"truncated mid-batch", []int{3, 3}, 5, []uint64{3, 4}},
		{"truncated mid-batch in an earlier segment", []int{3, 3, 3}, 2, []uint64{1}},
		{"truncated at a batch end", []int{3, 3}, 4, []uint64{3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{MaxSegmentEntries: 4})
			h.appendN(tc.batches...)
			if tc.truncate != 0 {
				if err := h.l.TruncateFrom(tc.truncate); err != nil {
					t.Fatal(err)
				}
				h.m.truncateFrom(tc.truncate)
			}
			h.cycle("written")
			ends := utBatchEnds(t, h.dir)
			if len(ends) != len(h.m.entries) {
				t.Fatalf("the stores hold %d entries, want %d", len(ends), len(h.m.entries))
			}
			for i, end := range ends {
				if want := slices.Contains(tc.wantEnds, i); end != want {
					t.Fatalf("entry %d: batch-end flag %v, want %v (batch ends %v)", i, end, want, tc.wantEnds)
				}
			}
		})
	}
}

// TestUnitOpenFailureReleasesLock checks that an Open that fails part-way
// undoes what it set up, the directory lock included: once the fault is
// gone, the next Open in the same process succeeds and serves the log.
func TestUnitOpenFailureReleasesLock(t *testing.T) {
	cases := []struct {
		name    string
		mask    vfs.Op
		prepare func(t *testing.T, dir string)
	}{
		{"listing the directory fails", vfs.OpReadDir, nil},
		{"removing a leftover temporary file fails", vfs.OpRemove, func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, segmentName(99)+storeExt+tmpExt), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"opening the active store fails", vfs.OpOpen, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, Options{MaxSegmentEntries: 2})
			h.appendN(2, 1)
			if err := h.l.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.prepare != nil {
				tc.prepare(t, h.dir)
			}
			fault := vfs.NewFault(vfs.OS{}, tc.mask)
			fault.FailAt(1, vfs.ErrIO, true, false)
			opts := h.opts
			opts.FS = fault
			if l, err := Open(h.dir, opts); err == nil {
				l.Close()
				t.Fatalf("Open succeeded although every %v fails", tc.mask)
			} else if !errors.Is(err, vfs.ErrIO) {
				t.Fatalf("Open = %v, want the injected EIO", err)
			}
			fault.Disarm()
			l, err := Open(h.dir, opts)
			if err != nil {
				t.Fatalf("Open after the fault is gone: %v", err)
			}
			h.l = l
			h.check("reopened")
		})
	}
}

// TestUnitIteratorSeek: Seek repositions an iterator like a new one, and
// never serves what it read ahead before: a suffix it had buffered, then
// truncated and written again with other data, is read anew.
func TestUnitIteratorSeek(t *testing.T) {
	h := utOpen(t, Options{})
	h.appendN(2, 3, 1, 4)
	it := h.l.NewIterator(h.m.first)
	for range 2 {
		if !it.Next() {
			t.Fatalf("iterator: %v", it.Err())
		}
	}
	// The iterator has read the whole (small) log ahead; cut it at 4 and
	// write other entries there.
	if err := h.l.TruncateFrom(4); err != nil {
		t.Fatal(err)
	}
	h.m.truncateFrom(4)
	h.gen++
	h.appendN(3, 2)
	for _, from := range []uint64{4, 1, 7, h.m.next()} {
		it.Seek(from)
		want := from
		for it.Next() {
			w, ok := h.m.get(want)
			if !ok {
				t.Fatalf("after Seek(%d): entry %d beyond the log", from, it.Entry().Index)
			}
			utSameEntry(t, fmt.Sprintf("after Seek(%d)", from), it.Entry(), w)
			want++
		}
		if err := it.Err(); err != nil || want != h.m.next() {
			t.Fatalf("after Seek(%d): stopped at %d (%v), want %d", from, want, err, h.m.next())
		}
	}
	// Seek clears an error: before the first index is out of range.
	it.Seek(h.m.first - 1)
	if it.Next() {
		t.Fatalf("Seek(%d) before the first index returned entry %d", h.m.first-1, it.Entry().Index)
	}
	utWantErr(t, "iterator before the first index", it.Err(), ErrOutOfRange)
	it.Seek(h.m.first)
	if !it.Next() || it.Err() != nil || it.Entry().Index != h.m.first {
		t.Fatalf("Seek(%d) after an error: %v", h.m.first, it.Err())
	}
}
