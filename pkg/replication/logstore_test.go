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
