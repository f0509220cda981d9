package commitlog

import (
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// syncTrackFS remembers, for every file synced through it, what the file held
// at its last successful Sync, and counts store syncs. lostCopy then makes
// the directory a machine crash could leave when nothing unsynced reached
// the disk.
type syncTrackFS struct {
	vfs.FS // hides vfs.OS's Locker: the copies are opened beside the original

	mu         sync.Mutex
	durable    map[string][]byte
	storeSyncs int
}

func newSyncTrackFS() *syncTrackFS {
	return &syncTrackFS{FS: vfs.OS{}, durable: map[string][]byte{}}
}

func (f *syncTrackFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &syncTrackFile{File: file, fs: f, name: name}, nil
}

func (f *syncTrackFS) syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.storeSyncs
}

type syncTrackFile struct {
	vfs.File
	fs   *syncTrackFS
	name string
}

func (tf *syncTrackFile) Sync() error {
	if err := tf.File.Sync(); err != nil {
		return err
	}
	size, err := tf.Size()
	if err != nil {
		return err
	}
	buf := make([]byte, size)
	if _, err := tf.ReadAt(buf, 0); err != nil {
		return err
	}
	tf.fs.mu.Lock()
	defer tf.fs.mu.Unlock()
	tf.fs.durable[tf.name] = buf
	if strings.HasSuffix(tf.name, storeExt) {
		tf.fs.storeSyncs++
	}
	return nil
}

