package replication

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/vfs"
)

// FuzzRestore feeds arbitrary snapshot streams to FSM.Restore: it must never
// panic, and whatever it accepts must leave a readable, dense log.
func FuzzRestore(f *testing.F) {
	// Seed with a real stream.
	dir := f.TempDir()
	l, err := commitlog.Open(filepath.Join(dir, "src"), commitlog.Options{})
	if err != nil {
		f.Fatal(err)
	}
	src := NewLogStore(l)
	for i := uint64(1); i <= 5; i++ {
		if err := src.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{1, 1, 0, 0, 0, 0, 1, 'v', 0}}}); err != nil {
			f.Fatal(err)
		}
	}
	snaps, err := NewSnapshotStore(filepath.Join(dir, "snaps"), l, 1, nil)
	if err != nil {
		f.Fatal(err)
	}
	sink, err := snaps.Create(1, 5, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		f.Fatal(err)
	}
	_, rc, err := snaps.Open(sink.ID())
	if err != nil {
		f.Fatal(err)
	}
	seed, err := io.ReadAll(rc)
	if err != nil {
		f.Fatal(err)
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:streamHeaderSize])
	f.Add([]byte("LHSNAP01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := commitlog.Open(t.TempDir(), commitlog.Options{FS: vfs.NoSync{FS: vfs.OS{}}})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		fsm := NewFSM(l, nil)
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			return
		}
		// Accepted: every entry reads back and offsets are dense.
		next := l.FirstOffset()
		for i := l.FirstIndex(); i <= l.LastIndex(); i++ {
			e, err := l.Read(i)
			if err != nil {
				t.Fatalf("entry %d after an accepted restore: %v", i, err)
			}
			if e.Offset != next {
				t.Fatalf("entry %d offset %d, want %d", i, e.Offset, next)
			}
			next += uint64(e.Count)
		}
		if c, _ := fsm.Committed(); c != l.NextOffset() {
			t.Fatalf("committed %d after restore, log ends at %d", c, l.NextOffset())
		}
	})
}

// FuzzStableStoreFile opens arbitrary bytes as the stable store's file: an
// error wrapping ErrStableCorrupt, or a store that answers Get.
func FuzzStableStoreFile(f *testing.F) {
	dir := f.TempDir()
	s, err := OpenStableStore(nil, filepath.Join(dir, "stable"))
	if err != nil {
		f.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, "stable"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("LHSTABLE"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "stable")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStableStore(nil, path)
		if err != nil {
			if !errors.Is(err, ErrStableCorrupt) {
				t.Fatalf("error %v does not wrap ErrStableCorrupt", err)
			}
			return
		}
		if _, err := s.Get([]byte("CurrentTerm")); err != nil {
			t.Fatal(err)
		}
	})
}
