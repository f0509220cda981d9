package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// rpcs calls every Log RPC once; each returns the call's error.
var rpcs = []struct {
	name string
	call func(ctx context.Context, cl loghousev1.LogClient) error
}{
	{"Produce", func(ctx context.Context, cl loghousev1.LogClient) error {
		_, err := cl.Produce(ctx, &loghousev1.ProduceRequest{Records: values("acl", 1, 0)})
		return err
	}},
	{"ProduceStream", func(ctx context.Context, cl loghousev1.LogClient) error {
		s, err := cl.ProduceStream(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&loghousev1.ProduceRequest{Records: values("acl", 1, 0)}); err != nil {
			_, rerr := s.Recv() // the status is on Recv
			return rerr
		}
		resp, err := s.Recv()
		if err == nil && resp.Error != nil {
			err = fmt.Errorf("stream answered with an error: %v", resp.Error)
		}
		return err
	}},
	{"Consume", func(ctx context.Context, cl loghousev1.LogClient) error {
		_, err := cl.Consume(ctx, atOffset(0))
		return err
	}},
	{"ConsumeStream", func(ctx context.Context, cl loghousev1.LogClient) error {
		s, err := cl.ConsumeStream(ctx, atOffset(0))
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}},
	{"GetServers", func(ctx context.Context, cl loghousev1.LogClient) error {
		_, err := cl.GetServers(ctx, &loghousev1.GetServersRequest{})
		return err
	}},
	{"Status", func(ctx context.Context, cl loghousev1.LogClient) error {
		_, err := cl.Status(ctx, &loghousev1.StatusRequest{})
		return err
	}},
}

// TestACL calls every RPC as every kind of identity: root may do all;
// reader may consume (and so list servers); writer may produce (and list
// servers); nobody may do nothing, and a server certificate used as a
// client only what servers ask each other (GetServers, Status). A refusal is PermissionDenied naming the identity and action.
func TestACL(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	n := c.nodes[0]
	produce(t, client(t, n, "root"), values("seed", 1, 0)) // something to consume

	allowed := map[string]map[string]bool{
		"root":   {"Produce": true, "ProduceStream": true, "Consume": true, "ConsumeStream": true, "GetServers": true, "Status": true},
		"reader": {"Consume": true, "ConsumeStream": true, "GetServers": true},
		"writer": {"Produce": true, "ProduceStream": true, "GetServers": true},
		"nobody": {},
		// Servers ask each other for the leader and for raft state.
		"server:node0": {"GetServers": true, "Status": true},
	}
	action := map[string]string{
		"Produce": "produce", "ProduceStream": "produce", "Consume": "consume", "ConsumeStream": "consume",
		"GetServers": "produce or consume or admin", "Status": "admin",
	}
	for _, id := range []string{"root", "reader", "writer", "nobody", "server:node0"} {
		cl := client(t, n, id)
		name := id
		if len(id) > 7 && id[:7] == "server:" {
			name = id[7:]
		}
		for _, rpc := range rpcs {
			t.Run(id+"/"+rpc.name, func(t *testing.T) {
				err := rpc.call(testCtx(t), cl)
				if allowed[id][rpc.name] {
					if err != nil {
						t.Fatalf("%s may %s, got %v", id, rpc.name, err)
					}
					return
				}
				wantCode(t, err, codes.PermissionDenied, fmt.Sprintf("%q may not %s", name, action[rpc.name]))
			})
		}
	}
	// Health and reflection need a verified identity and nothing more.
	conn := dial(t, n, "nobody")
	h, err := healthpb.NewHealthClient(conn).Check(testCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health as nobody: %v %v", h, err)
	}
	services := listServices(t, conn)
	for _, want := range []string{"loghouse.v1.Log", "grpc.health.v1.Health"} {
		if !services[want] {
			t.Fatalf("reflection lists %v, not %s", services, want)
		}
	}
}

func listServices(t *testing.T, conn *grpc.ClientConn) map[string]bool {
	t.Helper()
	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rs.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	out := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		out[s.Name] = true
	}
	return out
}

