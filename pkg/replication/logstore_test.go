package replication

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/record"
	"github.com/loghouse/loghouse/pkg/vfs"
)

// lsOpen opens a LogStore in dir with small segments, so that tests cross
// segment boundaries.
func lsOpen(t *testing.T, dir string) *LogStore {
	t.Helper()
	l, err := commitlog.Open(dir, commitlog.Options{MaxSegmentBytes: 1024, MaxEntryBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return NewLogStore(l)
}

// lsReopen closes s's log and opens it again.
func lsReopen(t *testing.T, s *LogStore) *LogStore {
	t.Helper()
	dir := s.Log().Dir()
	if err := s.Log().Close(); err != nil {
		t.Fatal(err)
	}
	return lsOpen(t, dir)
}

// lsLog makes raft log i: a record batch of i%3 records for commands, a
// configuration entry every 5th index.
func lsLog(t *testing.T, i, term uint64) *raft.Log {
	t.Helper()
	l := &raft.Log{Index: i, Term: term, Type: raft.LogCommand, AppendedAt: time.Unix(1700000000, int64(i)), Extensions: []byte(fmt.Sprint("ext", i))}
	if i%5 == 0 {
		l.Type = raft.LogConfiguration
		l.Data = []byte(fmt.Sprint("conf", i))
		return l
	}
	recs := make([]record.Record, i%3)
	for j := range recs {
		recs[j] = record.Record{Value: []byte(fmt.Sprint("rec", i, ".", j))}
	}
	data, err := record.AppendBatch(nil, recs)
	if err != nil {
		t.Fatal(err)
	}
	l.Data = data
	return l
}

func lsStore(t *testing.T, s *LogStore, lo, hi, term uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, lsLog(t, i, term))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

// lsCheck asserts the store holds exactly [first, last], each log equal to
// lsLog(i, term(i)), with dense record offsets.
func lsCheck(t *testing.T, s *LogStore, first, last uint64, term func(uint64) uint64) {
	t.Helper()
	if got, _ := s.FirstIndex(); got != first {
		t.Fatalf("FirstIndex = %d, want %d", got, first)
	}
	if got, _ := s.LastIndex(); got != last {
		t.Fatalf("LastIndex = %d, want %d", got, last)
	}
	var out raft.Log
	for _, i := range []uint64{first - 1, last + 1} {
		if err := s.GetLog(i, &out); err != raft.ErrLogNotFound { //nolint:errorlint // raft compares with ==
			t.Fatalf("GetLog(%d) = %v, want raft.ErrLogNotFound itself", i, err)
		}
	}
	if last == 0 {
		return
	}
	off := s.Log().FirstOffset()
	for i := first; i <= last; i++ {
		if err := s.GetLog(i, &out); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := lsLog(t, i, term(i))
		if out.Index != i || out.Term != want.Term || out.Type != want.Type || !bytes.Equal(out.Data, want.Data) ||
			!bytes.Equal(out.Extensions, want.Extensions) || !out.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, out, want)
		}
		e, err := s.Log().Read(i)
		if err != nil {
			t.Fatal(err)
		}
		if e.Offset != off {
			t.Fatalf("entry %d has offset %d, want %d", i, e.Offset, off)
		}
		off += uint64(record.Count(want.Data))
		if want.Type != raft.LogCommand && e.Count != 0 {
			t.Fatalf("non-command entry %d takes %d offsets", i, e.Count)
		}
	}
	if got := s.Log().NextOffset(); got != off {
		t.Fatalf("NextOffset = %d, want %d", got, off)
	}
}

