package server

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

const benchRecordBytes = 256

// benchNodes is the cluster size of BenchmarkProduce; the leader takes
// the writes.
var benchNodes = flag.Int("server.bench-nodes", 1, "nodes in BenchmarkProduce's cluster")

// BenchmarkProduce measures committed records per second on one node (or
// -server.bench-nodes) over mutual TLS, with 256-byte records: 64
// concurrent callers of one record each, and requests of 64 records from 1
// and from 64 callers. The inflight dimension is Config.MaxInflightApplies;
// entries/req is raft entries per request (group commit).
func BenchmarkProduce(b *testing.B) {
	for _, inflight := range []int{1, DefaultMaxInflightApplies, 64} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			c := newCluster(b, *benchNodes, clusterOpts{server: func(cfg *Config) { cfg.MaxInflightApplies = inflight }})
			n := c.leader(b)
			conn := dial(b, n, "root")
			for _, w := range []struct {
				name             string
				callers, records int
			}{
				{"unary/callers=64/records=1", 64, 1},
				{"batched/callers=1/records=64", 1, 64},
				{"batched/callers=64/records=64", 64, 64},
			} {
				b.Run(w.name, func(b *testing.B) {
					b.ReportAllocs()
					cl := loghousev1.NewLogClient(conn)
					req := &loghousev1.ProduceRequest{Records: values("bench", w.records, benchRecordBytes)}
					startIndex := n.node.Log.LastIndex()
					benchLoad(b, w.callers, w.records, func() error {
						_, err := cl.Produce(context.Background(), req)
						return err
					})
					b.ReportMetric(float64(n.node.Log.LastIndex()-startIndex)/float64(b.N), "entries/req")
				})
			}
		})
	}
}

// benchLoad runs op b.N times spread over callers goroutines and reports
// records/s and MB/s (each op carrying records 256-byte records) and the
// p50 and p99 latency of op, and the process's CPU time per op. The
// baseline benchmarks use it too, so both sides are measured the same way.
func benchLoad(b *testing.B, callers, records int, op func() error) {
	b.Helper()
	lat := make([][]time.Duration, callers)
	var left atomic.Int64
	left.Store(int64(b.N))
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	for g := range callers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				if err := op(); err != nil {
					errs <- err
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	recs := float64(b.N * records)
	b.ReportMetric(recs/elapsed.Seconds(), "records/s")
	b.ReportMetric(recs*benchRecordBytes/elapsed.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1e3, "p99-ms")
}

// processCPU is the CPU time (user and system) the process has used. The
// client runs in the benchmark's process too, so cpu-us/op counts both
// sides of a call. A CPU-bound workload's records/s times its cpu-us/op is
// the cores it kept busy.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConsumeStream measures how fast one ConsumeStream delivers
// committed 256-byte records over mutual TLS.
func BenchmarkConsumeStream(b *testing.B) {
	c := newCluster(b, 1, clusterOpts{})
	n := c.nodes[0]
	cl := loghousev1.NewLogClient(dial(b, n, "root"))
	const total, perRequest = 200_000, 2000
	req := &loghousev1.ProduceRequest{Records: values("bench", perRequest, benchRecordBytes)}
	for range total / perRequest {
		if _, err := cl.Produce(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	got := 0
	for got < b.N {
		ctx, cancel := context.WithCancel(context.Background())
		stream, err := cl.ConsumeStream(ctx, atOffset(0))
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < total && got < b.N; {
			resp, err := stream.Recv()
			if err != nil { // the stream never ends by itself: EOF is an error too
				cancel()
				b.Fatal(err)
			}
			off += len(resp.Records)
			got += len(resp.Records)
		}
		cancel()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(got)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(got)*benchRecordBytes/elapsed.Seconds()/1e6, "MB/s")
}
