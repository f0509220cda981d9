package commitlog

import (
	"errors"
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
