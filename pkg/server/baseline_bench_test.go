package server

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/replication"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// The baselines below measure what BenchmarkProduce and
// BenchmarkConsumeStream measure, minus Loghouse: raw hashicorp/raft applies
// on one node with a durable log store, and a raw gRPC server stream over
// mutual TLS that sends prebuilt ConsumeResponse messages. Run them in the
// same `go test` invocation as the Loghouse benchmarks and compare ratios,
// not absolute numbers:
//
//	go test -run '^$' -bench 'Baseline|Produce|ConsumeStream' -benchtime 2s -count 1 ./pkg/server

// blWorkloads mirror BenchmarkProduce's: callers goroutines each apply
// requests of records 256-byte records.
var blWorkloads = []struct {
	name             string
	callers, records int
}{
	{"unary/callers=64/records=1", 64, 1},
	{"batched/callers=1/records=64", 1, 64},
	{"batched/callers=64/records=64", 64, 64},
}

// BenchmarkBaselineRaftApply measures committed records per second of a raw
// single-node hashicorp/raft (same version, timing and configuration as
// Loghouse's node: no BatchApplyCh, in-memory transport) whose log store
// syncs every StoreLogs before raft commits, with a trivial FSM. Each
// request is one raft.Apply of a record batch (the bytes Loghouse would
// store for the same request). Stores:
//   - logstore: replication.LogStore over a commitlog.Log with SyncAlways,
//     exactly the store under Loghouse, so the ratio isolates the cost of the
//     gRPC, mutual TLS, auth and group-commit layers;
//   - raftwal: github.com/hashicorp/raft-wal, a third-party durable store.
func BenchmarkBaselineRaftApply(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B, dir string) (raft.LogStore, raft.StableStore)
	}{
		{"logstore", blOpenLogStore},
		{"raftwal", blOpenRaftWAL},
	}
	for _, st := range stores {
		b.Run("store="+st.name, func(b *testing.B) {
			logs, stable := st.open(b, b.TempDir())
			counted := &blCountingStore{LogStore: logs}
			r := blNewRaft(b, counted, stable)
			for _, w := range blWorkloads {
				b.Run(w.name, func(b *testing.B) {
					blRunApply(b, r, counted, w.callers, w.records)
				})
			}
		})
	}
}

func blRunApply(b *testing.B, r *raft.Raft, counted *blCountingStore, callers, records int) {
	b.ReportAllocs()
	payload := blBatch(b, records)
	startStores := counted.stores.Load()
	benchLoad(b, callers, records, func() error { return r.Apply(payload, 0).Error() })
	// Raft groups the applies it finds queued into one StoreLogs (one
	// sync): entries per StoreLogs call.
	if n := counted.stores.Load() - startStores; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "entries/sync")
	}
}

// blOpenLogStore opens Loghouse's own durable store: the commit log with
// SyncAlways (the default) and the replication stable store.
func blOpenLogStore(b *testing.B, dir string) (raft.LogStore, raft.StableStore) {
	b.Helper()
	l, err := commitlog.Open(filepath.Join(dir, "log"), commitlog.Options{Sync: commitlog.SyncAlways, Logger: testLogger(b, "commitlog")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Errorf("close log: %v", err)
		}
	})
	stable, err := replication.OpenStableStore(nil, filepath.Join(dir, "stable"))
	if err != nil {
		b.Fatal(err)
	}
	return replication.NewLogStore(l), stable
}

// blOpenRaftWAL opens a raft-wal store, which syncs each StoreLogs.
func blOpenRaftWAL(b *testing.B, dir string) (raft.LogStore, raft.StableStore) {
	b.Helper()
	w, err := raftwal.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := w.Close(); err != nil {
			b.Errorf("close raft-wal: %v", err)
		}
	})
	return w, w
}

