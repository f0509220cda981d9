package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// serveGRPC runs the raw gRPC baseline until SIGTERM: Loghouse's own API
// over mutual TLS (the same certificates and TLS configuration as a
// Loghouse server) with nothing behind it, so `loghoused bench` drives it
// exactly as it drives Loghouse:
//
//   - Produce and ProduceStream answer each request at once with its
//     record count (after gRPC has decoded it);
//   - Consume and ConsumeStream send prebuilt responses of -batch records
//     of -size bytes, offsets advancing, over a log of -records records;
//   - GetServers names this server the leader, so the client finds it.
//
// No mux, no interceptors, no authorization, no log, no raft.
func serveGRPC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve-grpc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	ca := fs.String("ca-cert", "", "CA certificate")
	cert := fs.String("cert", "", "server certificate")
	key := fs.String("key", "", "server key")
	records := fs.Uint64("records", 1_000_000, "records in the pretend log")
	size := fs.Int("size", 256, "record value bytes for consumers")
	batch := fs.Int("batch", 1000, "records per consume response (Loghouse's default limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ca == "" || *cert == "" || *key == "" {
		return errors.New("serve-grpc needs -ca-cert, -cert and -key")
	}
	st, err := tlsutil.NewStore(tlsutil.Files{CAFile: *ca, CertFile: *cert, KeyFile: *key})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	value := make([]byte, *size)
	for i := range value {
		value[i] = byte(i * 7)
	}
	recs := make([]*loghousev1.Record, *batch)
	now := time.Now().UnixNano()
	for i := range recs {
		recs[i] = &loghousev1.Record{Value: value, Offset: uint64(i), TimestampUnixNano: now}
	}
	srv := &echoServer{addr: ln.Addr().String(), records: recs, total: *records}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(st.ServerConfig())))
	loghousev1.RegisterLogServer(gs, srv)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()
	fmt.Fprintf(stdout, "grpc baseline ready on %s\n", ln.Addr())
	select {
	case <-ctx.Done():
		gs.Stop()
		return <-served
	case err := <-served:
		return err
	}
}

type echoServer struct {
	loghousev1.UnimplementedLogServer
	addr    string
	records []*loghousev1.Record
	total   uint64
}

func (s *echoServer) GetServers(context.Context, *loghousev1.GetServersRequest) (*loghousev1.GetServersResponse, error) {
	return &loghousev1.GetServersResponse{Servers: []*loghousev1.Server{{Id: "baseline", RpcAddr: s.addr, IsLeader: true, Voter: true}}}, nil
}

func (s *echoServer) Status(context.Context, *loghousev1.StatusRequest) (*loghousev1.StatusResponse, error) {
	return &loghousev1.StatusResponse{NodeId: "baseline", RaftState: "Leader", LeaderId: "baseline", LeaderAddr: s.addr, CommittedOffset: s.total}, nil
}

func (s *echoServer) Produce(_ context.Context, req *loghousev1.ProduceRequest) (*loghousev1.ProduceResponse, error) {
	return &loghousev1.ProduceResponse{Count: uint32(len(req.GetRecords()))}, nil
}

func (s *echoServer) ProduceStream(stream grpc.BidiStreamingServer[loghousev1.ProduceRequest, loghousev1.ProduceResponse]) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := stream.Send(&loghousev1.ProduceResponse{Count: uint32(len(req.GetRecords())), Sequence: req.GetSequence()}); err != nil {
			return err
		}
	}
}

// response returns the records from offset on, at most max (0: the
// batch), as a response sharing the prebuilt records.
func (s *echoServer) response(offset uint64, maxRecords uint32) *loghousev1.ConsumeResponse {
	n := uint64(len(s.records))
	if maxRecords > 0 {
		n = min(n, uint64(maxRecords))
	}
	n = min(n, s.total-min(offset, s.total))
	return &loghousev1.ConsumeResponse{Records: s.records[:n], NextOffset: offset + n, CommittedOffset: s.total}
}

func (s *echoServer) Consume(_ context.Context, req *loghousev1.ConsumeRequest) (*loghousev1.ConsumeResponse, error) {
	return s.response(req.GetOffset(), req.GetMaxRecords()), nil
}

func (s *echoServer) ConsumeStream(req *loghousev1.ConsumeRequest, stream grpc.ServerStreamingServer[loghousev1.ConsumeResponse]) error {
	off := req.GetOffset()
	for off < s.total {
		resp := s.response(off, req.GetMaxRecords())
		if err := stream.Send(resp); err != nil {
			return err
		}
		off = resp.NextOffset
	}
	<-stream.Context().Done() // like a caught-up stream: wait for more
	return nil
}
