package server

import (
	"io"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/loghouse/loghouse/pkg/record"
)

// blFSM is the baselines' trivial FSM: Loghouse's FSM writes nothing
// either (the log is the data), so applying costs nothing here.
type blFSM struct{}

func (blFSM) Apply(*raft.Log) any                    { return nil }
func (blFSM) Snapshot() (raft.FSMSnapshot, error)    { return blSnapshot{}, nil }
func (blFSM) Restore(rc io.ReadCloser) error         { return rc.Close() }
func (blSnapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (blSnapshot) Release()                          {}

type blSnapshot struct{}

// blCountingStore counts StoreLogs calls (each is one sync).
type blCountingStore struct {
	raft.LogStore
	stores atomic.Int64
}

func (s *blCountingStore) StoreLog(l *raft.Log) error {
	s.stores.Add(1)
	return s.LogStore.StoreLog(l)
}

func (s *blCountingStore) StoreLogs(logs []*raft.Log) error {
	s.stores.Add(1)
	return s.LogStore.StoreLogs(logs)
}

// blBatch encodes n 256-byte records as one record batch: the bytes that
// Loghouse's committer hands to raft.Apply for a request of n records.
func blBatch(b *testing.B, n int) []byte {
	b.Helper()
	src := values("bench", n, benchRecordBytes)
	recs := make([]record.Record, n)
	for i, r := range src {
		recs[i] = record.Record{Value: r.Value}
	}
	data, err := record.AppendBatch(nil, recs)
	if err != nil {
		b.Fatal(err)
	}
	return data
}