// blNewRaft bootstraps and starts a single-voter raft with the test
// cluster's single-node timing, and waits until it leads and has committed
// its first entry. Cleanup shuts it down before the stores close (cleanups
// run last-in first-out).
func blNewRaft(b *testing.B, logs raft.LogStore, stable raft.StableStore) *raft.Raft {
	b.Helper()
	const id = "node0"
	cfg := raft.DefaultConfig()
	cfg.LocalID = id
	cfg.Logger = testLogger(b, "raft")
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	cfg.ElectionTimeout = 100 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.SnapshotThreshold = 1 << 62
	cfg.SnapshotInterval = time.Hour
	cfg.TrailingLogs = 16
	addr, trans := raft.NewInmemTransport(id)
	snaps := raft.NewInmemSnapshotStore()
	if err := raft.BootstrapCluster(cfg, logs, stable, snaps, trans, raft.Configuration{
		Servers: []raft.Server{{ID: id, Address: addr}},
	}); err != nil {
		b.Fatal(err)
	}
	r, err := raft.NewRaft(cfg, blFSM{}, logs, stable, snaps, trans)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			b.Errorf("raft shutdown: %v", err)
		}
		if err := trans.Close(); err != nil {
			b.Errorf("close transport: %v", err)
		}
	})
	waitFor(b, "the raft baseline to lead", func() bool { return r.State() == raft.Leader })
	if err := r.Barrier(10 * time.Second).Error(); err != nil {
		b.Fatal(err)
	}
	return r
}

// blConsumeRecordsPerResponse is how many 256-byte records one
// ConsumeStream response carries with the default limits.
const blConsumeRecordsPerResponse = min(DefaultConsumeMaxRecords, DefaultConsumeMaxBytes/benchRecordBytes)

// BenchmarkBaselineGRPCStream measures how fast a raw gRPC server stream
// over mutual TLS on 127.0.0.1 (the harness's certificates, no mux, no
// interceptors, no log) delivers ConsumeResponse messages that each carry
// as many 256-byte records as a ConsumeStream response. The message is
// built once and sent repeatedly; it is still marshalled on every Send.
// The client side mirrors BenchmarkConsumeStream, including a new stream
// every 200,000 records.
func BenchmarkBaselineGRPCStream(b *testing.B) {
	resp := blConsumeResponse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(store(b, tlsutil.ServerCert, "node0").ServerConfig())))
	loghousev1.RegisterLogServer(gs, &blStreamServer{resp: resp})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()
	b.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	cl := loghousev1.NewLogClient(dialAddr(b, ln.Addr().String(), clientTLS(b, "root")))
	const total = 200_000
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	got := 0
	for got < b.N {
		ctx, cancel := context.WithCancel(context.Background())
		stream, err := cl.ConsumeStream(ctx, atOffset(0))
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		for off := 0; off < total && got < b.N; {
			r, err := stream.Recv()
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			off += len(r.Records)
			got += len(r.Records)
		}
		cancel()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(got)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(got)*benchRecordBytes/elapsed.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(len(resp.Records)), "records/msg")
}

// blConsumeResponse builds a response as ConsumeStream would send it:
// offsets, timestamps and the three offsets of the response filled in.
func blConsumeResponse() *loghousev1.ConsumeResponse {
	recs := values("bench", blConsumeRecordsPerResponse, benchRecordBytes)
	now := time.Now().UnixNano()
	for i, r := range recs {
		r.Offset = uint64(i)
		r.TimestampUnixNano = now
	}
	n := uint64(len(recs))
	return &loghousev1.ConsumeResponse{Records: recs, NextOffset: n, FirstOffset: 0, CommittedOffset: 200_000}
}

// blStreamServer answers ConsumeStream with the same message until the
// client goes away.
type blStreamServer struct {
	loghousev1.UnimplementedLogServer
	resp *loghousev1.ConsumeResponse
}

func (s *blStreamServer) ConsumeStream(_ *loghousev1.ConsumeRequest, stream grpc.ServerStreamingServer[loghousev1.ConsumeResponse]) error {
	for {
		if err := stream.Send(s.resp); err != nil {
			return err
		}
	}
}
