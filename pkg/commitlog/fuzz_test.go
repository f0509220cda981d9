package commitlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// utFixture is a small log built by the engine once per fuzz target: its
// files and the model of what it holds. Segments [1-4] [5-8] [9-12] and the
// active [13-14]; extended is the active store after entries 15 and 16 were
// appended too, for seeds that continue the log.
type utFixture struct {
	files    map[string][]byte
	m        utModel
	extended []byte
}

func utFuzzOptions() Options {
	return Options{
		Logger:            hclog.NewNullLogger(),
		FS:                vfs.NoSync{FS: vfs.OS{}},
		Sync:              SyncNone,
		MaxSegmentEntries: 4,
		TimeIndexInterval: 1,
		// The fixture's files are exactly their entries, without the
		// zeros of preallocation (tested in prealloc_test.go).
		Preallocate: -1,
	}
}

func utBuildFixture(tb testing.TB) *utFixture {
	tb.Helper()
	h := utOpen(tb, utFuzzOptions())
	for b := range 7 {
		h.mustAppend(h.batch(2, func(k int, e *Entry) {
			e.Count = uint32(e.Index % 3)
			e.Time = int64(100 - 10*b + 25*k) // not monotonic
			if e.Index%3 == 0 {
				e.Extensions = []byte(fmt.Sprintf("x%d", e.Index))
			}
		}))
	}
	fx := &utFixture{files: map[string][]byte{}, m: h.m}
	fx.m.entries = append([]Entry(nil), h.m.entries...)
	h.reopen() // flushes nothing (SyncNone writes through), but proves the files are clean
	if err := h.l.Close(); err != nil {
		tb.Fatal(err)
	}
	ents, err := os.ReadDir(h.dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == lockName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(h.dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		fx.files[e.Name()] = b
	}
	if len(fx.files) != 4*3-1 {
		tb.Fatalf("fixture has files %d, want 11", len(fx.files))
	}
	h.l, err = Open(h.dir, h.opts)
	if err != nil {
		tb.Fatal(err)
	}
	h.mustAppend(h.batch(2, func(k int, e *Entry) { e.Count = 2; e.Time = 1000 }))
	if err := h.l.Close(); err != nil {
		tb.Fatal(err)
	}
	fx.extended, err = os.ReadFile(filepath.Join(h.dir, segmentName(13)+storeExt))
	if err != nil {
		tb.Fatal(err)
	}
	return fx
}

func (fx *utFixture) file(base uint64, ext string) []byte {
	return fx.files[segmentName(base)+ext]
}

// utEntrySlices splits a store file's entries (after its header) into the
// encoded bytes of each.
func utEntrySlices(tb testing.TB, store []byte) [][]byte {
	tb.Helper()
	var out [][]byte
	for pos := fileHeaderSize; pos < len(store); {
		_, n, err := DecodeEntry(store[pos:])
		if err != nil {
			tb.Fatalf("fixture store at %d: %v", pos, err)
		}
		out = append(out, store[pos:pos+n])
		pos += n
	}
	return out
}

// utTruncations are b cut at a few interesting lengths.
func utTruncations(b []byte) [][]byte {
	var out [][]byte
	for _, n := range []int{0, 1, entryHeaderSize - 1, entryHeaderSize, fileHeaderSize - 1, fileHeaderSize, fileHeaderSize + 1, len(b) / 2, len(b) - 1} {
		if n >= 0 && n < len(b) {
			out = append(out, b[:n])
		}
	}
	return out
}

// utFixCRC returns a copy of b in which the checksum of every entry whose
// header declares a length that fits is recomputed, so that the fuzzer can
// explore the rest of the entry header past the checksum.
func utFixCRC(b []byte) []byte {
	b = bytes.Clone(b)
	for pos := 0; len(b)-pos >= entryHeaderSize; {
		size := uint64(entryHeaderSize) + uint64(binary.LittleEndian.Uint32(b[pos+4:])) + uint64(binary.LittleEndian.Uint32(b[pos+8:]))
		if size > uint64(len(b)-pos) {
			break
		}
		binary.LittleEndian.PutUint32(b[pos:], crc32.Checksum(b[pos+4:pos+int(size)], castagnoli))
		pos += int(size)
	}
	return b
}

// utWellFormed says whether b starts with an entry header that obeys the
// format of doc.go, checksum aside, and whose entry fits in b.
func utWellFormed(b []byte) bool {
	if len(b) < entryHeaderSize {
		return false
	}
	le := binary.LittleEndian
	payload := uint64(le.Uint32(b[4:])) + uint64(le.Uint32(b[8:]))
	offset, count := le.Uint64(b[32:]), uint64(le.Uint32(b[48:]))
	return b[12]&^flagBatchEnd == 0 && b[14] == 0 && b[15] == 0 && le.Uint32(b[52:]) == 0 &&
		payload <= maxFormatEntryBytes && entryHeaderSize+payload <= uint64(len(b)) &&
		le.Uint64(b[16:]) != 0 && offset <= math.MaxUint64-count
}

func FuzzDecodeEntry(f *testing.F) {
	fx := utBuildFixture(f)
	for name, b := range fx.files {
		if filepath.Ext(name) != storeExt {
			continue
		}
		f.Add(b[fileHeaderSize:]) // every entry of the segment, back to back
		for _, e := range utEntrySlices(f, b) {
			f.Add(e)
			for _, tr := range utTruncations(e) {
				f.Add(tr)
			}
			bad := bytes.Clone(e)
			bad[len(bad)-1] ^= 0x40
			f.Add(bad)
			// Header fields the format forbids; the target also
			// tries each with its checksum fixed.
			for _, at := range []int{12, 13, 14, 15, 16, 23, 32, 39, 48, 52, 55} {
				v := bytes.Clone(e)
				v[at] ^= 0x82
				f.Add(v)
			}
			zeroIndex := bytes.Clone(e)
			clear(zeroIndex[16:24])
			f.Add(zeroIndex)
		}
	}
	f.Add([]byte{})
	f.Add(make([]byte, entryHeaderSize))
	f.Add(bytes.Repeat([]byte{0xff}, 2*entryHeaderSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		utCheckDecode(t, data, false)
		if len(data) >= entryHeaderSize {
			utCheckDecode(t, utFixCRC(data), true)
		}
	})
}

// utCheckDecode decodes data. A failure must be ErrCorrupt (and, for an
// entry with a correct checksum, only if the header breaks the format); a
// success must describe exactly the bytes it used, and round-trip through a
// real log.
func utCheckDecode(t *testing.T, data []byte, crcFixed bool) {
	t.Helper()
	e, n, err := DecodeEntry(data)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) || err.Error() == "" || n != 0 {
			t.Fatalf("DecodeEntry failed with n = %d and error %v; want 0 and ErrCorrupt", n, err)
		}
		if crcFixed && utWellFormed(data) {
			t.Fatalf("DecodeEntry refused a well-formed entry with a correct checksum: %v", err)
		}
		return
	}
	le := binary.LittleEndian
	if n != entryHeaderSize+len(e.Extensions)+len(e.Data) || n > len(data) {
		t.Fatalf("DecodeEntry used %d bytes of %d for %d bytes of extensions and %d of data", n, len(data), len(e.Extensions), len(e.Data))
	}
	if !utWellFormed(data) {
		t.Fatalf("DecodeEntry accepted an entry that breaks the format: % x", data[:entryHeaderSize])
	}
	if got, want := le.Uint32(data), crc32.Checksum(data[4:n], castagnoli); got != want {
		t.Fatalf("DecodeEntry accepted checksum %#x, the entry's is %#x", got, want)
	}
	if e.Index != le.Uint64(data[16:]) || e.Term != le.Uint64(data[24:]) || e.Offset != le.Uint64(data[32:]) ||
		e.Time != int64(le.Uint64(data[40:])) || e.Count != le.Uint32(data[48:]) || e.Type != data[13] ||
		!bytes.Equal(e.Extensions, data[entryHeaderSize:entryHeaderSize+len(e.Extensions)]) ||
		!bytes.Equal(e.Data, data[entryHeaderSize+len(e.Extensions):n]) {
		t.Fatalf("DecodeEntry's entry %+v disagrees with the bytes it decoded", e)
	}
	utRoundTrip(t, e, data[:n])
}

