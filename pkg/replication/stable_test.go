package replication

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/loghouse/loghouse/pkg/vfs"
)

func TestStableStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft", "stable")
	s, err := OpenStableStore(nil, path)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("missing")); err != nil || len(v) != 0 {
		t.Fatalf("Get(missing) = %q, %v", v, err)
	}
	if v, err := s.GetUint64([]byte("missing")); err != nil || v != 0 {
		t.Fatalf("GetUint64(missing) = %d, %v", v, err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 43); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStableStore(nil, path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.GetUint64([]byte("CurrentTerm")); v != 43 {
		t.Fatalf("CurrentTerm after reopen = %d, want 43", v)
	}
	if v, _ := s.Get([]byte("LastVoteCand")); !bytes.Equal(v, []byte("node-2")) {
		t.Fatalf("LastVoteCand after reopen = %q", v)
	}
	if _, err := s.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Fatal("GetUint64 of a 6-byte value did not fail")
	}

	// A corrupt file is an error, never a silent reset of term and vote.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, pos := range []int{0, 9, len(b) / 2, len(b) - 1} {
		bad := append([]byte(nil), b...)
		bad[pos] ^= 0x40
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenStableStore(nil, path); !errors.Is(err, ErrStableCorrupt) {
			t.Fatalf("flipped byte %d: OpenStableStore = %v, want ErrStableCorrupt", pos, err)
		}
	}
}

// TestStableStoreFailedSet checks that a Set that fails at any file
// operation leaves the previous values in force, in memory and on disk.
func TestStableStoreFailedSet(t *testing.T) {
	for n := 1; ; n++ {
		path := filepath.Join(t.TempDir(), "stable")
		fault := vfs.NewFault(vfs.OS{}, vfs.OpMutating)
		s, err := OpenStableStore(fault, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetUint64([]byte("t"), 1); err != nil {
			t.Fatal(err)
		}
		fault.FailAt(n, vfs.ErrIO, false, true)
		err = s.SetUint64([]byte("t"), 2)
		if len(fault.Fired()) == 0 {
			if err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				t.Fatal("no operation was counted")
			}
			return // every operation of Set has been failed once
		}
		re, oerr := OpenStableStore(nil, path)
		if oerr != nil {
			t.Fatalf("fail op %d: reopen: %v", n, oerr)
		}
		got, _ := re.GetUint64([]byte("t"))
		mem, _ := s.GetUint64([]byte("t"))
		if err != nil && mem != 1 {
			t.Fatalf("fail op %d (%v): failed Set changed memory to %d", n, fault.Fired(), mem)
		}
		if got != 1 && got != 2 {
			t.Fatalf("fail op %d: disk holds %d", n, got)
		}
	}
}
