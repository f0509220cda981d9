package vfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// utCreate creates dir/name through fs, writes data at 0 and returns the
// open file; the test closes it.
func utCreate(t *testing.T, fs FS, path string, data []byte) File {
	t.Helper()
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("OpenFile %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	if len(data) > 0 {
		if n, err := f.WriteAt(data, 0); err != nil || n != len(data) {
			t.Fatalf("WriteAt %s = %d, %v", path, n, err)
		}
	}
	return f
}

func utReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnitOSFile(t *testing.T) {
	fs := OS{}
	path := filepath.Join(t.TempDir(), "f")
	f := utCreate(t, fs, path, []byte("hello"))
	if f.Name() != path {
		t.Fatalf("Name = %q, want %q", f.Name(), path)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created file: %v, mode %v; want 0600", err, fi.Mode())
	}
	steps := []struct {
		name string
		do   func() error
		want []byte // file contents afterwards
	}{
		{"write past the end leaves a hole of zeros", func() error {
			_, err := f.WriteAt([]byte("world"), 8)
			return err
		}, []byte("hello\x00\x00\x00world")},
		{"overwrite in the middle", func() error {
			_, err := f.WriteAt([]byte("XY"), 3)
			return err
		}, []byte("helXY\x00\x00\x00world")},
		{"sync", f.Sync, []byte("helXY\x00\x00\x00world")},
		{"truncate shorter", func() error { return f.Truncate(4) }, []byte("helX")},
		{"truncate longer adds zeros", func() error { return f.Truncate(6) }, []byte("helX\x00\x00")},
		{"allocate past the end extends with zeros", func() error { return f.Allocate(6, 3) }, []byte("helX\x00\x00\x00\x00\x00")},
		{"allocate inside changes nothing", func() error { return f.Allocate(0, 4) }, []byte("helX\x00\x00\x00\x00\x00")},
		{"write into allocated space", func() error {
			_, err := f.WriteAt([]byte("ab"), 6)
			return err
		}, []byte("helX\x00\x00ab\x00")},
		{"truncate to zero", func() error { return f.Truncate(0) }, []byte{}},
		{"write after truncation", func() error {
			_, err := f.WriteAt([]byte("again"), 0)
			return err
		}, []byte("again")},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		size, err := f.Size()
		if err != nil || size != int64(len(st.want)) {
			t.Fatalf("%s: Size = %d, %v; want %d", st.name, size, err, len(st.want))
		}
		got := make([]byte, len(st.want))
		if n, err := f.ReadAt(got, 0); n != len(got) || (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(got, st.want) {
			t.Fatalf("%s: ReadAt = %q (%d, %v), want %q", st.name, got, n, err, st.want)
		}
		if b := utReadFile(t, path); !bytes.Equal(b, st.want) {
			t.Fatalf("%s: file holds %q, want %q", st.name, b, st.want)
		}
	}
	// Reading past the end is io.EOF with what there was.
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, 2); n != 3 || !errors.Is(err, io.EOF) || string(buf[:n]) != "ain" {
		t.Fatalf("ReadAt past the end = %d %q, %v; want 3 \"ain\", io.EOF", n, buf[:n], err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Fatalf("WriteAt after Close succeeded")
	}
	if err := f.Sync(); err == nil {
		t.Fatalf("Sync after Close succeeded")
	}
	if _, err := fs.OpenFile(filepath.Join(t.TempDir(), "missing"), os.O_RDONLY, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenFile of a missing file = %v, want ErrNotExist", err)
	}
}

func TestUnitOSMap(t *testing.T) {
	fs := OS{}
	path := filepath.Join(t.TempDir(), "idx")
	f := utCreate(t, fs, path, nil)
	if err := f.Truncate(8192); err != nil { // sparse, like an index
		t.Fatal(err)
	}
	m, err := f.Map(8192)
	if err != nil {
		t.Fatal(err)
	}
	b := m.Bytes()
	if len(b) != 8192 || !bytes.Equal(b, make([]byte, 8192)) {
		t.Fatalf("mapping of a sparse file: %d bytes, not all zero", len(b))
	}
	// Writes after the mapping was made show through it, on both pages.
	for _, w := range []struct {
		off  int64
		data string
	}{{10, "hello"}, {4094, "across"}, {8187, "tail!"}} {
		if _, err := f.WriteAt([]byte(w.data), w.off); err != nil {
			t.Fatal(err)
		}
		if got := string(b[w.off : w.off+int64(len(w.data))]); got != w.data {
			t.Fatalf("mapping at %d shows %q after WriteAt of %q", w.off, got, w.data)
		}
	}
	// A second, read-only handle maps the same data, and the mapping
	// outlives the handle.
	ro, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ro.Map(16)
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(m2.Bytes()[10:15]); got != "hello" {
		t.Fatalf("read-only mapping shows %q", got)
	}
	if _, err := f.WriteAt([]byte("HELLO"), 10); err != nil {
		t.Fatal(err)
	}
	if got := string(m2.Bytes()[10:15]); got != "HELLO" {
		t.Fatalf("mapping whose handle was closed shows %q after a write", got)
	}
	for _, mm := range []Mapping{m, m2} {
		if err := mm.Unmap(); err != nil {
			t.Fatalf("Unmap: %v", err)
		}
		if err := mm.Unmap(); err != nil {
			t.Fatalf("second Unmap: %v", err)
		}
		if mm.Bytes() != nil {
			t.Fatalf("Bytes after Unmap is not nil")
		}
	}
	for _, n := range []int{0, -1} {
		if _, err := f.Map(n); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("Map(%d) = %v, want an error naming the file", n, err)
		}
	}
}

