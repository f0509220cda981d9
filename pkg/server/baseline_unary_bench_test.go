package server

import (
	"context"
	"net"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/record"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// BenchmarkBaselineGRPCUnary splits the gap between BenchmarkProduce and
// BenchmarkBaselineRaftApply: unary Produce calls to a bare gRPC server over
// mutual TLS on 127.0.0.1 (the harness's certificates and default gRPC
// options, no mux, no interceptors), with the client in the benchmark's
// process as in BenchmarkProduce. The handler either answers at once
// (backend=none: what gRPC and TLS alone cost on this machine) or applies
// the request's records as one record batch to a raw raft on Loghouse's
// durable log store and answers when the future does (backend=raft: one
// raft entry per call, no group commit).
func BenchmarkBaselineGRPCUnary(b *testing.B) {
	for _, backend := range []string{"none", "raft"} {
		b.Run("backend="+backend, func(b *testing.B) {
			srv := &blUnaryServer{}
			if backend == "raft" {
				logs, stable := blOpenLogStore(b, b.TempDir())
				srv.raft = blNewRaft(b, logs, stable)
			}
			cl := loghousev1.NewLogClient(dialAddr(b, blServe(b, srv), clientTLS(b, "root")))
			for _, w := range blWorkloads {
				b.Run(w.name, func(b *testing.B) {
					b.ReportAllocs()
					req := &loghousev1.ProduceRequest{Records: values("bench", w.records, benchRecordBytes)}
					benchLoad(b, w.callers, w.records, func() error {
						_, err := cl.Produce(context.Background(), req)
						return err
					})
				})
			}
		})
	}
}

// blServe serves srv over mutual TLS on 127.0.0.1 until the benchmark ends
// and returns its address.
func blServe(b *testing.B, srv loghousev1.LogServer) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(store(b, tlsutil.ServerCert, "node0").ServerConfig())))
	loghousev1.RegisterLogServer(gs, srv)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()
	b.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// blUnaryServer answers Produce at once, or after raft has committed the
// request's records (then with the entry's index as base offset).
type blUnaryServer struct {
	loghousev1.UnimplementedLogServer
	raft *raft.Raft
}

func (s *blUnaryServer) Produce(_ context.Context, req *loghousev1.ProduceRequest) (*loghousev1.ProduceResponse, error) {
	n := uint32(len(req.GetRecords()))
	if s.raft == nil {
		return &loghousev1.ProduceResponse{Count: n}, nil
	}
	recs := make([]record.Record, n)
	for i, r := range req.GetRecords() {
		recs[i] = record.Record{Key: r.GetKey(), Value: r.GetValue()}
	}
	data, err := record.AppendBatch(nil, recs)
	if err != nil {
		return nil, err
	}
	f := s.raft.Apply(data, 0)
	if err := f.Error(); err != nil {
		return nil, err
	}
	return &loghousev1.ProduceResponse{BaseOffset: f.Index(), Count: n}, nil
}
