package commitlog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// TestOpenLocksDirectory checks that a second Open of a directory in use
// fails clearly, without touching the log, and succeeds after Close.
func TestOpenLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append([]Entry{{Index: 1, Count: 1, Data: []byte("kept")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("second Open: got %v, want vfs.ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer l.Close()
	e, err := l.Read(1)
	if err != nil || string(e.Data) != "kept" {
		t.Fatalf("Read(1) = %q, %v; want \"kept\"", e.Data, err)
	}
	if got := l.Recovery().Ignored; len(got) != 0 {
		t.Fatalf("the lock file was reported as a stray file: %v", got)
	}
}

// TestAppendRejectsOffsetOverflow checks that a batch whose record counts
// would overflow the 64-bit offset is refused before anything is written.
func TestAppendRejectsOffsetOverflow(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Reset(1, 1<<64-10); err != nil {
		t.Fatal(err)
	}
	err = l.Append([]Entry{{Index: 1, Count: 5}, {Index: 2, Count: 5}})
	if !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("Append = %v, want ErrInvalidBatch", err)
	}
	if l.LastIndex() != 0 || l.NextOffset() != 1<<64-10 {
		t.Fatalf("log changed: last index %d, next offset %d", l.LastIndex(), l.NextOffset())
	}
	if err := l.Append([]Entry{{Index: 1, Count: 9}}); err != nil {
		t.Fatalf("Append within range: %v", err)
	}
}

// TestOpenRejectsForeignTail checks that a store from another log, placed
// after the last segment with a plausible name and a valid header, is
// refused at Open instead of silently becoming the log's tail.
func TestOpenRejectsForeignTail(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	opts := Options{MaxSegmentBytes: 512}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 20; i++ {
		if err := l.Append([]Entry{{Index: i, Count: 1, Data: make([]byte, 100)}}); err != nil {
			t.Fatal(err)
		}
	}
	last := l.LastIndex()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The other log starts far beyond this one's end.
	o, err := Open(other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Reset(last+100, 1000); err != nil { // a plausible, higher offset
		t.Fatal(err)
	}
	if err := o.Append([]Entry{{Index: last + 100, Count: 1, Data: []byte("foreign")}}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	name := segmentName(last+100) + storeExt
	b, err := os.ReadFile(filepath.Join(other, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, opts)
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Open with a foreign tail = %v, want a *CorruptError", err)
	}
	t.Log(err)
}