// lostCopy copies dir to a new directory as a power cut would leave it if
// no write since a store's last Sync had reached the disk: each store holds
// what it held at that Sync (a store never synced through f, its header
// alone, which creation writes durably). Other files are copied as they
// are; recovery rebuilds an index from its store.
func (f *syncTrackFS) lostCopy(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range names {
		if n.Name() == lockName {
			continue
		}
		path := filepath.Join(dir, n.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(path, storeExt) {
			if d, ok := f.durable[path]; ok {
				data = d
			} else {
				data = data[:fileHeaderSize]
			}
		}
		if err := os.WriteFile(filepath.Join(out, n.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestAppendNoSync(t *testing.T) {
	fs := newSyncTrackFS()
	l, err := Open(t.TempDir(), Options{FS: fs, Sync: SyncAlways, Logger: crashLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	base := fs.syncs()
	if err := l.AppendNoSync(crashBatch(1, 3, 0)); err != nil {
		t.Fatal(err)
	}
	if got := fs.syncs() - base; got != 0 {
		t.Fatalf("AppendNoSync synced the store %d times", got)
	}
	if got := l.SyncedIndex(); got != 0 {
		t.Fatalf("SyncedIndex after AppendNoSync = %d, want 0", got)
	}
	if _, err := l.Read(3); err != nil {
		t.Fatalf("an entry appended without sync is not readable: %v", err)
	}
	if err := l.SyncTo(2); err != nil {
		t.Fatal(err)
	}
	if got, syncs := l.SyncedIndex(), fs.syncs()-base; got != 3 || syncs != 1 {
		t.Fatalf("after SyncTo(2): SyncedIndex %d with %d syncs, want 3 (the sync covers the whole log) with 1", got, syncs)
	}
	if err := l.SyncTo(3); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if syncs := fs.syncs() - base; syncs != 1 {
		t.Fatalf("syncing what is already durable synced again (%d syncs)", syncs)
	}
	if err := l.Append(crashBatch(4, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if got, syncs := l.SyncedIndex(), fs.syncs()-base; got != 4 || syncs != 2 {
		t.Fatalf("after Append: SyncedIndex %d with %d syncs, want 4 with 2", got, syncs)
	}

	// With SyncNone everything appended is as durable as promised.
	none, err := Open(t.TempDir(), Options{FS: fs, Sync: SyncNone, Logger: crashLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer none.Close()
	base = fs.syncs()
	if err := none.AppendNoSync(crashBatch(1, 2, 0)); err != nil {
		t.Fatal(err)
	}
	if err := none.Append(crashBatch(3, 2, 0)); err != nil {
		t.Fatal(err)
	}
	if got, syncs := none.SyncedIndex(), fs.syncs()-base; got != 4 || syncs != 0 {
		t.Fatalf("SyncNone: SyncedIndex %d with %d syncs, want 4 with 0", got, syncs)
	}
}

// TestSyncFailsLog: a failed background sync fails the log. The entries it
// was to cover stay readable (readers may have seen them) but are never
// reported durable, and every later write fails.
func TestSyncFailsLog(t *testing.T) {
	fault := vfs.NewFault(vfs.OS{}, vfs.OpSync)
	l, err := Open(t.TempDir(), Options{FS: fault, Sync: SyncAlways, Logger: crashLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(crashBatch(1, 2, 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendNoSync(crashBatch(3, 2, 0)); err != nil {
		t.Fatal(err)
	}
	fault.FailAt(1, vfs.ErrIO, false, false)
	if err := l.SyncTo(4); !errors.Is(err, ErrFailed) || !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("SyncTo with a failing fsync: %v, want ErrFailed wrapping EIO", err)
	}
	if got := l.SyncedIndex(); got != 2 {
		t.Fatalf("SyncedIndex after a failed sync = %d, want 2", got)
	}
	if _, err := l.Read(4); err != nil {
		t.Fatalf("entry 4 is gone from the open log: %v", err)
	}
	if err := l.SyncTo(4); !errors.Is(err, ErrFailed) {
		t.Fatalf("a second SyncTo: %v, want ErrFailed", err)
	}
	if err := l.Append(crashBatch(5, 1, 0)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after a failed sync: %v, want ErrFailed", err)
	}
}

// TestSyncedIndexSurvivesCrash runs random mixes of synced and unsynced
// appends, syncs and suffix truncations over small segments (so appends roll
// segments), and at random points makes the directory a power cut would
// leave if nothing unsynced had reached the disk. Reopened, it must hold
// every entry up to the SyncedIndex of that moment, and nothing that
// differs from what was appended.
func TestSyncedIndexSurvivesCrash(t *testing.T) {
	for seed := int64(1); seed <= 12; seed++ {
		rng := rand.New(rand.NewSource(seed))
		fs := newSyncTrackFS()
		dir := t.TempDir()
		opts := Options{FS: fs, Sync: SyncAlways, MaxSegmentBytes: 2048, MaxSegmentEntries: 64, Logger: crashLogger(t)}
		l, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		var want []Entry // want[k] has index k+1
		gen := 0
		for step := 0; step < 80; step++ {
			next := uint64(len(want)) + 1
			switch op := rng.Intn(10); {
			case op < 5:
				b := crashBatch(next, 1+rng.Intn(4), gen)
				if err := l.AppendNoSync(b); err != nil {
					t.Fatalf("seed %d step %d: AppendNoSync: %v", seed, step, err)
				}
				want = append(want, b...)
			case op < 7:
				b := crashBatch(next, 1+rng.Intn(4), gen)
				if err := l.Append(b); err != nil {
					t.Fatalf("seed %d step %d: Append: %v", seed, step, err)
				}
				want = append(want, b...)
			case op == 7:
				if err := l.Sync(); err != nil {
					t.Fatalf("seed %d step %d: Sync: %v", seed, step, err)
				}
			case op == 8 && len(want) > 0:
				i := 1 + uint64(rng.Intn(len(want)))
				if err := l.TruncateFrom(i); err != nil {
					t.Fatalf("seed %d step %d: TruncateFrom(%d): %v", seed, step, i, err)
				}
				want = want[:i-1]
				gen++ // rewritten indexes get other data
			case op == 9 && len(want) > 0:
				if err := l.SyncTo(1 + uint64(rng.Intn(len(want)))); err != nil {
					t.Fatalf("seed %d step %d: SyncTo: %v", seed, step, err)
				}
			}
			if got := l.SyncedIndex(); got > uint64(len(want)) {
				t.Fatalf("seed %d step %d: SyncedIndex %d is past the log's end %d", seed, step, got, len(want))
			}
			if rng.Intn(4) == 0 {
				crashCheckSynced(t, fs, dir, l.SyncedIndex(), want, seed, step)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func crashCheckSynced(t *testing.T, fs *syncTrackFS, dir string, synced uint64, want []Entry, seed int64, step int) {
	t.Helper()
	copyDir := fs.lostCopy(t, dir)
	l, err := Open(copyDir, Options{FS: vfs.NoSync{FS: vfs.OS{}}, Sync: SyncAlways, MaxSegmentBytes: 2048, MaxSegmentEntries: 64, Logger: crashLogger(t)})
	if err != nil {
		t.Fatalf("seed %d step %d: reopen after the crash: %v", seed, step, err)
	}
	defer l.Close()
	last := l.LastIndex()
	if last < synced {
		t.Fatalf("seed %d step %d: the crash lost entries %d..%d, which SyncedIndex called durable", seed, step, last+1, synced)
	}
	if last > uint64(len(want)) {
		t.Fatalf("seed %d step %d: the log came back with %d entries, more than the %d appended", seed, step, last, len(want))
	}
	for i := uint64(1); i <= last; i++ {
		e, err := l.Read(i)
		if err != nil {
			t.Fatalf("seed %d step %d: read %d after the crash: %v", seed, step, i, err)
		}
		if d := crashDiff(e, want[i-1]); d != "" {
			t.Fatalf("seed %d step %d: entry %d after the crash: %s", seed, step, i, d)
		}
	}
}
