package commitlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// diskFullMount mounts a tmpfs of size bytes in a temporary directory and
// returns its path. It needs root: elsewhere the test is skipped, except
// with CI=true, where CI runs as root and a failed mount is a failure.
func diskFullMount(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a %d-byte tmpfs (CI runs as root): %v", size, err)
		}
		t.Skipf("needs root to mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestRealDiskFull fills a real, small file system (a 4 MiB tmpfs) with
// durable appends and preallocation on, and checks what a full disk must
// not break: every acknowledged entry stays readable, the failed Append
// says ENOSPC and changes nothing, the log opens again on the full disk,
// and it accepts appends once space is freed. The fault-injection tests
// cover each failing call one by one; this covers the kernel's own
// ENOSPC, from fallocate, pwrite and file creation alike.
func TestRealDiskFull(t *testing.T) {
	mnt := diskFullMount(t, 4<<20)
	// A filler to delete later, so that space can be freed.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "log")
	opts := Options{
		Logger:            crashLogger(t),
		FS:                vfs.OS{},
		Sync:              SyncAlways,
		MaxSegmentBytes:   1 << 20,
		MaxSegmentEntries: 1024,
		Preallocate:       256 << 10,
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	var acked []Entry
	appendOne := func() error {
		i := l.LastIndex() + 1
		e := Entry{Index: i, Term: 1, Type: 1, Count: 1, Time: int64(i), Data: []byte(fmt.Sprintf("%08d", i))}
		e.Data = append(e.Data, make([]byte, 10<<10)...)
		b := []Entry{e}
		if err := l.Append(b); err != nil {
			return err
		}
		acked = append(acked, b[0])
		return nil
	}
	var full error
	for range 1000 {
		if err := appendOne(); err != nil {
			full = err
			break
		}
	}
	if full == nil {
		t.Fatalf("%d appends of 10 KiB fit on a 4 MiB file system", len(acked))
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("Append on a full disk = %v, want an error wrapping ENOSPC", full)
	}
	t.Logf("the disk filled after %d entries: %v", len(acked), full)
	check := func(label string, l *Log) {
		t.Helper()
		if got, want := l.LastIndex(), acked[len(acked)-1].Index; got != want {
			t.Fatalf("%s: LastIndex %d, want %d", label, got, want)
		}
		for _, w := range acked {
			e, err := l.Read(w.Index)
			if err != nil {
				t.Fatalf("%s: Read(%d): %v", label, w.Index, err)
			}
			if d := crashDiff(e, w); d != "" {
				t.Fatalf("%s: entry %d: %s", label, w.Index, d)
			}
		}
	}
	// More attempts fail the same way and change nothing.
	for range 3 {
		if err := appendOne(); err == nil {
			t.Fatal("an append succeeded on a full disk without space being freed")
		}
	}
	check("full", l)
	if err := l.Close(); err != nil {
		t.Fatalf("Close on a full disk: %v", err)
	}
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	check("reopened on the full disk", l)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before := len(acked)
	for range 10 {
		if err := appendOne(); err != nil {
			t.Fatalf("append after freeing space (%d done): %v", len(acked)-before, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	check("after freeing space and reopening", l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
