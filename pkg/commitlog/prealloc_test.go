package commitlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// Tests of Options.Preallocate: the active store is extended ahead of its
// writes with zeros, which recovery must tell from a torn write, sealing
// must cut, and a file system without fallocate must not notice.

// utStoreFileSize is the length of the store file of the segment at base.
func utStoreFileSize(t testing.TB, dir string, base uint64) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, segmentName(base)+storeExt))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestPreallocateAhead(t *testing.T) {
	const chunk = 1024
	h := utOpen(t, Options{Preallocate: chunk, MaxSegmentBytes: 8 << 10})
	h.appendN(1)
	bases, sizes := utStores(t, h.dir)
	if got := utStoreFileSize(t, h.dir, bases[0]); got != fileHeaderSize+chunk {
		t.Fatalf("after one small append the store file is %d bytes (%d of entries), want the header plus one chunk, %d",
			got, sizes[0], fileHeaderSize+chunk)
	}
	// Grow past the first chunk: the file grows a chunk at a time and
	// stays ahead of the entries.
	for h.l.Stats().Bytes < fileHeaderSize+3*chunk {
		h.appendN(3)
		_, sizes = utStores(t, h.dir)
		got := utStoreFileSize(t, h.dir, bases[0])
		if got < sizes[0] || (got-fileHeaderSize)%chunk != 0 {
			t.Fatalf("store file of %d bytes for %d bytes of entries: want whole chunks ahead of them", got, sizes[0])
		}
	}
	h.cycle("preallocated")
	if rep := h.l.Recovery(); rep.TruncatedAt != -1 || rep.DroppedBytes != 0 || rep.DroppedEntries != 0 {
		t.Fatalf("reopening a preallocated store repaired something: %+v", rep)
	}
	h.appendN(2, 1)
	h.cycle("appended after reopening")
}

func TestPreallocateBatchLargerThanChunk(t *testing.T) {
	h := utOpen(t, Options{Preallocate: 256, MaxSegmentBytes: 64 << 10})
	h.appendN(1)
	h.mustAppend(h.batch(40, func(k int, e *Entry) { e.Data = make([]byte, 100) })) // ~6 KiB in one write
	h.appendN(1)
	h.cycle("a batch larger than a chunk")
}

func TestPreallocateNeverPastSegmentLimit(t *testing.T) {
	const limit = 2048
	h := utOpen(t, Options{Preallocate: 1 << 20, MaxSegmentBytes: limit})
	for h.l.Stats().Segments < 3 {
		h.appendN(2)
		bases, _ := utStores(t, h.dir)
		if got := utStoreFileSize(t, h.dir, bases[len(bases)-1]); got > limit {
			t.Fatalf("active store file is %d bytes, more than MaxSegmentBytes %d", got, limit)
		}
	}
	h.cycle("rolled")
}

// TestPreallocateSealCutsStore: a sealed store holds its entries and no
// zeros, whatever was preallocated (Open and openSealed check its size).
func TestPreallocateSealCutsStore(t *testing.T) {
	h := utOpen(t, Options{Preallocate: 4096, MaxSegmentBytes: 1024})
	for h.l.Stats().Segments < 4 {
		h.appendN(1, 2)
	}
	bases, sizes := utStores(t, h.dir)
	for k := range len(bases) - 1 {
		if got := utStoreFileSize(t, h.dir, bases[k]); got != sizes[k] {
			t.Fatalf("sealed store %d is %d bytes, its entries end at %d", bases[k], got, sizes[k])
		}
	}
	if got := utStoreFileSize(t, h.dir, bases[len(bases)-1]); got <= sizes[len(sizes)-1] {
		t.Fatalf("active store is %d bytes for %d of entries: not preallocated", got, sizes[len(sizes)-1])
	}
	h.cycle("sealed")
	// Truncating back into a sealed segment makes it active again, and it
	// is preallocated from there.
	if err := h.l.TruncateFrom(bases[1] + 1); err != nil {
		t.Fatal(err)
	}
	h.m.truncateFrom(bases[1] + 1)
	h.appendN(1)
	h.cycle("truncated into a sealed segment and appended")
}

func TestPreallocateTruncateFromActive(t *testing.T) {
	h := utOpen(t, Options{Preallocate: 4096})
	h.appendN(3, 1, 2, 4)
	cut := h.m.next() - 5
	if err := h.l.TruncateFrom(cut); err != nil {
		t.Fatal(err)
	}
	h.m.truncateFrom(cut)
	h.cycle("truncated")
	h.appendN(1) // must not leave what was cut readable behind it
	h.cycle("truncated and appended")
}