// utRoundTrip appends e to a real log positioned at its index and offset,
// reads it back, and compares the stored bytes with enc (the batch-end flag
// and so the checksum may differ: Append sets the flag).
func utRoundTrip(t *testing.T, e Entry, enc []byte) {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, utFuzzOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Reset(e.Index, e.Offset); err != nil {
		t.Fatalf("Reset(%d, %d): %v", e.Index, e.Offset, err)
	}
	in := e
	in.Extensions, in.Data = bytes.Clone(e.Extensions), bytes.Clone(e.Data)
	err = l.Append([]Entry{in})
	if e.Index == math.MaxUint64 {
		utWantErr(t, "Append at index MaxUint64", err, ErrInvalidBatch)
		return
	}
	if err != nil {
		t.Fatalf("Append of a decoded entry: %v", err)
	}
	got, err := l.Read(e.Index)
	if err != nil {
		t.Fatalf("Read(%d): %v", e.Index, err)
	}
	utSameEntry(t, "read back", got, e)
	store, err := os.ReadFile(filepath.Join(dir, segmentName(e.Index)+storeExt))
	if err != nil {
		t.Fatal(err)
	}
	stored := store[fileHeaderSize:]
	want := bytes.Clone(enc)
	if want[12]&flagBatchEnd == 0 {
		want[12] |= flagBatchEnd
		binary.LittleEndian.PutUint32(want, crc32.Checksum(want[4:], castagnoli))
	}
	if !bytes.Equal(stored, want) {
		t.Fatalf("Append stored\n% x\nwant\n% x", stored, want)
	}
}

