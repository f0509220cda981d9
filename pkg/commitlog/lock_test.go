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
