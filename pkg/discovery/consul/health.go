package consul

import (
	"context"
	"crypto/tls"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// HealthFunc reports whether this node can serve clients, with a note for
// operators (shown as the check's output in Consul). It must return by
// the time ctx ends.
type HealthFunc func(ctx context.Context) (ok bool, note string)

// HealthService is the gRPC health service name GRPCHealth asks about by
// default: the Log service's.
var HealthService = loghousev1.Log_ServiceDesc.ServiceName

// GRPCHealth returns a HealthFunc that asks the gRPC health service
// (grpc.health.v1) at addr about service (HealthService if empty), over
// TLS with tlsConfig: for a Loghouse node, its own advertised RPC address
// and certs.ClientConfig(tlsutil.ServerRole), so the probe presents the
// node's certificate and verifies the server's, as any client must. Each
// probe dials afresh, so it proves every time what a new client needs: the
// port accepts, the TLS handshake succeeds with the current certificates,
// and the server reports SERVING.
func GRPCHealth(addr string, tlsConfig *tls.Config, service string) HealthFunc {
	if service == "" {
		service = HealthService
	}
	return func(ctx context.Context) (bool, string) {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
		if err != nil {
			return false, fmt.Sprintf("gRPC health of %s: %v", addr, err)
		}
		defer func() { _ = cc.Close() }() // a probe connection; nothing to report
		res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return false, fmt.Sprintf("gRPC health of %s: %v", addr, err)
		}
		if st := res.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
			return false, fmt.Sprintf("gRPC health of %s: %s (a node serves once it leads or knows its leader)", addr, st)
		}
		return true, fmt.Sprintf("gRPC health of %s: SERVING over mutual TLS", addr)
	}
}