func TestLogStoreContract(t *testing.T) {
	term1 := func(uint64) uint64 { return 1 }
	tests := []struct {
		name        string
		run         func(t *testing.T, s *LogStore) *LogStore
		first, last uint64
		term        func(uint64) uint64
	}{
		{name: "empty", run: func(_ *testing.T, s *LogStore) *LogStore { return s }, first: 0, last: 0, term: term1},
		{name: "store one", run: func(t *testing.T, s *LogStore) *LogStore {
			if err := s.StoreLog(lsLog(t, 1, 1)); err != nil {
				t.Fatal(err)
			}
			return s
		}, first: 1, last: 1, term: term1},
		{name: "store many across segments", run: func(t *testing.T, s *LogStore) *LogStore {
			lsStore(t, s, 1, 60, 1)
			return s
		}, first: 1, last: 60, term: term1},
		{name: "delete suffix into an earlier segment then store a new term", run: func(t *testing.T, s *LogStore) *LogStore {
			lsStore(t, s, 1, 60, 1)
			if err := s.DeleteRange(17, 60); err != nil {
				t.Fatal(err)
			}
			s = lsReopen(t, s)
			lsStore(t, s, 17, 30, 2)
			return s
		}, first: 1, last: 30, term: func(i uint64) uint64 {
			if i >= 17 {
				return 2
			}
			return 1
		}},
		{name: "delete suffix beyond the last index", run: func(t *testing.T, s *LogStore) *LogStore {
			lsStore(t, s, 1, 10, 1)
			if err := s.DeleteRange(11, 20); err != nil {
				t.Fatal(err)
			}
			return s
		}, first: 1, last: 10, term: term1},
		{name: "delete prefix is compaction and keeps the data", run: func(t *testing.T, s *LogStore) *LogStore {
			lsStore(t, s, 1, 40, 1)
			if err := s.DeleteRange(1, 30); err != nil {
				t.Fatal(err)
			}
			return s
		}, first: 1, last: 40, term: term1},
		{name: "store keeps the given indexes after a reset", run: func(t *testing.T, s *LogStore) *LogStore {
			if err := s.Log().Reset(100, 0); err != nil {
				t.Fatal(err)
			}
			lsStore(t, s, 100, 120, 3)
			return s
		}, first: 100, last: 120, term: func(uint64) uint64 { return 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := lsOpen(t, t.TempDir())
			s = tt.run(t, s)
			lsCheck(t, s, tt.first, tt.last, tt.term)
			s = lsReopen(t, s)
			lsCheck(t, s, tt.first, tt.last, tt.term)
		})
	}
}

func TestLogStoreRejects(t *testing.T) {
	s := lsOpen(t, t.TempDir())
	lsStore(t, s, 1, 20, 1)
	tests := []struct {
		name string
		run  func() error
	}{
		{name: "gap", run: func() error { return s.StoreLogs([]*raft.Log{lsLog(t, 22, 1)}) }},
		{name: "overwrite without delete", run: func() error { return s.StoreLogs([]*raft.Log{lsLog(t, 20, 2)}) }},
		{name: "middle range", run: func() error { return s.DeleteRange(5, 10) }},
		{name: "inverted range", run: func() error { return s.DeleteRange(10, 5) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); err == nil {
				t.Fatal("no error")
			}
			lsCheck(t, s, 1, 20, func(uint64) uint64 { return 1 })
		})
	}
	if err := s.StoreLogs([]*raft.Log{lsLog(t, 22, 1)}); !errors.Is(err, commitlog.ErrInvalidBatch) {
		t.Fatalf("gap error %v does not wrap commitlog.ErrInvalidBatch", err)
	}
}