// TestPreallocateDataPastZeros: bytes that are not zero somewhere in the
// preallocated tail, after zeros (a later page of an unfinished write that
// reached the disk before an earlier one), are a torn tail: recovery cuts
// the file to the entries and says so.
func TestPreallocateDataPastZeros(t *testing.T) {
	h := utOpen(t, Options{Preallocate: 4096})
	h.appendN(2, 1)
	if err := h.l.Close(); err != nil {
		t.Fatal(err)
	}
	bases, sizes := utStores(t, h.dir)
	path := filepath.Join(h.dir, segmentName(bases[0])+storeExt)
	fileSize := utStoreFileSize(t, h.dir, bases[0])
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x5a}, fileSize-1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := Open(h.dir, h.opts)
	if err != nil {
		t.Fatal(err)
	}
	h.l = l
	rep := l.Recovery()
	if rep.TruncatedAt != sizes[0] || rep.DroppedBytes != fileSize-sizes[0] || rep.DroppedEntries != 1 || rep.Reason == "" {
		t.Fatalf("Recovery = %+v; want the store cut at %d, %d bytes and 1 entry dropped, with a reason", rep, sizes[0], fileSize-sizes[0])
	}
	if got := utStoreFileSize(t, h.dir, bases[0]); got != sizes[0] {
		t.Fatalf("store is %d bytes after recovery, want %d", got, sizes[0])
	}
	h.check("after cutting a torn preallocated tail")
	h.appendN(1)
	h.cycle("appended after the cut")
}

func TestPreallocateOff(t *testing.T) {
	h := utOpen(t, Options{Preallocate: -1})
	h.appendN(1, 3, 2)
	bases, sizes := utStores(t, h.dir)
	if got := utStoreFileSize(t, h.dir, bases[0]); got != sizes[0] {
		t.Fatalf("with Preallocate < 0 the store is %d bytes for %d of entries", got, sizes[0])
	}
	h.cycle("not preallocated")
}

// unsupportedFS is a file system whose files cannot preallocate, as on a
// file system without fallocate(2); it counts the attempts.
type unsupportedFS struct {
	vfs.FS
	tries *atomic.Int64
}

func (f unsupportedFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return unsupportedFile{file, f.tries}, nil
}

type unsupportedFile struct {
	vfs.File
	tries *atomic.Int64
}

func (f unsupportedFile) Allocate(off, length int64) error {
	f.tries.Add(1)
	return fmt.Errorf("fallocate %s: %w", f.Name(), errors.ErrUnsupported)
}

func TestPreallocateUnsupported(t *testing.T) {
	tries := &atomic.Int64{}
	h := utOpen(t, Options{FS: unsupportedFS{vfs.NoSync{FS: vfs.OS{}}, tries}, MaxSegmentBytes: 1024})
	for h.l.Stats().Segments < 3 {
		h.appendN(2, 1)
	}
	if n := tries.Load(); n != 1 {
		t.Fatalf("%d attempts to preallocate, want 1: the first says the file system cannot", n)
	}
	bases, sizes := utStores(t, h.dir)
	if got := utStoreFileSize(t, h.dir, bases[len(bases)-1]); got != sizes[len(sizes)-1] {
		t.Fatalf("active store is %d bytes for %d of entries", got, sizes[len(sizes)-1])
	}
	h.cycle("on a file system that cannot preallocate")
}

// TestPreallocateFails: a failed preallocation (a disk too full for a whole
// chunk) does not fail the append, which then extends the file itself.
func TestPreallocateFails(t *testing.T) {
	fault := vfs.NewFault(vfs.NoSync{FS: vfs.OS{}}, vfs.OpAllocate)
	h := utOpen(t, Options{FS: fault, Preallocate: 4096})
	fault.FailAt(1, vfs.ErrNoSpace, true, false)
	h.appendN(1, 2, 1)
	if len(fault.Fired()) != 3 {
		t.Fatalf("preallocation failed %d times, want once per append (3): %v", len(fault.Fired()), fault.Fired())
	}
	bases, sizes := utStores(t, h.dir)
	if got := utStoreFileSize(t, h.dir, bases[0]); got != sizes[0] {
		t.Fatalf("store is %d bytes for %d of entries", got, sizes[0])
	}
	fault.Disarm()
	h.appendN(1)
	if got := utStoreFileSize(t, h.dir, bases[0]); got <= h.l.Stats().Bytes {
		t.Fatalf("once the disk has room again the store is preallocated again: %d bytes", got)
	}
	h.cycle("after failed preallocations")
}