// Where FuzzOpenGarbage puts the fuzzer's bytes.
const (
	utOnlyStore          = iota // as the only store, 1
	utOnlyStoreEntries          // as the entries of the only store, 1, after a valid header
	utStoreAfterSealed          // as store 5, after a valid sealed segment 1
	utEntriesAfterSealed        // as the entries of store 5, after a valid header, after sealed segment 1
	utActiveIndex               // as the index of the active segment 13 of the whole fixture
	utSealedIndex               // as the index of sealed segment 5
	utSealedTimeIndex           // as the time index of sealed segment 5
	utSealedStore               // as the store of sealed segment 5
	utEntriesAfterAll           // as the entries of a new last store 15, after the whole fixture
	utPlacements
)

// utLayout is a log directory holding the fuzzer's bytes at placement p:
// files by name, the base index of the store holding garbage (or 0), and
// the bases of the sealed segments whose entries may fail with ErrCorrupt.
func (fx *utFixture) utLayout(p int, data []byte) (files map[string][]byte, garbageBase, corruptBase uint64) {
	files = map[string][]byte{}
	whole := func() {
		for name, b := range fx.files {
			files[name] = b
		}
	}
	first := func() {
		for _, ext := range []string{storeExt, indexExt, timeExt} {
			files[segmentName(1)+ext] = fx.file(1, ext)
		}
	}
	switch p {
	case utOnlyStore:
		files[segmentName(1)+storeExt] = data
		return files, 1, 0
	case utOnlyStoreEntries:
		files[segmentName(1)+storeExt] = append(bytes.Clone(fx.file(1, storeExt)[:fileHeaderSize]), data...)
		return files, 1, 0
	case utStoreAfterSealed:
		first()
		files[segmentName(5)+storeExt] = data
		return files, 5, 0
	case utEntriesAfterSealed:
		first()
		files[segmentName(5)+storeExt] = append(bytes.Clone(fx.file(5, storeExt)[:fileHeaderSize]), data...)
		return files, 5, 0
	case utActiveIndex:
		whole()
		files[segmentName(13)+indexExt] = data
		return files, 0, 0
	case utSealedIndex:
		whole()
		files[segmentName(5)+indexExt] = data
		return files, 0, 5
	case utSealedTimeIndex:
		whole()
		files[segmentName(5)+timeExt] = data
		return files, 0, 0
	case utSealedStore:
		whole()
		files[segmentName(5)+storeExt] = data
		return files, 0, 5
	default: // utEntriesAfterAll
		whole()
		hdr := fileHeader{magic: magicStore, baseIndex: 15, baseOffset: fx.m.nextOff, created: utT0.UnixNano(), startTime: fx.m.runMax(14)}
		files[segmentName(15)+storeExt] = append(hdr.encode(), data...)
		return files, 15, 0
	}
}