// lsOpenCounting opens a LogStore whose file reads are counted.
func lsOpenCounting(t *testing.T) (*LogStore, *vfs.Fault) {
	t.Helper()
	fault := vfs.NewFault(vfs.NoSync{FS: vfs.OS{}}, vfs.OpRead)
	l, err := commitlog.Open(t.TempDir(), commitlog.Options{FS: fault, MaxSegmentBytes: 1024, MaxEntryBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return NewLogStore(l), fault
}

// lsGet asserts that GetLog(i) is lsLog(i, term).
func lsGet(t *testing.T, s *LogStore, i, term uint64) {
	t.Helper()
	var out raft.Log
	if err := s.GetLog(i, &out); err != nil {
		t.Fatalf("GetLog(%d): %v", i, err)
	}
	want := lsLog(t, i, term)
	if out.Index != i || out.Term != want.Term || out.Type != want.Type || !bytes.Equal(out.Data, want.Data) ||
		!bytes.Equal(out.Extensions, want.Extensions) || !out.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("GetLog(%d) = %+v, want %+v", i, out, want)
	}
}

// lsNotFound asserts that GetLog(i) is raft.ErrLogNotFound.
func lsNotFound(t *testing.T, s *LogStore, i uint64) {
	t.Helper()
	var out raft.Log
	if err := s.GetLog(i, &out); err != raft.ErrLogNotFound { //nolint:errorlint // raft compares with ==
		t.Fatalf("GetLog(%d) = %v, %+v; want raft.ErrLogNotFound", i, err, out)
	}
}

// TestLogStoreRecentFromMemory: the entries stored last are read back
// without reading the file, older ones from the file.
func TestLogStoreRecentFromMemory(t *testing.T) {
	s, fault := lsOpenCounting(t)
	const n = recentEntries + 40
	lsStore(t, s, 1, n, 2)
	before := fault.Count()
	for i := uint64(n - recentEntries + 1); i <= n; i++ {
		lsGet(t, s, i, 2)
	}
	if got := fault.Count() - before; got != 0 {
		t.Fatalf("reading the last %d entries read the file %d times", recentEntries, got)
	}
	lsGet(t, s, n-recentEntries, 2)
	lsGet(t, s, 1, 2)
	if got := fault.Count() - before; got != 2 {
		t.Fatalf("reading 2 older entries read the file %d times, want 2", got)
	}
}

// TestLogStoreRecentNotStale: a kept entry is never served once the log no
// longer holds it, or holds another entry at its index: after raft deletes
// a suffix and writes other entries there, after a snapshot install resets
// the log (FSM.Restore calls commitlog Reset directly), and after retention.
func TestLogStoreRecentNotStale(t *testing.T) {
	t.Run("suffix rewritten", func(t *testing.T) {
		s, _ := lsOpenCounting(t)
		lsStore(t, s, 1, 30, 2)
		if err := s.DeleteRange(20, 30); err != nil {
			t.Fatal(err)
		}
		lsNotFound(t, s, 25)
		lsStore(t, s, 20, 25, 3)
		for i := uint64(20); i <= 25; i++ {
			lsGet(t, s, i, 3)
		}
		lsNotFound(t, s, 26)
	})
	t.Run("reset below", func(t *testing.T) {
		s, _ := lsOpenCounting(t)
		lsStore(t, s, 1, 30, 2)
		// A snapshot at 10 from a leader whose log differs after it.
		if err := s.Log().Reset(11, 100); err != nil {
			t.Fatal(err)
		}
		for _, i := range []uint64{5, 11, 20, 30} {
			lsNotFound(t, s, i)
		}
		lsStore(t, s, 11, 15, 4)
		for i := uint64(11); i <= 15; i++ {
			lsGet(t, s, i, 4)
		}
		lsNotFound(t, s, 20)
	})
	t.Run("reset above", func(t *testing.T) {
		s, _ := lsOpenCounting(t)
		lsStore(t, s, 1, 30, 2)
		if err := s.Log().Reset(101, 500); err != nil {
			t.Fatal(err)
		}
		lsNotFound(t, s, 30)
		lsStore(t, s, 101, 103, 5)
		lsGet(t, s, 102, 5)
		lsNotFound(t, s, 30)
	})
	t.Run("retention", func(t *testing.T) {
		s, _ := lsOpenCounting(t)
		for i := uint64(1); i <= 60; i++ {
			lsStore(t, s, i, i, 2) // an entry per Append, so segments roll
		}
		first := s.Log().FirstIndex()
		if _, err := s.Log().DeleteBefore(40); err != nil {
			t.Fatal(err)
		}
		if s.Log().FirstIndex() == first {
			t.Fatal("DeleteBefore deleted nothing: the test needs more segments")
		}
		lsNotFound(t, s, s.Log().FirstIndex()-1)
		lsGet(t, s, s.Log().FirstIndex(), 2)
	})
}