// TestUnauthenticated checks who refuses a client without a verified
// certificate. With the production TLS config the handshake does (the
// client sees Unavailable and no RPC runs); with a server that only
// requests a certificate, or with no TLS at all, the interceptor does,
// with Unauthenticated, for the Log service, health and reflection alike.
func TestUnauthenticated(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	n := c.nodes[0]

	t.Run("production config refuses at the handshake", func(t *testing.T) {
		_, err := client(t, n, "").Status(testCtx(t), &loghousev1.StatusRequest{})
		wantCode(t, err, codes.Unavailable)
	})

	// A second gRPC server for the same Server, with a weaker transport.
	serve := func(t *testing.T, creds grpc.ServerOption) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer(append(n.srv.GRPCServerOptions(), creds)...)
		n.srv.Register(gs)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := gs.Serve(ln); err != nil {
				t.Logf("serve: %v", err)
			}
		}()
		t.Cleanup(func() { gs.Stop(); <-done })
		return ln.Addr().String()
	}
	optional := n.tls.ServerConfig()
	optional.ClientAuth = tls.VerifyClientCertIfGiven
	cases := []struct {
		name   string
		server grpc.ServerOption
		client func(t *testing.T, addr string) *grpc.ClientConn
		wants  string
	}{
		{"certificate optional, none given", grpc.Creds(credentials.NewTLS(optional)),
			func(t *testing.T, addr string) *grpc.ClientConn { return dialAddr(t, addr, clientTLS(t, "")) }, "no verified client certificate"},
		{"no TLS", grpc.Creds(insecure.NewCredentials()),
			func(t *testing.T, addr string) *grpc.ClientConn {
				conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				return conn
			}, "not TLS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := tc.client(t, serve(t, tc.server))
			cl := loghousev1.NewLogClient(conn)
			for _, rpc := range rpcs {
				wantCode(t, rpc.call(testCtx(t), cl), codes.Unauthenticated, tc.wants)
			}
			_, err := healthpb.NewHealthClient(conn).Check(testCtx(t), &healthpb.HealthCheckRequest{})
			wantCode(t, err, codes.Unauthenticated, tc.wants)
			rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(testCtx(t))
			if err == nil {
				_, err = rs.Recv()
			}
			wantCode(t, err, codes.Unauthenticated, tc.wants)
		})
	}
	t.Run("certificate optional, one given", func(t *testing.T) {
		addr := serve(t, grpc.Creds(credentials.NewTLS(optional)))
		cl := loghousev1.NewLogClient(dialAddr(t, addr, clientTLS(t, "root")))
		if _, err := cl.Status(testCtx(t), &loghousev1.StatusRequest{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPanicsBecomeInternal checks that the interceptors turn a handler's
// panic into Internal without its text.
func TestPanicsBecomeInternal(t *testing.T) {
	c := newCluster(t, 1, clusterOpts{})
	s := c.nodes[0].srv
	block, _ := pem.Decode(keyPair(t, tlsutil.ClientCert, "root").CertPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{
		HandshakeComplete: true, VerifiedChains: [][]*x509.Certificate{{cert}},
	}}})
	var who string
	_, err = s.UnaryInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: loghousev1.Log_Status_FullMethodName},
		func(ctx context.Context, _ any) (any, error) {
			who = IdentityFrom(ctx)
			panic("secret detail")
		})
	if who != "root" {
		t.Fatalf("the handler saw identity %q, want root", who)
	}
	st := wantCode(t, err, codes.Internal)
	if st.Message() != "server: internal error (logged by the server)" {
		t.Fatalf("panic leaked: %q", st.Message())
	}
	err = s.StreamInterceptor()(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: loghousev1.Log_ConsumeStream_FullMethodName},
		func(any, grpc.ServerStream) error { panic("secret detail") })
	wantCode(t, err, codes.Internal)
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeStream) Context() context.Context { return f.ctx }
