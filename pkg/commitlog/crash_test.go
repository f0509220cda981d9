package commitlog

// Crash tests: build a log of several segments, then damage copies of its
// files the way a crash or a bad disk would (cut the active store or index at
// every position, flip every byte of the last entries, corrupt sealed
// segments, leave stray files) and check on reopen that every acknowledged
// entry before the damage is served exactly, nothing after it is, and the log
// accepts appends again.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// crashOptions are the options of every log the crash tests open: small
// segments, so that a hundred entries span several of them. The damaged
// copies are opened with fsync made a no-op (the calls still happen, the
// disk is just not flushed: nothing here crashes the machine), which keeps
// thousands of cases fast; crashBuild makes the pristine log with real fsync.
func crashOptions(t *testing.T) Options {
	t.Helper()
	return Options{
		Logger:            crashLogger(t),
		FS:                vfs.NoSync{FS: vfs.OS{}},
		Sync:              SyncAlways,
		MaxSegmentBytes:   2048,
		MaxSegmentEntries: 64,
		TimeIndexInterval: 256,
	}
}

// crashLogger collects the log's output and passes it to t.Log only if the
// test fails, so that thousands of passing cases stay readable with -v.
func crashLogger(t *testing.T) hclog.Logger {
	t.Helper()
	buf := &bytes.Buffer{} // hclog serializes its writes
	t.Cleanup(func() {
		if t.Failed() && buf.Len() > 0 {
			t.Log("commitlog output:\n" + buf.String())
		}
	})
	return hclog.New(&hclog.LoggerOptions{Name: "commitlog", Level: hclog.Debug, Output: buf})
}

// crashEntry is the deterministic entry with index i in data generation gen.
// Data sizes vary from empty to 96 bytes, some entries hold no records, some
// have extensions, and the clock sometimes steps back.
func crashEntry(i uint64, gen int) Entry {
	n := int((i*37 + uint64(gen)*53) % 97)
	data := make([]byte, n)
	for k := range data {
		data[k] = byte(i*7 + uint64(k)*13 + uint64(gen)*29)
	}
	var ext []byte
	if i%5 == 0 {
		ext = []byte(fmt.Sprintf("ext-%d-%d", i, gen))
	}
	tm := int64(1_700_000_000_000_000_000) + int64(i)*1000
	if i%7 == 3 {
		tm -= 5000
	}
	return Entry{Index: i, Term: 1 + i/10 + uint64(gen), Type: uint8(i % 3), Time: tm,
		Count: uint32(i % 4), Extensions: ext, Data: data}
}

func crashBatch(first uint64, n, gen int) []Entry {
	b := make([]Entry, n)
	for k := range b {
		b[k] = crashEntry(first+uint64(k), gen)
	}
	return b
}

// crashDiff describes how got differs from want, or returns "".
func crashDiff(got, want Entry) string {
	var d []string
	if got.Index != want.Index {
		d = append(d, fmt.Sprintf("Index %d, want %d", got.Index, want.Index))
	}
	if got.Term != want.Term {
		d = append(d, fmt.Sprintf("Term %d, want %d", got.Term, want.Term))
	}
	if got.Type != want.Type {
		d = append(d, fmt.Sprintf("Type %d, want %d", got.Type, want.Type))
	}
	if got.Time != want.Time {
		d = append(d, fmt.Sprintf("Time %d, want %d", got.Time, want.Time))
	}
	if got.Offset != want.Offset {
		d = append(d, fmt.Sprintf("Offset %d, want %d", got.Offset, want.Offset))
	}
	if got.Count != want.Count {
		d = append(d, fmt.Sprintf("Count %d, want %d", got.Count, want.Count))
	}
	if !bytes.Equal(got.Extensions, want.Extensions) {
		d = append(d, fmt.Sprintf("Extensions %q, want %q", got.Extensions, want.Extensions))
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("Data of %d bytes differs from the %d appended", len(got.Data), len(want.Data)))
	}
	return strings.Join(d, "; ")
}

// crashHistory is a pristine, closed log and what was acknowledged into it.
type crashHistory struct {
	dir     string
	entries []Entry     // entries[i-1] has index i, with the Offset Append assigned
	batches [][2]uint64 // first and last index of every Append
	segs    []crashSegment
	seg     map[uint64]int   // index -> position in segs
	start   map[uint64]int64 // index -> position of the entry in its store
	end     map[uint64]int64 // index -> position after the entry
}

// crashSegment is one segment of the pristine log, as found on disk.
type crashSegment struct {
	name        string // 20-digit base index
	size        int64  // the end of the store's entries
	fileSize    int64  // store file size: more than size if preallocated
	first, last uint64 // entries held
}

func (s crashSegment) store() string { return s.name + storeExt }
func (s crashSegment) index() string { return s.name + indexExt }

