package commitlog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// Tests of zeroing ahead (zero.go): the zeroer writes over space beyond the
// appender's end, concurrently with it, and must never write over an entry.

// slowZeroFS zeroes through vfs.OS after a pause, so that the appender often
// reaches a piece while it is being zeroed. Its fsyncs are real.
type slowZeroFS struct {
	vfs.OS
	delay time.Duration
	fills atomic.Int64
	fail  error // when set, every ZeroFill fails with it
}

func (f *slowZeroFS) ZeroFill(name string, off, length int64) error {
	f.fills.Add(1)
	if f.fail != nil {
		return f.fail
	}
	time.Sleep(f.delay)
	return f.OS.ZeroFill(name, off, length)
}

func TestZeroAheadKeepsEveryEntry(t *testing.T) {
	fs := &slowZeroFS{delay: 2 * time.Millisecond}
	const chunk = 256 << 10 // the zeroer's gap and pieces: 64 KiB
	h := utOpen(t, Options{FS: fs, Sync: SyncAlways, Preallocate: chunk, MaxSegmentBytes: 3 << 20})
	if h.l.zero == nil {
		t.Fatal("a SyncAlways log on a file system that can zero does not zero ahead")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 300 {
		n := 1 + rng.IntN(4)
		h.mustAppend(h.batch(n, func(k int, e *Entry) {
			// Mostly small entries; some batches jump past the gap
			// into the piece being zeroed.
			size := 50 + rng.IntN(2000)
			if rng.IntN(6) == 0 {
				size = 40<<10 + rng.IntN(100<<10)
			}
			*e = utEntry(e.Index, h.gen, size, e.Count, e.Time)
		}))
		if step%60 == 59 {
			// Cut back a few entries and write over them.
			i := h.m.next() - 1 - uint64(rng.IntN(5))
			if err := h.l.TruncateFrom(i); err != nil {
				t.Fatalf("TruncateFrom(%d): %v", i, err)
			}
			h.m.truncateFrom(i)
			h.gen++
		}
		if step%50 == 0 {
			h.check("while zeroing ahead")
		}
	}
	h.l.zero.mu.Lock()
	zeroed := h.l.zero.zeroed
	h.l.zero.mu.Unlock()
	if zeroed == 0 || fs.fills.Load() == 0 {
		t.Fatalf("the zeroer zeroed %d bytes in %d calls: the test did not exercise it", zeroed, fs.fills.Load())
	}
	if bases, _ := utStores(t, h.dir); len(bases) < 2 {
		t.Fatalf("%d segment(s): the test did not roll", len(bases))
	}
	h.cycle("after zeroing ahead")
	h.appendN(3, 1)
	h.cycle("appended after reopening")
}

func TestZeroAheadZeroesBeyondTheEnd(t *testing.T) {
	fs := &slowZeroFS{}
	h := utOpen(t, Options{FS: fs, Sync: SyncAlways, Preallocate: 256 << 10})
	h.appendN(1)
	z := h.l.zero
	deadline := time.Now().Add(10 * time.Second)
	for {
		z.mu.Lock()
		done, end, alloc := z.done, z.end, z.alloc
		z.mu.Unlock()
		if done == alloc && alloc > end {
			if end+z.gap > alloc {
				t.Fatalf("zeroed up to %d, end %d: the gap is %d", done, end, z.gap)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the zeroer did not reach the reserved end: done %d, end %d, reserved %d", done, end, alloc)
		}
		time.Sleep(time.Millisecond)
	}
	// With half a chunk or less left ahead, the next write reserves more.
	a := h.l.segments[len(h.l.segments)-1]
	h.mustAppend(h.batch(1, func(_ int, e *Entry) { e.Data = make([]byte, 160<<10) }))
	if a.alloc-a.size < 128<<10 {
		t.Fatalf("%d bytes reserved ahead of the end after a write that left less than half a chunk", a.alloc-a.size)
	}
	h.cycle("zeroed ahead")
}

func TestZeroAheadFailureOnlySlows(t *testing.T) {
	fs := &slowZeroFS{fail: errors.New("injected zero-fill failure")}
	h := utOpen(t, Options{FS: fs, Sync: SyncAlways, Preallocate: 128 << 10})
	for range 20 {
		h.appendN(3)
	}
	h.l.zero.mu.Lock()
	off := h.l.zero.off
	h.l.zero.mu.Unlock()
	if !off || fs.fills.Load() != 1 {
		t.Fatalf("after a failed fill: off = %v after %d fills, want zeroing off after one", off, fs.fills.Load())
	}
	h.cycle("after a failed fill")
}

func TestZeroAheadOnlyWhenItHelps(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"sync none", Options{FS: &slowZeroFS{}, Sync: SyncNone}},
		{"no preallocation", Options{FS: &slowZeroFS{}, Sync: SyncAlways, Preallocate: -1}},
		{"small chunks", Options{FS: &slowZeroFS{}, Sync: SyncAlways, Preallocate: 4 << 10}},
		{"a file system that cannot zero", Options{FS: vfs.NoSync{FS: vfs.OS{}}, Sync: SyncAlways}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := utOpen(t, tc.opts)
			if h.l.zero != nil {
				t.Fatal("the log zeroes ahead")
			}
		})
	}
}

func TestZeroFillStaysInsideTheFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	data := bytes.Repeat([]byte{0xAB}, 10<<10)
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (vfs.OS{}).ZeroFill(name, 8<<10, 8<<10); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{0xAB}, 8<<10), make([]byte, 2<<10)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("after ZeroFill(8 KiB, 8 KiB) of a 10 KiB file: %d bytes, want the first 8 KiB kept and 2 KiB of zeros", len(got))
	}
	missing := filepath.Join(dir, "missing")
	if err := (vfs.OS{}).ZeroFill(missing, 0, 4096); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ZeroFill of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("ZeroFill created a file")
	}
}