// utFieldVariants are the entries of a store with one header field of one
// entry changed (checksums are fixed by the fuzz target's 0x10 mode): the
// index or offset of the second entry, its count, the batch-end flag of the
// last one, unknown flags, a reserved byte.
func utFieldVariants(tb testing.TB, store []byte) [][]byte {
	es := utEntrySlices(tb, store)
	second := len(es[0])
	lastFlags := len(store) - fileHeaderSize - len(es[len(es)-1]) + 12
	var out [][]byte
	for _, edit := range []struct{ at, add int }{
		{second + 16, 1},  // index
		{second + 32, 1},  // offset
		{second + 48, 1},  // count
		{lastFlags, -1},   // batch end cleared
		{second + 12, 2},  // unknown flag
		{second + 14, 1},  // reserved byte
		{second + 15, 1},  // reserved byte
		{second + 52, 1},  // reserved word
		{second + 4, 100}, // data length: runs past the end
	} {
		b := bytes.Clone(store[fileHeaderSize:])
		b[edit.at] += byte(edit.add)
		out = append(out, b)
	}
	return out
}

func FuzzOpenGarbage(f *testing.F) {
	fx := utBuildFixture(f)
	add := func(p int, data []byte) {
		f.Add(uint8(p), data)
		f.Add(uint8(p)|0x10, data) // the same with entry checksums fixed
	}
	entries := func(store []byte) []byte { return store[fileHeaderSize:] }
	for _, tr := range append(utTruncations(fx.file(1, storeExt)), fx.file(1, storeExt), fx.file(13, storeExt)) {
		add(utOnlyStore, tr)
		add(utStoreAfterSealed, tr)
	}
	for _, b := range [][]byte{fx.file(1, storeExt), fx.file(5, storeExt), fx.file(13, storeExt)} {
		add(utOnlyStoreEntries, entries(b))
		add(utEntriesAfterSealed, entries(b))
		for _, tr := range utTruncations(entries(b)) {
			add(utOnlyStoreEntries, tr)
			add(utEntriesAfterSealed, tr)
		}
	}
	add(utStoreAfterSealed, fx.file(5, storeExt))
	for _, v := range utFieldVariants(f, fx.file(1, storeExt)) {
		add(utOnlyStoreEntries, v)
	}
	for _, v := range utFieldVariants(f, fx.file(5, storeExt)) {
		add(utEntriesAfterSealed, v)
	}
	for _, p := range []struct {
		p    int
		file []byte
	}{
		{utActiveIndex, fx.file(13, indexExt)},
		{utSealedIndex, fx.file(5, indexExt)},
		{utSealedTimeIndex, fx.file(5, timeExt)},
		{utSealedStore, fx.file(5, storeExt)},
	} {
		add(p.p, p.file)
		for _, tr := range utTruncations(p.file) {
			add(p.p, tr)
		}
		bad := bytes.Clone(p.file)
		bad[len(bad)-3] ^= 0x01
		add(p.p, bad)
	}
	tail := entries(fx.extended)
	for _, e := range utEntrySlices(f, fx.file(13, storeExt)) {
		tail = tail[len(e):] // skip entries 13 and 14: the rest are 15 and 16
	}
	add(utEntriesAfterAll, tail)
	add(utEntriesAfterAll, tail[:len(tail)-1])
	add(utEntriesAfterAll, append(bytes.Clone(tail), tail...))

	f.Fuzz(func(t *testing.T, mode uint8, data []byte) {
		p := int(mode&0x0f) % utPlacements
		if mode&0x10 != 0 {
			data = utFixCRC(data)
		}
		files, garbageBase, corruptBase := fx.utLayout(p, data)
		dir := t.TempDir()
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		utCheckOpenGarbage(t, fx, dir, p, garbageBase, corruptBase)
	})
}