func TestUnitOSDirectory(t *testing.T) {
	fs := OS{}
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("MkdirAll of an existing directory: %v", err)
	}
	names := []string{"c.store", "a.index", "10", "2", "b", "00000000000000000002.store", "00000000000000000001.store"}
	for _, n := range names {
		f := utCreate(t, fs, filepath.Join(dir, n), []byte(n))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := fs.ReadDir(dir)
	want := slices.Clone(names)
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ReadDir = %v, %v; want %v", got, err, want)
	}
	if err := fs.SyncDir(dir); err != nil {
		t.Fatalf("SyncDir: %v", err)
	}

	cases := []struct {
		name      string
		do        func() error
		wantErr   error
		wantNames []string
		check     func(t *testing.T)
	}{
		{"rename to a new name", func() error { return fs.Rename(filepath.Join(dir, "b"), filepath.Join(dir, "d")) }, nil,
			[]string{"00000000000000000001.store", "00000000000000000002.store", "10", "2", "a.index", "c.store", "d"},
			func(t *testing.T) {
				if b := utReadFile(t, filepath.Join(dir, "d")); string(b) != "b" {
					t.Fatalf("renamed file holds %q", b)
				}
			}},
		{"rename replaces the target", func() error { return fs.Rename(filepath.Join(dir, "10"), filepath.Join(dir, "2")) }, nil,
			[]string{"00000000000000000001.store", "00000000000000000002.store", "2", "a.index", "c.store", "d"},
			func(t *testing.T) {
				if b := utReadFile(t, filepath.Join(dir, "2")); string(b) != "10" {
					t.Fatalf("replaced file holds %q, want the source's", b)
				}
			}},
		{"rename of a missing file", func() error { return fs.Rename(filepath.Join(dir, "nope"), filepath.Join(dir, "x")) }, os.ErrNotExist,
			[]string{"00000000000000000001.store", "00000000000000000002.store", "2", "a.index", "c.store", "d"}, nil},
		{"remove", func() error { return fs.Remove(filepath.Join(dir, "c.store")) }, nil,
			[]string{"00000000000000000001.store", "00000000000000000002.store", "2", "a.index", "d"}, nil},
		{"remove a missing file", func() error { return fs.Remove(filepath.Join(dir, "c.store")) }, os.ErrNotExist,
			[]string{"00000000000000000001.store", "00000000000000000002.store", "2", "a.index", "d"}, nil},
		{"sync a missing directory", func() error { return fs.SyncDir(filepath.Join(root, "none")) }, os.ErrNotExist,
			[]string{"00000000000000000001.store", "00000000000000000002.store", "2", "a.index", "d"}, nil},
		{"list a missing directory", func() error { _, err := fs.ReadDir(filepath.Join(root, "none")); return err }, os.ErrNotExist,
			[]string{"00000000000000000001.store", "00000000000000000002.store", "2", "a.index", "d"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if got, err := fs.ReadDir(dir); err != nil || !slices.Equal(got, tc.wantNames) {
				t.Fatalf("ReadDir = %v, %v; want %v", got, err, tc.wantNames)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

func TestUnitOSLock(t *testing.T) {
	var fs FS = OS{}
	lk, ok := fs.(Locker)
	if !ok {
		t.Fatalf("OS does not implement Locker")
	}
	path := filepath.Join(t.TempDir(), "LOCK")
	l1, err := lk.Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lk.Lock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock = %v, want ErrLocked", err)
	}
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := lk.Lock(path)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	l2.Close()
}

// utOpScript runs one of each kind of operation through fs in dir, ignoring
// errors, and returns nothing: tests count what a Fault saw.
func utOpScript(fs FS, dir string) {
	p := filepath.Join(dir, "s")
	_ = fs.MkdirAll(dir, 0o700) // errors ignored: the Fault's count is what matters
	f, err := fs.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	_, _ = f.WriteAt([]byte("abcd"), 0)
	_, _ = f.WriteAt([]byte("efgh"), 4)
	_, _ = f.ReadAt(make([]byte, 2), 0)
	_ = f.Sync()
	_ = f.Truncate(6)
	_ = f.Allocate(6, 4096)
	_, _ = f.Size()
	if m, err := f.Map(6); err == nil {
		_ = m.Unmap()
	}
	_ = f.Close()
	_, _ = fs.ReadDir(dir)
	_ = fs.Rename(p, p+"2")
	_ = fs.SyncDir(dir)
	_ = fs.Remove(p + "2")
}

func TestUnitFaultCounts(t *testing.T) {
	cases := []struct {
		name string
		mask Op
		want int
	}{
		{"nothing", 0, 0},
		{"writes", OpWrite, 2},
		{"writes and syncs", OpWrite | OpSync, 3},
		{"reads", OpRead, 1},
		{"mutating", OpMutating, 1 /*mkdir*/ + 1 /*open*/ + 2 /*write*/ + 1 /*sync*/ + 1 /*truncate*/ + 1 /*allocate*/ + 1 /*rename*/ + 1 /*syncdir*/ + 1 /*remove*/},
		{"all", OpAll, 15},
		{"open, size, map, close, readdir", OpOpen | OpSize | OpMap | OpClose | OpReadDir, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFault(OS{}, tc.mask)
			utOpScript(f, t.TempDir())
			if got := f.Count(); got != tc.want {
				t.Fatalf("Count = %d, want %d", got, tc.want)
			}
			if len(f.Fired()) != 0 {
				t.Fatalf("Fired = %v before any FailAt", f.Fired())
			}
		})
	}
}

func TestUnitFaultFailAt(t *testing.T) {
	cases := []struct {
		name     string
		n        int
		err      error
		sticky   bool
		short    bool
		wantFail []bool // per write, of six
		wantFile string
	}{
		{"the second write, once", 2, ErrIO, false, false, []bool{false, true, false, false, false, false}, "aaaa____ccccddddeeeeffff"},
		{"the first write", 1, ErrNoSpace, false, false, []bool{true, false, false, false, false, false}, "____bbbbccccddddeeeeffff"},
		{"the fourth and every later one", 4, ErrNoSpace, true, false, []bool{false, false, false, true, true, true}, "aaaabbbbcccc"},
		{"the third, short", 3, ErrIO, false, true, []bool{false, false, true, false, false, false}, "aaaabbbbcc__ddddeeeeffff"},
		{"sticky and short", 5, ErrIO, true, true, []bool{false, false, false, false, true, true}, "aaaabbbbccccddddee__ff"},
		{"beyond the writes made", 7, ErrIO, true, false, []bool{false, false, false, false, false, false}, "aaaabbbbccccddddeeeeffff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fault := NewFault(OS{}, OpWrite)
			path := filepath.Join(t.TempDir(), "f")
			f := utCreate(t, fault, path, nil)
			// Holes read as zeros; show them as '_'.
			fault.FailAt(tc.n, tc.err, tc.sticky, tc.short)
			var fired []string
			for k, fail := range tc.wantFail {
				data := bytes.Repeat([]byte{byte('a' + k)}, 4)
				n, err := f.WriteAt(data, int64(4*k))
				if fail {
					var pe *os.PathError
					if !errors.Is(err, tc.err) || !errors.As(err, &pe) || pe.Op != "write" || pe.Path != path {
						t.Fatalf("write %d: error %v, want a write *os.PathError on %s wrapping %v", k+1, err, path, tc.err)
					}
					if want := map[bool]int{false: 0, true: 2}[tc.short]; n != want {
						t.Fatalf("write %d failed after %d bytes, want %d", k+1, n, want)
					}
					fired = append(fired, "write "+path)
				} else if err != nil || n != 4 {
					t.Fatalf("write %d = %d, %v; want success", k+1, n, err)
				}
			}
			got := bytes.ReplaceAll(utReadFile(t, path), []byte{0}, []byte("_"))
			if string(got) != tc.wantFile {
				t.Fatalf("file holds %q, want %q", got, tc.wantFile)
			}
			if !slices.Equal(fault.Fired(), fired) {
				t.Fatalf("Fired = %q, want %q", fault.Fired(), fired)
			}
			if fault.Count() != len(tc.wantFail) {
				t.Fatalf("Count = %d, want %d", fault.Count(), len(tc.wantFail))
			}
		})
	}
}

func TestUnitFaultShortWriteOfOneByte(t *testing.T) {
	fault := NewFault(OS{}, OpWrite)
	path := filepath.Join(t.TempDir(), "f")
	f := utCreate(t, fault, path, nil)
	fault.FailAt(1, ErrIO, false, true)
	if n, err := f.WriteAt([]byte("x"), 0); n != 0 || !errors.Is(err, ErrIO) {
		t.Fatalf("short write of one byte = %d, %v; want 0, EIO", n, err)
	}
	if size, _ := f.Size(); size != 0 {
		t.Fatalf("file has %d bytes after a failed one-byte write", size)
	}
}

func TestUnitFaultEveryOp(t *testing.T) {
	type env struct {
		dir, file string
		f         File // open on file, through the Fault
	}
	cases := []struct {
		op      Op
		do      func(fs FS, e env) error
		unmoved func(t *testing.T, e env) // the failed op had no effect
		name    string                    // path that Fired names
	}{
		{OpOpen, func(fs FS, e env) error {
			_, err := fs.OpenFile(filepath.Join(e.dir, "new"), os.O_RDWR|os.O_CREATE, 0o600)
			return err
		}, func(t *testing.T, e env) {
			if _, err := os.Stat(filepath.Join(e.dir, "new")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a failed open created the file")
			}
		}, "new"},
		{OpRead, func(fs FS, e env) error { _, err := e.f.ReadAt(make([]byte, 3), 0); return err }, nil, "f"},
		{OpWrite, func(fs FS, e env) error { _, err := e.f.WriteAt([]byte("zzz"), 0); return err }, func(t *testing.T, e env) {
			if b := utReadFile(t, e.file); string(b) != "content" {
				t.Fatalf("a failed write changed the file to %q", b)
			}
		}, "f"},
		{OpSync, func(fs FS, e env) error { return e.f.Sync() }, nil, "f"},
		{OpTruncate, func(fs FS, e env) error { return e.f.Truncate(2) }, func(t *testing.T, e env) {
			if b := utReadFile(t, e.file); string(b) != "content" {
				t.Fatalf("a failed truncate changed the file to %q", b)
			}
		}, "f"},
		{OpAllocate, func(fs FS, e env) error { return e.f.Allocate(0, 64) }, func(t *testing.T, e env) {
			if b := utReadFile(t, e.file); string(b) != "content" {
				t.Fatalf("a failed allocate changed the file to %q", b)
			}
		}, "f"},
		{OpSize, func(fs FS, e env) error { _, err := e.f.Size(); return err }, nil, "f"},
		{OpMap, func(fs FS, e env) error { _, err := e.f.Map(4); return err }, nil, "f"},
		{OpClose, func(fs FS, e env) error { return e.f.Close() }, func(t *testing.T, e env) {
			// The file is closed anyway, as close(2) does.
			if _, err := e.f.WriteAt([]byte("x"), 0); err == nil {
				t.Fatalf("the file still works after a failed Close")
			}
		}, "f"},
		{OpRemove, func(fs FS, e env) error { return fs.Remove(e.file) }, func(t *testing.T, e env) {
			if _, err := os.Stat(e.file); err != nil {
				t.Fatalf("a failed remove removed the file: %v", err)
			}
		}, "f"},
		{OpRename, func(fs FS, e env) error { return fs.Rename(e.file, filepath.Join(e.dir, "g")) }, func(t *testing.T, e env) {
			if _, err := os.Stat(e.file); err != nil {
				t.Fatalf("a failed rename moved the file: %v", err)
			}
		}, "g"},
		{OpReadDir, func(fs FS, e env) error { _, err := fs.ReadDir(e.dir); return err }, nil, ""},
		{OpMkdir, func(fs FS, e env) error { return fs.MkdirAll(filepath.Join(e.dir, "sub"), 0o700) }, func(t *testing.T, e env) {
			if _, err := os.Stat(filepath.Join(e.dir, "sub")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a failed mkdir created the directory")
			}
		}, "sub"},
		{OpSyncDir, func(fs FS, e env) error { return fs.SyncDir(e.dir) }, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.op.String(), func(t *testing.T) {
			dir := t.TempDir()
			fault := NewFault(OS{}, OpAll)
			e := env{dir: dir, file: filepath.Join(dir, "f")}
			e.f = utCreate(t, fault, e.file, []byte("content"))
			fault.FailAt(1, ErrIO, false, false)
			err := tc.do(fault, e)
			var pe *os.PathError
			if !errors.Is(err, ErrIO) || !errors.As(err, &pe) || pe.Op != tc.op.String() {
				t.Fatalf("got %v, want a %s *os.PathError wrapping EIO", err, tc.op)
			}
			want := tc.op.String() + " " + filepath.Join(dir, tc.name)
			if tc.name == "" {
				want = tc.op.String() + " " + dir
			}
			if fired := fault.Fired(); !slices.Equal(fired, []string{want}) {
				t.Fatalf("Fired = %q, want %q", fired, want)
			}
			if tc.unmoved != nil {
				tc.unmoved(t, e)
			}
			// Not sticky: the same operation works the second time.
			if tc.op != OpClose {
				if err := tc.do(fault, e); err != nil {
					t.Fatalf("the %s after the failed one: %v", tc.op, err)
				}
			}
		})
	}
}

func TestUnitFaultDisarmAndRearm(t *testing.T) {
	fault := NewFault(OS{}, OpSync)
	f := utCreate(t, fault, filepath.Join(t.TempDir(), "f"), []byte("x"))
	fault.FailAt(1, ErrIO, true, false)
	for k := range 3 {
		if err := f.Sync(); !errors.Is(err, ErrIO) {
			t.Fatalf("sticky sync %d = %v, want EIO", k+1, err)
		}
	}
	fault.Disarm()
	for k := range 2 {
		if err := f.Sync(); err != nil {
			t.Fatalf("sync %d after Disarm: %v", k+1, err)
		}
	}
	if fault.Count() != 5 || len(fault.Fired()) != 3 {
		t.Fatalf("after Disarm: Count %d, Fired %v; want 5 counted and 3 fired (Disarm keeps both)", fault.Count(), fault.Fired())
	}
	// FailAt starts counting afresh and forgets what fired.
	fault.FailAt(2, ErrNoSpace, false, false)
	if fault.Count() != 0 || len(fault.Fired()) != 0 {
		t.Fatalf("after FailAt: Count %d, Fired %v; want both reset", fault.Count(), fault.Fired())
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("second sync after re-arming = %v, want ENOSPC", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("not sticky, but the third sync failed: %v", err)
	}
}

func TestUnitFaultConcurrentCount(t *testing.T) {
	fault := NewFault(OS{}, OpWrite)
	f := utCreate(t, fault, filepath.Join(t.TempDir(), "f"), nil)
	fault.FailAt(50, ErrIO, false, false)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for g := range 4 {
		wg.Go(func() {
			for k := range 25 {
				if _, err := f.WriteAt([]byte{byte(k)}, int64(g*25+k)); err != nil {
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if fault.Count() != 100 || failures != 1 || len(fault.Fired()) != 1 {
		t.Fatalf("Count %d, %d failures, Fired %v; want 100 counted, exactly the 50th failed", fault.Count(), failures, fault.Fired())
	}
}

func TestUnitFaultLockPassesThrough(t *testing.T) {
	fault := NewFault(OS{}, OpAll)
	path := filepath.Join(t.TempDir(), "LOCK")
	fault.FailAt(1, ErrIO, true, false)
	l, err := fault.Lock(path)
	if err != nil {
		t.Fatalf("Lock through an armed Fault: %v", err)
	}
	defer l.Close()
	if _, err := (OS{}).Lock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("the lock taken through the Fault is not held: %v", err)
	}
}

func TestUnitOpString(t *testing.T) {
	cases := []struct {
		op   Op
		want string
	}{
		{OpOpen, "open"}, {OpRead, "read"}, {OpWrite, "write"}, {OpSync, "sync"}, {OpTruncate, "truncate"},
		{OpSize, "size"}, {OpMap, "map"}, {OpClose, "close"}, {OpRemove, "remove"}, {OpRename, "rename"},
		{OpReadDir, "readdir"}, {OpMkdir, "mkdir"}, {OpSyncDir, "syncdir"}, {OpAllocate, "allocate"},
		{OpWrite | OpSync, "op(0xc)"},
	}
	var all Op
	for _, tc := range cases {
		if got := tc.op.String(); got != tc.want {
			t.Errorf("%#x.String() = %q, want %q", uint16(tc.op), got, tc.want)
		}
		all |= tc.op
	}
	if all != OpAll {
		t.Errorf("the operations make %#x, OpAll is %#x", uint16(all), uint16(OpAll))
	}
	if OpMutating&(OpRead|OpSize|OpMap|OpClose|OpReadDir) != 0 {
		t.Errorf("OpMutating %#x includes an operation that changes nothing", uint16(OpMutating))
	}
}
