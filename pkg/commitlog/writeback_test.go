package commitlog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// writebackFS records the writeback started on each store file and can
// make starting it fail. Each range is checked against the file's size when
// it is started.
type writebackFS struct {
	vfs.FS // vfs.OS, whose files start writeback; hides its Locker
	fail   error

	mu     sync.Mutex
	ranges map[string][][2]int64 // store path → [off, end) in call order
	beyond []string              // ranges that reached past the file's end
}

func newWritebackFS(fail error) *writebackFS {
	return &writebackFS{FS: vfs.OS{}, fail: fail, ranges: map[string][][2]int64{}}
}

func (f *writebackFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &writebackFile{File: file, fs: f, name: name}, nil
}

func (f *writebackFS) calls() (n int, ranges map[string][][2]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ranges = map[string][][2]int64{}
	for k, v := range f.ranges {
		ranges[k] = append([][2]int64(nil), v...)
		n += len(v)
	}
	return n, ranges
}

type writebackFile struct {
	vfs.File
	fs   *writebackFS
	name string
}

func (wf *writebackFile) StartWriteback(off, length int64) error {
	size, err := wf.Size()
	if err != nil {
		return err
	}
	wf.fs.mu.Lock()
	wf.fs.ranges[wf.name] = append(wf.fs.ranges[wf.name], [2]int64{off, off + length})
	if off < 0 || length <= 0 || off+length > size {
		wf.fs.beyond = append(wf.fs.beyond, wf.name)
	}
	wf.fs.mu.Unlock()
	if wf.fs.fail != nil {
		return wf.fs.fail
	}
	return wf.File.(vfs.WritebackStarter).StartWriteback(off, length)
}

// TestWritebackBehindTheAppender: with SyncNone the appender starts the
// writeback of each WritebackBytes it writes, in order and without gaps,
// never past what it wrote, and the log reads back whole through rolls,
// a cut-back and a reopen.
func TestWritebackBehindTheAppender(t *testing.T) {
	fs := newWritebackFS(nil)
	const every = 16 << 10
	h := utOpen(t, Options{FS: fs, Sync: SyncNone, WritebackBytes: every, MaxSegmentBytes: 96 << 10})
	for range 25 {
		h.appendN(200)
	}
	n, ranges := fs.calls()
	if n == 0 {
		t.Fatal("no writeback was started")
	}
	stores := 0
	for name, rs := range ranges {
		if !strings.HasSuffix(name, storeExt) {
			t.Errorf("writeback started on %s, which is not a store", name)
			continue
		}
		stores++
		for i, r := range rs {
			if r[1]-r[0] < every {
				t.Errorf("%s: range %d is %v, shorter than WritebackBytes", name, i, r)
			}
			if want := int64(0); i > 0 {
				want = rs[i-1][1]
				if r[0] != want {
					t.Errorf("%s: range %d starts at %d, want %d (where the one before ended)", name, i, r[0], want)
				}
			} else if r[0] != want {
				t.Errorf("%s: the first range starts at %d, want 0", name, r[0])
			}
		}
	}
	if stores < 3 {
		t.Fatalf("writeback on %d stores, want one per segment of at least 3", stores)
	}
	if len(fs.beyond) > 0 {
		t.Fatalf("writeback reached past the end of %v", fs.beyond)
	}
	// Cut the active segment back below where its writeback had got to,
	// then append: the next range starts at or below the cut.
	var active *segment
	for range 50 {
		h.l.mu.RLock()
		active = h.l.segments[len(h.l.segments)-1]
		started := active.writtenBack
		h.l.mu.RUnlock()
		if started > 0 {
			break
		}
		h.appendN(200)
	}
	_, ranges = fs.calls()
	from := active.hdr.baseIndex + 1
	if err := h.l.TruncateFrom(from); err != nil {
		t.Fatal(err)
	}
	h.m.truncateFrom(from)
	h.l.mu.RLock()
	cut, path := active.size, active.storePath
	h.l.mu.RUnlock()
	before := len(ranges[path])
	for range 50 {
		h.appendN(200)
		if _, ranges = fs.calls(); len(ranges[path]) > before {
			break
		}
	}
	if len(ranges[path]) == before {
		t.Fatalf("no writeback of %s after the cut-back", path)
	}
	if r := ranges[path][before]; r[0] > cut {
		t.Fatalf("after a cut-back to %d, writeback resumed at %v: the bytes between were never started", cut, r)
	}
	if len(fs.beyond) > 0 {
		t.Fatalf("after a cut-back, writeback reached past the end of %v", fs.beyond)
	}
	h.cycle("with writeback")
}

func TestWritebackOnlyWithSyncNone(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"sync always", Options{Sync: SyncAlways, WritebackBytes: 4 << 10}},
		{"turned off", Options{Sync: SyncNone, WritebackBytes: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newWritebackFS(nil)
			tc.opts.FS = fs
			h := utOpen(t, tc.opts)
			for range 20 {
				h.appendN(200)
			}
			if n, _ := fs.calls(); n != 0 {
				t.Fatalf("writeback started %d times", n)
			}
		})
	}
}

// TestWritebackFailureOnlyStopsIt: a failure to start writeback turns it
// off for the log; appends go on and lose nothing.
func TestWritebackFailureOnlyStopsIt(t *testing.T) {
	fs := newWritebackFS(errors.New("injected sync_file_range failure"))
	h := utOpen(t, Options{FS: fs, Sync: SyncNone, WritebackBytes: 4 << 10, MaxSegmentBytes: 64 << 10})
	for range 40 {
		h.appendN(200)
	}
	if n, _ := fs.calls(); n != 1 {
		t.Fatalf("writeback started %d times after failing, want once", n)
	}
	h.cycle("after a failed writeback")
}

// TestStartWritebackOnAFile: vfs.OS's files start writeback of a written
// range and reject a bad one with an error that names the file.
func TestStartWritebackOnAFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	f, err := vfs.OS{}.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.WriteAt(make([]byte, 64<<10), 0); err != nil {
		t.Fatal(err)
	}
	w, ok := f.(vfs.WritebackStarter)
	if !ok {
		t.Fatal("vfs.OS's files do not start writeback")
	}
	if err := w.StartWriteback(0, 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := w.StartWriteback(-1, 10); err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("a negative offset: %v, want an error naming %s", err, name)
	}
}