// utCheckOpenGarbage opens the log in dir and checks it: Open fails with
// ErrCorrupt (only possible if a store holds garbage), or everything the log
// serves reads back, the fixture's entries exactly, and Append works.
func utCheckOpenGarbage(t *testing.T, fx *utFixture, dir string, p int, garbageBase, corruptBase uint64) {
	t.Helper()
	opts := utFuzzOptions()
	l, err := Open(dir, opts)
	if err != nil {
		if err.Error() == "" {
			t.Fatalf("Open failed with an empty message")
		}
		if garbageBase == 0 && corruptBase == 0 {
			t.Fatalf("placement %d: Open failed although every store is valid: %v", p, err)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("placement %d: Open failed with %v, want ErrCorrupt", p, err)
		}
		return
	}
	defer func() { l.Close() }()
	first, last := l.FirstIndex(), l.LastIndex()
	if first != 1 {
		t.Fatalf("placement %d: FirstIndex = %d, want 1", p, first)
	}
	if garbageBase == 0 && (last != fx.m.next()-1 || l.NextOffset() != fx.m.nextOff) {
		t.Fatalf("placement %d: the log ends at %d (offset %d), the fixture at %d (offset %d)", p, last, l.NextOffset(), fx.m.next()-1, fx.m.nextOff)
	}
	if garbageBase != 0 && last+1 < garbageBase {
		t.Fatalf("placement %d: the log ends at %d, before the garbage store %d", p, last, garbageBase)
	}
	if rep := l.Recovery(); rep.TruncatedAt >= 0 {
		fi, err := os.Stat(rep.Segment)
		if err != nil || fi.Size() != rep.TruncatedAt || rep.Reason == "" {
			t.Fatalf("recovery %+v, but the store is %v bytes (%v)", rep, fi.Size(), err)
		}
	}
	mayCorrupt := func(i uint64) bool { return corruptBase != 0 && i >= corruptBase && i < corruptBase+4 }
	// The last store holds whole entries up to a batch end and no more.
	bases, _ := utStores(t, dir)
	lastBase := bases[len(bases)-1]
	lastStore, err := os.ReadFile(filepath.Join(dir, segmentName(lastBase)+storeExt))
	if err != nil {
		t.Fatal(err)
	}
	kept, flags := uint64(0), byte(flagBatchEnd)
	for pos := fileHeaderSize; pos < len(lastStore); kept++ {
		e, used, err := DecodeEntry(lastStore[pos:])
		if err != nil || e.Index != lastBase+kept {
			t.Fatalf("placement %d: the recovered last store has a bad entry at %d: %v", p, pos, err)
		}
		flags = lastStore[pos+12]
		pos += used
	}
	if lastBase+kept != last+1 || flags&flagBatchEnd == 0 {
		t.Fatalf("placement %d: the last store holds %d entries from %d (last flags %#x), the log ends at %d", p, kept, lastBase, flags, last)
	}

	// Read every entry; build the model of what the log serves.
	m := utNewModel(first)
	m.firstOff, m.nextOff = l.FirstOffset(), l.FirstOffset()
	store1, err := os.ReadFile(filepath.Join(dir, segmentName(1)+storeExt))
	if err != nil {
		t.Fatal(err)
	}
	m.startMax = int64(binary.LittleEndian.Uint64(store1[40:]))
	corrupt := false
	for i := first; i <= last; i++ {
		e, err := l.Read(i)
		if err != nil {
			if mayCorrupt(i) && errors.Is(err, ErrCorrupt) {
				corrupt = true
				want, _ := fx.m.get(i)
				m.add([]Entry{want})
				continue
			}
			t.Fatalf("placement %d: Read(%d) of [%d, %d]: %v", p, i, first, last, err)
		}
		if e.Index != i || e.Offset != m.nextOff {
			t.Fatalf("placement %d: Read(%d) = entry %d at offset %d, want offset %d", p, i, e.Index, e.Offset, m.nextOff)
		}
		if want, ok := fx.m.get(i); ok && (garbageBase == 0 || i < garbageBase) {
			utSameEntry(t, fmt.Sprintf("placement %d: Read(%d)", p, i), e, want)
		}
		m.add([]Entry{e})
	}
	if m.nextOff != l.NextOffset() {
		t.Fatalf("placement %d: entries end at offset %d, NextOffset is %d", p, m.nextOff, l.NextOffset())
	}
	// Everything else agrees with the entries read, unless a sealed
	// segment is damaged, in which case errors must say so.
	it := l.NewIterator(first)
	n := first
	for ; it.Next(); n++ {
		want, _ := m.get(n)
		utSameEntry(t, fmt.Sprintf("placement %d: iterator", p), it.Entry(), want)
	}
	if it.Err() != nil && !(corrupt && errors.Is(it.Err(), ErrCorrupt)) || it.Err() == nil && n != last+1 {
		t.Fatalf("placement %d: iterator stopped at %d of [%d, %d]: %v", p, n, first, last, it.Err())
	}
	for _, e := range m.entries {
		if e.Count > 0 {
			for _, off := range []uint64{e.Offset, e.Offset + uint64(e.Count) - 1} {
				got, err := l.ReadOffset(off)
				if err != nil && !(mayCorrupt(e.Index) && errors.Is(err, ErrCorrupt)) || err == nil && got.Index != e.Index {
					t.Fatalf("placement %d: ReadOffset(%d) = entry %d, %v; want %d", p, off, got.Index, err, e.Index)
				}
			}
		}
		for _, tm := range []int64{e.Time, e.Time - 1} {
			got, err := l.SearchTime(tm)
			want, ok := m.searchTime(tm)
			if corrupt && errors.Is(err, ErrCorrupt) {
				continue
			}
			if !ok || err != nil || got != want {
				t.Fatalf("placement %d: SearchTime(%d) = %d, %v; want %d", p, tm, got, err, want)
			}
		}
	}

	// Append works, and survives a reopen that finds nothing to repair.
	next := last + 1
	add := Entry{Index: next, Term: 9, Count: 1, Time: 7, Data: []byte("appended")}
	err = l.Append([]Entry{add})
	if next == math.MaxUint64 || l.NextOffset() == math.MaxUint64 {
		utWantErr(t, "Append at the end of the index or offset space", err, ErrInvalidBatch)
		return
	}
	if err != nil {
		t.Fatalf("placement %d: Append(%d): %v", p, next, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("placement %d: reopen after Append: %v", p, err)
	}
	if rep := l.Recovery(); rep.TruncatedAt != -1 || rep.IndexRebuilt {
		t.Fatalf("placement %d: reopen after a clean close repaired something: %+v", p, rep)
	}
	got, err := l.Read(next)
	if err != nil || l.LastIndex() != next {
		t.Fatalf("placement %d: after reopen Read(%d) = %v, last index %d", p, next, err, l.LastIndex())
	}
	add.Offset = m.nextOff
	utSameEntry(t, "appended entry after reopen", got, add)
}
