package server

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/auth"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// rule says what a method needs beyond a verified identity: any one of
// the actions (none: the identity suffices).
type rule []string

// methodRules maps every method the server registers to what it needs.
// Methods missing from the map are refused (default deny).
var methodRules = map[string]rule{
	loghousev1.Log_Produce_FullMethodName:       {auth.ActionProduce},
	loghousev1.Log_ProduceStream_FullMethodName: {auth.ActionProduce},
	loghousev1.Log_Consume_FullMethodName:       {auth.ActionConsume},
	loghousev1.Log_ConsumeStream_FullMethodName: {auth.ActionConsume},
	// Clients need the server list to find the leader, whether they
	// write, read or administer.
	loghousev1.Log_GetServers_FullMethodName: {auth.ActionProduce, auth.ActionConsume, auth.ActionAdmin},
	loghousev1.Log_Status_FullMethodName:     {auth.ActionAdmin},
	loghousev1.Log_Members_FullMethodName:    {auth.ActionAdmin},
	loghousev1.Log_RemovePeer_FullMethodName: {auth.ActionAdmin},
}

// identityOnly are the services open to every verified identity: health
// checks and reflection.
var identityOnly = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

type identityKey struct{}

// IdentityFrom returns the caller's identity (its certificate's common
// name) in a context the interceptors passed to a handler, or "".
func IdentityFrom(ctx context.Context) string {
	id, _ := ctx.Value(identityKey{}).(string)
	return id
}

// UnaryInterceptor authenticates and authorizes every unary call (see
// methodRules) and turns a panic in a handler into Internal.
func (s *Server) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		id, err := s.admit(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		defer s.recoverPanic(info.FullMethod, &err)
		return handler(context.WithValue(ctx, identityKey{}, id), req)
	}
}

// StreamInterceptor is UnaryInterceptor for streams.
func (s *Server) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		id, err := s.admit(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		defer s.recoverPanic(info.FullMethod, &err)
		return handler(srv, &identityStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), identityKey{}, id)})
	}
}

// GRPCServerOptions returns the interceptors, a receive limit that admits
// every request the server would accept (see DESIGN.md), and the codec
// that parses produce requests (wire.go), as server options. The caller adds the transport credentials:
//
//	grpc.NewServer(append(srv.GRPCServerOptions(), grpc.Creds(credentials.NewTLS(store.ServerConfig())))...)
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(s.StreamInterceptor()),
		grpc.MaxRecvMsgSize(max(defaultMaxRecvMsgSize, 2*s.cfg.MaxBatchBytes+64<<10)),
		grpc.ForceServerCodecV2(newCodec(s.cfg.limits())),
	}
}

// defaultMaxRecvMsgSize is gRPC's own default receive limit.
const defaultMaxRecvMsgSize = 4 << 20

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// admit returns the caller's identity if it may call method.
func (s *Server) admit(ctx context.Context, method string) (string, error) {
	id, err := identity(ctx)
	if err != nil {
		s.logger.Debug("refused an unauthenticated call", "method", method, "error", err)
		return "", status.Errorf(codes.Unauthenticated, "server: %v", err)
	}
	if client, ok := forwardedFor(ctx); ok {
		// Another server forwards a client's call: only a server may,
		// and the client's identity is what the policy judges.
		if err := serverPeer(ctx); err != nil {
			s.logger.Warn("refused a forwarded call from a non-server", "identity", id, "method", method, "error", err)
			return "", status.Errorf(codes.PermissionDenied, "server: %q may not forward calls: %v", id, err)
		}
		if client == "" {
			return "", status.Error(codes.Unauthenticated, "server: a forwarded call names no client identity")
		}
		id = client
	} else if serverCalls[method] && serverPeer(ctx) == nil {
		return id, nil
	}
	for _, prefix := range identityOnly {
		if strings.HasPrefix(method, prefix) {
			return id, nil
		}
	}
	actions, ok := methodRules[method]
	if !ok {
		return "", status.Errorf(codes.PermissionDenied, "server: %q may not call %s", id, method)
	}
	for _, act := range actions {
		err := s.authz.Authorize(id, act)
		switch {
		case err == nil:
			return id, nil
		case errors.Is(err, auth.ErrPermissionDenied):
			continue
		case errors.Is(err, auth.ErrNoIdentity):
			return "", status.Errorf(codes.Unauthenticated, "server: %v", err)
		default:
			s.logger.Error("authorizer failed", "identity", id, "action", act, "error", err)
			return "", status.Error(codes.Internal, "server: the authorizer failed (logged by the server)")
		}
	}
	return "", status.Errorf(codes.PermissionDenied, "server: %q may not %s", id, strings.Join(actions, " or "))
}

// serverCalls are the methods servers call on each other as themselves
// (to find the leader, and before bootstrap_expect bootstraps, to learn
// whether a peer already has raft state); a server certificate suffices.
var serverCalls = map[string]bool{
	loghousev1.Log_GetServers_FullMethodName: true,
	loghousev1.Log_Status_FullMethodName:     true,
}

// serverPeer returns nil if the caller presented a server certificate.
func serverPeer(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return errors.New("no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return fmt.Errorf("the connection is not TLS (%T)", p.AuthInfo)
	}
	_, err := tlsutil.RequireServer(ti.State, tlsutil.ServerRole)
	return err
}

// identity is the common name of the caller's verified client
// certificate.
func identity(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", errors.New("no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", fmt.Errorf("the connection is not TLS (%T)", p.AuthInfo)
	}
	return tlsutil.IdentityFromState(ti.State)
}

// recoverPanic turns a handler's panic into Internal, logging the stack.
func (s *Server) recoverPanic(method string, err *error) {
	if r := recover(); r != nil {
		s.logger.Error("handler panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, "server: internal error (logged by the server)")
	}
}