// crashBuild appends batches of 1 to 5 entries with SyncAlways until the log
// has four segments and the last one holds at least six batches, checking
// every assigned offset, then reads the store files back with DecodeEntry to
// learn where each entry lies.
func crashBuild(t *testing.T) *crashHistory {
	t.Helper()
	h := &crashHistory{dir: t.TempDir(), seg: map[uint64]int{}, start: map[uint64]int64{}, end: map[uint64]int64{}}
	opts := crashOptions(t)
	opts.FS = vfs.OS{} // real fsync: this is the log the damage starts from
	l, err := Open(h.dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	sizes := []int{1, 3, 2, 5, 1, 4, 2, 1, 3}
	segs, inLast := 1, 0
	for k := 0; segs < 4 || inLast < 6; k++ {
		if k > 1000 {
			t.Fatalf("the log did not reach 4 segments: %d after %d batches", segs, k)
		}
		first, off := l.LastIndex()+1, l.NextOffset()
		b := crashBatch(first, sizes[k%len(sizes)], 0)
		if err := l.Append(b); err != nil {
			t.Fatalf("Append at %d: %v", first, err)
		}
		for _, e := range b {
			if e.Offset != off {
				t.Fatalf("Append gave entry %d offset %d, want %d", e.Index, e.Offset, off)
			}
			off += uint64(e.Count)
		}
		h.entries = append(h.entries, b...)
		h.batches = append(h.batches, [2]uint64{first, b[len(b)-1].Index})
		if n := l.Stats().Segments; n != segs {
			segs, inLast = n, 1
		} else {
			inLast++
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	names, err := filepath.Glob(filepath.Join(h.dir, "*"+storeExt))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	next := uint64(1)
	for _, path := range names {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := crashSegment{name: strings.TrimSuffix(filepath.Base(path), storeExt), size: int64(len(b)), fileSize: int64(len(b)), first: next}
		for pos := int64(fileHeaderSize); pos < int64(len(b)); {
			e, n, err := DecodeEntry(b[pos:])
			if err != nil && path == names[len(names)-1] && !slices.ContainsFunc(b[pos:], func(c byte) bool { return c != 0 }) {
				s.size = pos // the active store's preallocated zeros
				break
			}
			if err != nil {
				t.Fatalf("decode %s at %d: %v", path, pos, err)
			}
			if e.Index != next || int(next) > len(h.entries) {
				t.Fatalf("%s at %d holds index %d, want %d", path, pos, e.Index, next)
			}
			if d := crashDiff(e, h.entries[next-1]); d != "" {
				t.Fatalf("%s at %d: stored entry %d differs from the appended one: %s", path, pos, next, d)
			}
			h.seg[next], h.start[next], h.end[next] = len(h.segs), pos, pos+int64(n)
			pos += int64(n)
			next++
		}
		s.last = next - 1
		h.segs = append(h.segs, s)
	}
	if int(next-1) != len(h.entries) || len(h.segs) < 4 {
		t.Fatalf("stores hold %d entries in %d segments, appended %d", next-1, len(h.segs), len(h.entries))
	}
	if a := h.segs[len(h.segs)-1]; a.fileSize == a.size {
		t.Fatalf("the active store %s was not preallocated: %d bytes of entries, and no more", a.store(), a.size)
	}
	return h
}

// batchesIn lists the batches of segment k, oldest first.
func (h *crashHistory) batchesIn(k int) [][2]uint64 {
	var out [][2]uint64
	for _, b := range h.batches {
		if h.seg[b[0]] == k {
			out = append(out, b)
		}
	}
	return out
}

// crashCopy copies the files of the log in src into a fresh directory.
func crashCopy(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == lockName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// crashOpen opens dir, failing the test if it cannot; the log is closed at
// the end of the test.
func crashOpen(t *testing.T, dir string) *Log {
	t.Helper()
	l, err := Open(dir, crashOptions(t))
	if err != nil {
		t.Fatalf("Open %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// crashFlip XORs the byte at pos of the file with a mask that depends on pos.
func crashFlip(t *testing.T, path string, pos int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[pos] ^= []byte{0x01, 0x80, 0xff, 0x10}[pos%4]
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// crashCheckLog checks that l holds exactly want (dense from want[0].Index),
// through Read and an iterator, and through ReadOffset and IndexOfOffset for
// the entries from index lookupsFrom on (the others lie in segments a case
// did not touch; skipping them keeps a thousand cases fast), and serves
// nothing after it.
func crashCheckLog(t *testing.T, l *Log, want []Entry, lookupsFrom uint64) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("crashCheckLog needs entries")
	}
	first, last := want[0].Index, want[len(want)-1].Index
	if got := l.FirstIndex(); got != first {
		t.Errorf("FirstIndex = %d, want %d", got, first)
	}
	if got := l.LastIndex(); got != last {
		t.Errorf("LastIndex = %d, want %d", got, last)
	}
	w := want[len(want)-1]
	if got := l.NextOffset(); got != w.Offset+uint64(w.Count) {
		t.Errorf("NextOffset = %d, want %d", got, w.Offset+uint64(w.Count))
	}
	bad := 0
	for _, w := range want {
		e, err := l.Read(w.Index)
		if err != nil {
			t.Errorf("Read(%d): %v", w.Index, err)
		} else if d := crashDiff(e, w); d != "" {
			t.Errorf("Read(%d): %s", w.Index, d)
		} else if w.Count > 0 && w.Index >= lookupsFrom {
			for _, off := range []uint64{w.Offset, w.Offset + uint64(w.Count) - 1} {
				e, err := l.ReadOffset(off)
				if err != nil || e.Index != w.Index {
					t.Errorf("ReadOffset(%d) = index %d, %v; want index %d", off, e.Index, err, w.Index)
				}
				if i, err := l.IndexOfOffset(off); err != nil || i != w.Index {
					t.Errorf("IndexOfOffset(%d) = %d, %v; want %d", off, i, err, w.Index)
				}
			}
		}
		// Stop a few entries after the first difference: one bug would
		// otherwise report every entry of the log.
		if t.Failed() {
			if bad++; bad > 5 {
				t.Fatal("too many differences")
			}
		}
	}
	if _, err := l.Read(last + 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Read(%d) past the end: %v, want ErrOutOfRange", last+1, err)
	}
	it := l.NewIterator(first)
	k := 0
	for it.Next() {
		if k >= len(want) {
			t.Fatalf("iterator went past index %d to %d", last, it.Entry().Index)
		}
		if d := crashDiff(it.Entry(), want[k]); d != "" {
			t.Fatalf("iterator at %d: %s", want[k].Index, d)
		}
		k++
	}
	if it.Err() != nil || k != len(want) {
		t.Errorf("iterator stopped after %d of %d entries: %v", k, len(want), it.Err())
	}
}

// crashAppendReopen appends a two-entry batch of new data to l, checks the
// index and offsets it got, closes l, reopens dir and checks that the log is
// want plus the new batch and that nothing needed repair.
func crashAppendReopen(t *testing.T, dir string, l *Log, want []Entry, lookupsFrom uint64) {
	t.Helper()
	first, off := l.LastIndex()+1, l.NextOffset()
	if w := want[len(want)-1]; first != w.Index+1 || off != w.Offset+uint64(w.Count) {
		t.Fatalf("log ends at index %d offset %d, want %d and %d", first-1, off, w.Index, w.Offset+uint64(w.Count))
	}
	b := crashBatch(first, 2, 1)
	if err := l.Append(b); err != nil {
		t.Fatalf("Append at %d after recovery: %v", first, err)
	}
	if b[0].Offset != off || b[1].Offset != off+uint64(b[0].Count) {
		t.Errorf("Append after recovery assigned offsets %d, %d; want %d, %d", b[0].Offset, b[1].Offset, off, off+uint64(b[0].Count))
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l2 := crashOpen(t, dir)
	if rep := l2.Recovery(); rep.TruncatedAt != -1 || rep.DroppedBytes != 0 || rep.IndexRebuilt {
		t.Errorf("second reopen repaired again: %+v", rep)
	}
	crashCheckLog(t, l2, append(append([]Entry(nil), want...), b...), lookupsFrom)
}

// crashRunner returns a function that runs one damage case as a subtest of
// t and stops t after a few failing cases, so that one bug does not print a
// thousand failures.
func crashRunner(t *testing.T) func(name string, f func(t *testing.T)) {
	failed := 0
	return func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			if failed++; failed >= 5 {
				t.Fatalf("stopping after %d failing cases", failed)
			}
		}
	}
}

// TestCrashCutActiveStore cuts the last segment's store at every byte of its
// last three batches, as a crash in the middle of an append would, and checks
// that recovery keeps exactly the batches that end before the cut, reports
// what it cut, and accepts appends that survive another reopen. It does so
// twice: once cutting the file (a write that extended it), once zeroing
// everything from the cut to the end of the file, which keeps its length (a
// write into preallocated space, of which only a prefix reached the disk).
func TestCrashCutActiveStore(t *testing.T) {
	h := crashBuild(t)
	k := len(h.segs) - 1
	seg := h.segs[k]
	bs := h.batchesIn(k)
	from := h.start[bs[len(bs)-3][0]]
	pristine, err := os.ReadFile(filepath.Join(h.dir, seg.store()))
	if err != nil {
		t.Fatal(err)
	}
	zeros := func(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }
	for _, zeroed := range []bool{false, true} {
		mode := map[bool]string{false: "cut", true: "zeroed"}[zeroed]
		t.Run(mode, func(t *testing.T) {
			run := crashRunner(t)
			t.Logf("%s %s at every byte of [%d, %d), batches %v", mode, seg.store(), from, seg.size, bs[len(bs)-3:])
			for p := from; p < seg.size; p++ {
				run(fmt.Sprintf("%s=%d", mode, p), func(t *testing.T) {
					// Expected: the batches that end at or before p survive.
					var kept, torn [2]uint64
					for j, b := range bs {
						if h.end[b[1]] <= p {
							kept = b
							torn = bs[j+1]
						}
					}
					keptLast := kept[1]
					keptEnd := h.end[keptLast]
					dropped, entryEnd := 0, h.start[torn[0]]
					for i := torn[0]; i <= torn[1] && h.end[i] <= p; i++ {
						dropped++
						entryEnd = h.end[i]
					}
					// A torn entry counts if any of it is on disk; in
					// zeroed mode, a prefix of zeros is no write at all.
					if entryEnd != p && !(zeroed && zeros(pristine[entryEnd:p])) {
						dropped++
					}
					clean := dropped == 0
					size, wantSize, wantDropped := p, keptEnd, p-keptEnd
					if zeroed {
						size, wantDropped = seg.fileSize, seg.fileSize-keptEnd
						if clean {
							wantSize = seg.fileSize // the zeros stay, ready for the next write
						}
					}

					dir := crashCopy(t, h.dir)
					path := filepath.Join(dir, seg.store())
					if err := os.Truncate(path, p); err != nil {
						t.Fatal(err)
					}
					if err := os.Truncate(path, size); err != nil {
						t.Fatal(err)
					}
					l := crashOpen(t, dir)
					rep := l.Recovery()
					if rep.Segment != path || rep.Entries != keptLast-seg.first+1 {
						t.Errorf("Recovery scanned %s and kept %d entries, want %s and %d", rep.Segment, rep.Entries, path, keptLast-seg.first+1)
					}
					if clean {
						if rep.TruncatedAt != -1 || rep.DroppedBytes != 0 || rep.DroppedEntries != 0 {
							t.Errorf("nothing torn, yet Recovery = %+v", rep)
						}
					} else if rep.TruncatedAt != keptEnd || rep.DroppedBytes != wantDropped || rep.DroppedBytes <= 0 ||
						rep.DroppedEntries != dropped || rep.Reason == "" {
						t.Errorf("Recovery = %+v; want TruncatedAt %d, DroppedBytes %d, DroppedEntries %d and a reason",
							rep, keptEnd, wantDropped, dropped)
					}
					if fi, err := os.Stat(path); err != nil || fi.Size() != wantSize {
						t.Errorf("store is %v bytes after recovery (%v), want %d", fi.Size(), err, wantSize)
					}
					crashCheckLog(t, l, h.entries[:keptLast], seg.first)
					crashAppendReopen(t, dir, l, h.entries[:keptLast], seg.first)
				})
			}
		})
	}
}

// TestCrashFlipActiveStore flips one byte at every position of the last
// segment's last three batches: the batch holding the damaged entry and
// everything after it are dropped, the batches before are kept.
func TestCrashFlipActiveStore(t *testing.T) {
	h := crashBuild(t)
	run := crashRunner(t)
	k := len(h.segs) - 1
	seg := h.segs[k]
	bs := h.batchesIn(k)
	from := h.start[bs[len(bs)-3][0]]
	for p := from; p < seg.size; p++ {
		run(fmt.Sprintf("flip=%d", p), func(t *testing.T) {
			var hit [2]uint64 // the batch holding byte p
			var bad uint64    // the entry holding byte p
			for _, b := range bs {
				if h.start[b[0]] <= p && p < h.end[b[1]] {
					hit = b
				}
			}
			for i := hit[0]; i <= hit[1]; i++ {
				if h.start[i] <= p && p < h.end[i] {
					bad = i
				}
			}
			keptLast, cutAt := hit[0]-1, h.start[hit[0]]

			dir := crashCopy(t, h.dir)
			path := filepath.Join(dir, seg.store())
			crashFlip(t, path, p)
			l := crashOpen(t, dir)
			rep := l.Recovery()
			if rep.TruncatedAt != cutAt || rep.DroppedBytes != seg.fileSize-cutAt ||
				rep.DroppedEntries != int(bad-hit[0])+1 || rep.Reason == "" {
				t.Errorf("byte %d of entry %d (batch %v) damaged: Recovery = %+v; want TruncatedAt %d, DroppedBytes %d, DroppedEntries %d",
					p, bad, hit, rep, cutAt, seg.fileSize-cutAt, bad-hit[0]+1)
			}
			crashCheckLog(t, l, h.entries[:keptLast], seg.first)
			crashAppendReopen(t, dir, l, h.entries[:keptLast], seg.first)
		})
	}
}

// TestCrashCutActiveIndex cuts the last segment's index at every entry
// boundary and at odd positions, and deletes it: the store is whole, so
// nothing is dropped and the index is rebuilt where it lost entries.
func TestCrashCutActiveIndex(t *testing.T) {
	h := crashBuild(t)
	run := crashRunner(t)
	seg := h.segs[len(h.segs)-1]
	n := int64(seg.last - seg.first + 1)
	whole := int64(fileHeaderSize) + n*indexEntrySize
	var cuts []int64
	for p := int64(0); p <= whole+2*indexEntrySize; p += indexEntrySize {
		cuts = append(cuts, p)
	}
	cuts = append(cuts, 1, 7, 33, 63, 65, fileHeaderSize+indexEntrySize/2, fileHeaderSize+n/2*indexEntrySize+9,
		whole-1, whole+1, whole+indexEntrySize-3)
	type cut struct {
		name    string
		pos     int64 // -1: delete the file
		rebuilt bool
	}
	cases := []cut{{name: "delete", pos: -1, rebuilt: true}}
	pristine, err := os.ReadFile(filepath.Join(h.dir, seg.index()))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range cuts {
		// A cut is refilled with zeros: the index needs rewriting only if
		// the cut lost a byte that was not zero.
		lost := p < whole && !bytes.Equal(pristine[p:whole], make([]byte, whole-p))
		cases = append(cases, cut{name: fmt.Sprintf("cut=%d", p), pos: p, rebuilt: lost})
	}
	for _, c := range cases {
		run(c.name, func(t *testing.T) {
			dir := crashCopy(t, h.dir)
			path := filepath.Join(dir, seg.index())
			var err error
			if c.pos < 0 {
				err = os.Remove(path)
			} else {
				err = os.Truncate(path, c.pos)
			}
			if err != nil {
				t.Fatal(err)
			}
			l := crashOpen(t, dir)
			rep := l.Recovery()
			if rep.TruncatedAt != -1 || rep.DroppedBytes != 0 || rep.DroppedEntries != 0 || rep.IndexRebuilt != c.rebuilt {
				t.Errorf("Recovery = %+v; want nothing dropped and IndexRebuilt %v", rep, c.rebuilt)
			}
			crashCheckLog(t, l, h.entries, seg.first)
			crashAppendReopen(t, dir, l, h.entries, seg.first)
		})
	}
}

// crashCorruptAs checks that err reports corrupt data in one of files.
func crashCorruptAs(t *testing.T, what string, err error, files ...string) *CorruptError {
	t.Helper()
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
		t.Errorf("%s: error %v, want a *CorruptError wrapping ErrCorrupt", what, err)
		return nil
	}
	for _, f := range files {
		if ce.File == f {
			return ce
		}
	}
	t.Errorf("%s: CorruptError names %s, want one of %v", what, ce.File, files)
	return nil
}

// TestCrashFlipSealedStore flips every byte of the first, a middle and the
// last entry of a sealed segment's store. Open scans only the last segment,
// so it succeeds; reading the damaged entry, by index, by offset or with an
// iterator, must fail with a *CorruptError naming the store and the entry's
// position, and every other entry is served exactly or not at all. A damaged
// store header makes Open fail with a clear *CorruptError.
func TestCrashFlipSealedStore(t *testing.T) {
	h := crashBuild(t)
	run := crashRunner(t)
	const k = 1 // a sealed segment with segments on both sides
	seg := h.segs[k]
	targets := []struct {
		name string
		i    uint64
	}{
		{"first-entry", seg.first},
		{"middle-entry", (seg.first + seg.last) / 2},
		{"last-entry", seg.last},
	}
	for _, tg := range targets {
		for p := h.start[tg.i]; p < h.end[tg.i]; p++ {
			run(fmt.Sprintf("%s/flip=%d", tg.name, p), func(t *testing.T) {
				dir := crashCopy(t, h.dir)
				path := filepath.Join(dir, seg.store())
				crashFlip(t, path, p)
				l := crashOpen(t, dir)
				if rep := l.Recovery(); rep.TruncatedAt != -1 {
					t.Errorf("damage in a sealed segment cut the active one: %+v", rep)
				}
				if got := l.LastIndex(); got != uint64(len(h.entries)) {
					t.Errorf("LastIndex = %d, want %d", got, len(h.entries))
				}
				_, err := l.Read(tg.i)
				if ce := crashCorruptAs(t, fmt.Sprintf("Read(%d)", tg.i), err, path); ce != nil && ce.Pos != h.start[tg.i] {
					t.Errorf("Read(%d): CorruptError at byte %d, the entry starts at %d", tg.i, ce.Pos, h.start[tg.i])
				}
				if w := h.entries[tg.i-1]; w.Count > 0 {
					_, err := l.ReadOffset(w.Offset)
					crashCorruptAs(t, fmt.Sprintf("ReadOffset(%d)", w.Offset), err, path, filepath.Join(dir, seg.index()))
				}
				servedSeg := 0
				for _, w := range h.entries {
					if w.Index == tg.i {
						continue
					}
					e, err := l.Read(w.Index)
					if err != nil && h.seg[w.Index] == k {
						crashCorruptAs(t, fmt.Sprintf("Read(%d)", w.Index), err, path)
						continue
					}
					if err != nil {
						t.Errorf("Read(%d) in an undamaged segment: %v", w.Index, err)
					} else if d := crashDiff(e, w); d != "" {
						t.Errorf("Read(%d): %s", w.Index, d)
					} else if h.seg[w.Index] == k {
						servedSeg++
					}
				}
				// Other entries of the segment are intact and are served,
				// unless the damage is in the last entry, which the
				// open-time check reads: then the segment cannot be opened.
				if want := int(seg.last - seg.first); tg.i != seg.last && servedSeg != want {
					t.Errorf("served %d of the other %d entries of the damaged segment", servedSeg, want)
				}

				it := l.NewIterator(1)
				for it.Next() {
					e := it.Entry()
					if e.Index >= tg.i {
						t.Fatalf("iterator served index %d at or past the damaged entry %d", e.Index, tg.i)
					}
					if d := crashDiff(e, h.entries[e.Index-1]); d != "" {
						t.Fatalf("iterator at %d: %s", e.Index, d)
					}
				}
				if ce := crashCorruptAs(t, "iterator", it.Err(), path); ce != nil && ce.Pos != h.start[tg.i] {
					t.Errorf("iterator: CorruptError at byte %d, the entry starts at %d", ce.Pos, h.start[tg.i])
				}
				if it.Index() > tg.i {
					t.Errorf("iterator stopped at %d, past the damaged entry %d", it.Index(), tg.i)
				}
			})
		}
	}
	for _, p := range []int64{0, 9, 16, 24, 40, 60, 63} {
		run(fmt.Sprintf("header/flip=%d", p), func(t *testing.T) {
			dir := crashCopy(t, h.dir)
			path := filepath.Join(dir, seg.store())
			crashFlip(t, path, p)
			l, err := Open(dir, crashOptions(t))
			if err == nil {
				t.Cleanup(func() { _ = l.Close() }) // the test has failed already
				t.Fatalf("Open succeeded with a damaged store header")
			}
			crashCorruptAs(t, "Open", err, path)
		})
	}
}

// crashCheckSealed reads every entry of the log in every way. Entries of
// segment k may fail with a *CorruptError naming one of its files (unless
// strict); all others must be exact. It returns how many reads failed.
func crashCheckSealed(t *testing.T, l *Log, h *crashHistory, dir string, k int, strict bool) int {
	t.Helper()
	seg := h.segs[k]
	files := []string{filepath.Join(dir, seg.store()), filepath.Join(dir, seg.index())}
	failed := 0
	allowed := func(what string, i uint64, err error) {
		t.Helper()
		failed++
		if strict || h.seg[i] != k {
			t.Errorf("%s: %v", what, err)
			return
		}
		crashCorruptAs(t, what, err, files...)
	}
	for _, w := range h.entries {
		e, err := l.Read(w.Index)
		switch {
		case err != nil:
			allowed(fmt.Sprintf("Read(%d)", w.Index), w.Index, err)
		case crashDiff(e, w) != "":
			t.Errorf("Read(%d) served wrong data: %s", w.Index, crashDiff(e, w))
		}
		if w.Count == 0 {
			continue
		}
		for _, off := range []uint64{w.Offset, w.Offset + uint64(w.Count) - 1} {
			e, err := l.ReadOffset(off)
			switch {
			case err != nil:
				allowed(fmt.Sprintf("ReadOffset(%d)", off), w.Index, err)
			case crashDiff(e, w) != "":
				t.Errorf("ReadOffset(%d) served wrong data: %s", off, crashDiff(e, w))
			}
			i, err := l.IndexOfOffset(off)
			switch {
			case err != nil:
				allowed(fmt.Sprintf("IndexOfOffset(%d)", off), w.Index, err)
			case i != w.Index:
				t.Errorf("IndexOfOffset(%d) = %d, want %d", off, i, w.Index)
			}
		}
	}
	it := l.NewIterator(1)
	for it.Next() {
		e := it.Entry()
		if d := crashDiff(e, h.entries[e.Index-1]); d != "" {
			t.Errorf("iterator served wrong data at %d: %s", e.Index, d)
			break
		}
	}
	if it.Err() != nil {
		allowed("iterator", it.Index(), it.Err())
	} else if it.Index() != uint64(len(h.entries))+1 {
		t.Errorf("iterator ended at %d without an error, want %d", it.Index(), len(h.entries)+1)
	}
	return failed
}

// TestCrashCorruptSealedIndex damages a sealed segment's index: every byte
// flipped, cut short, deleted, swapped with another segment's, zeroed. The
// log must rebuild it from the store (reads exact, the file rewritten) or
// report a *CorruptError; it must never serve wrong data. Damage that the
// open-time check covers (the header, the first entry, the last entry's
// position) must be repaired.
func TestCrashCorruptSealedIndex(t *testing.T) {
	h := crashBuild(t)
	run := crashRunner(t)
	const k = 1
	seg := h.segs[k]
	n := int64(seg.last - seg.first + 1)
	pristine, err := os.ReadFile(filepath.Join(h.dir, seg.index()))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(pristine)) != fileHeaderSize+n*indexEntrySize {
		t.Fatalf("sealed index is %d bytes, want %d", len(pristine), fileHeaderSize+n*indexEntrySize)
	}
	type damage struct {
		name   string
		repair bool // must be rebuilt, reads exact
		do     func(t *testing.T, dir string)
	}
	lastEntry := int64(fileHeaderSize) + (n-1)*indexEntrySize
	var cases []damage
	for p := int64(0); p < int64(len(pristine)); p++ {
		cases = append(cases, damage{
			name:   fmt.Sprintf("flip=%d", p),
			repair: p < fileHeaderSize+indexEntrySize || (p >= lastEntry && p < lastEntry+8),
			do:     func(t *testing.T, dir string) { crashFlip(t, filepath.Join(dir, seg.index()), p) },
		})
	}
	for _, c := range []int64{0, 10, 63, 64, 64 + 16, 64 + 17, int64(len(pristine)) - 16, int64(len(pristine)) - 1} {
		cases = append(cases, damage{name: fmt.Sprintf("cut=%d", c), repair: true, do: func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, seg.index()), c); err != nil {
				t.Fatal(err)
			}
		}})
	}
	cases = append(cases,
		damage{name: "delete", repair: true, do: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, seg.index())); err != nil {
				t.Fatal(err)
			}
		}},
		damage{name: "swapped-with-segment-0", repair: true, do: func(t *testing.T, dir string) {
			a, b := filepath.Join(dir, h.segs[0].index()), filepath.Join(dir, seg.index())
			if err := os.Rename(a, a+".x"); err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(os.Rename(b, a), os.Rename(a+".x", b)); err != nil {
				t.Fatal(err)
			}
		}},
		damage{name: "entries-zeroed", repair: true, do: func(t *testing.T, dir string) {
			b := append([]byte(nil), pristine...)
			clear(b[fileHeaderSize:])
			if err := os.WriteFile(filepath.Join(dir, seg.index()), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		damage{name: "garbage-after-entries", repair: true, do: func(t *testing.T, dir string) {
			b := append(append([]byte(nil), pristine...), bytes.Repeat([]byte{0xAB}, 40)...)
			if err := os.WriteFile(filepath.Join(dir, seg.index()), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	)
	repaired, reported := 0, 0
	for _, c := range cases {
		run(c.name, func(t *testing.T) {
			dir := crashCopy(t, h.dir)
			c.do(t, dir)
			l := crashOpen(t, dir)
			if got := l.LastIndex(); got != uint64(len(h.entries)) {
				t.Errorf("LastIndex = %d, want %d", got, len(h.entries))
			}
			if crashCheckSealed(t, l, h, dir, k, c.repair) == 0 {
				repaired++
			} else {
				reported++
			}
			if c.repair && c.name != "garbage-after-entries" {
				got, err := os.ReadFile(filepath.Join(dir, seg.index()))
				if err != nil || !bytes.Equal(got, pristine) {
					t.Errorf("rebuilt index file differs from the original (%d bytes, %v)", len(got), err)
				}
			}
		})
	}
	t.Logf("%d damaged indexes repaired, %d reported as corrupt", repaired, reported)
}

// TestCrashStrayFiles puts files into a log directory that are not, or no
// longer, part of it. Open must ignore unrelated files, remove leftovers of
// interrupted deletions and atomic writes, and reject a store whose header
// disagrees with its name; it must never pair files of different segments.
func TestCrashStrayFiles(t *testing.T) {
	h := crashBuild(t)
	last := h.segs[len(h.segs)-1]
	write := func(t *testing.T, path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	garbage := []byte("not a log file\n")
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		ignored []string // reported in Recovery().Ignored, left in place
		removed []string // reported in Recovery().OrphansRemoved, gone
		openErr string   // a file the *CorruptError of a failing Open names
		first   uint64   // FirstIndex when Open succeeds; 0 means 1
	}{
		{
			name:    "unrelated files",
			setup:   func(t *testing.T, dir string) { write(t, filepath.Join(dir, "notes.txt"), garbage) },
			ignored: []string{"notes.txt"},
		},
		{
			name: "names that almost match",
			setup: func(t *testing.T, dir string) {
				for _, n := range []string{"0000000000000000001.store", "00000000000000000000.store",
					"00000000000000000001.store.bak", "00000000000000000001.STORE", "xyz.store.tmp", "xyz.store"} {
					write(t, filepath.Join(dir, n), garbage)
				}
			},
			ignored: []string{"0000000000000000001.store", "00000000000000000000.store",
				"00000000000000000001.store.bak", "00000000000000000001.STORE", "xyz.store.tmp", "xyz.store"},
		},
		{
			name: "leftover temporary files",
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, h.segs[0].store()+tmpExt), garbage)
				write(t, filepath.Join(dir, last.index()+tmpExt), garbage)
				write(t, filepath.Join(dir, h.segs[1].name+timeExt+tmpExt), garbage)
				write(t, filepath.Join(dir, segmentName(9999)+storeExt+tmpExt), garbage)
			},
			removed: []string{h.segs[0].store() + tmpExt, last.index() + tmpExt, h.segs[1].name + timeExt + tmpExt,
				segmentName(9999) + storeExt + tmpExt},
		},
		{
			name: "index and time index without a store",
			setup: func(t *testing.T, dir string) {
				// Segment 1 was deleted, but not its index and time index.
				if err := os.Remove(filepath.Join(dir, h.segs[0].store())); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, segmentName(last.last+50)+indexExt), garbage)
			},
			removed: []string{h.segs[0].index(), h.segs[0].name + timeExt, segmentName(last.last+50) + indexExt},
			first:   h.segs[1].first,
		},
		{
			name: "store copied under another segment's name",
			setup: func(t *testing.T, dir string) {
				b, err := os.ReadFile(filepath.Join(dir, h.segs[1].store()))
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, segmentName(last.last+1)+storeExt), b)
			},
			openErr: segmentName(last.last+1) + storeExt,
		},
		{
			name: "store renamed over a gap",
			setup: func(t *testing.T, dir string) {
				b, err := os.ReadFile(filepath.Join(dir, h.segs[2].store()))
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, segmentName(h.segs[1].first+1)+storeExt), b)
			},
			openErr: segmentName(h.segs[1].first+1) + storeExt,
		},
		{
			name: "last store shorter than its header",
			setup: func(t *testing.T, dir string) {
				if err := os.Truncate(filepath.Join(dir, last.store()), 40); err != nil {
					t.Fatal(err)
				}
			},
			openErr: last.store(),
		},
		{
			name: "index of another segment",
			setup: func(t *testing.T, dir string) {
				b, err := os.ReadFile(filepath.Join(dir, h.segs[0].index()))
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, h.segs[2].index()), b)
				write(t, filepath.Join(dir, last.index()), b)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := crashCopy(t, h.dir)
			c.setup(t, dir)
			if c.openErr != "" {
				l, err := Open(dir, crashOptions(t))
				if err == nil {
					t.Cleanup(func() { _ = l.Close() }) // the test has failed already
					t.Fatal("Open succeeded")
				}
				crashCorruptAs(t, "Open", err, filepath.Join(dir, c.openErr))
				t.Logf("Open: %v", err)
				return
			}
			l := crashOpen(t, dir)
			rep := l.Recovery()
			sort.Strings(rep.Ignored)
			sort.Strings(rep.OrphansRemoved)
			want := func(s []string) []string {
				s = append([]string(nil), s...)
				sort.Strings(s)
				return s
			}
			if fmt.Sprint(rep.Ignored) != fmt.Sprint(want(c.ignored)) {
				t.Errorf("Ignored = %q, want %q", rep.Ignored, want(c.ignored))
			}
			if fmt.Sprint(rep.OrphansRemoved) != fmt.Sprint(want(c.removed)) {
				t.Errorf("OrphansRemoved = %q, want %q", rep.OrphansRemoved, want(c.removed))
			}
			for _, n := range c.ignored {
				if b, err := os.ReadFile(filepath.Join(dir, n)); err != nil || !bytes.Equal(b, garbage) {
					t.Errorf("ignored file %s was changed or removed: %v", n, err)
				}
			}
			for _, n := range c.removed {
				if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("leftover %s is still there: %v", n, err)
				}
			}
			first := c.first
			if first == 0 {
				first = 1
			}
			crashCheckLog(t, l, h.entries[first-1:], 0)
			crashAppendReopen(t, dir, l, h.entries[first-1:], 0)
		})
	}
}
