package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/commitlog"
)

// LeaderTrailer is the trailer metadata key that names the leader's RPC
// address when a node refuses a write because it does not lead.
const LeaderTrailer = "loghouse-leader"

// errServerClosed is what requests get once Close has begun.
var errServerClosed = errors.New("server: closed")

// toStatus turns any error a handler meets into a gRPC status error. It is
// the one place where errors are mapped to codes:
//
//	a status error                       unchanged
//	commitlog.ErrOutOfRange              OutOfRange, with the node's bounds
//	raft.ErrNotLeader and the like       Unavailable, with the leader
//	commitlog.ErrClosed, errServerClosed Unavailable
//	context.DeadlineExceeded / Canceled  DeadlineExceeded / Canceled
//	anything else                        Internal; the cause is logged,
//	                                     not sent
func (s *Server) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	switch {
	case errors.Is(err, commitlog.ErrOutOfRange):
		return s.outOfRange("%v", err)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return s.notLeader(ctx, "this node is not the leader")
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return s.unavailable(ctx, "leadership was lost while committing; the records may or may not have been committed", true)
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, commitlog.ErrClosed):
		return s.unavailable(ctx, "the node shut down while committing; the records may or may not have been committed", true)
	case errors.Is(err, errServerClosed):
		return s.notLeader(ctx, "the node is shutting down")
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return s.notLeader(ctx, "raft did not accept the write in time")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	s.logger.Error("internal error", "identity", IdentityFrom(ctx), "error", err)
	return status.Error(codes.Internal, "server: internal error (logged by the server)")
}

// bounds returns what this node serves: [first, committed) in offsets.
func (s *Server) bounds() (first, committed uint64) {
	committed, _ = s.node.FSM.Committed()
	return s.node.Log.FirstOffset(), committed
}

// outOfRange is an OutOfRange status whose message ends with the node's
// current bounds.
func (s *Server) outOfRange(format string, args ...any) error {
	first, committed := s.bounds()
	return status.Errorf(codes.OutOfRange, "%s; this node holds offsets [%d, %d)", fmt.Sprintf(format, args...), first, committed)
}

// notLeader is an Unavailable status for a write that was not taken (and
// so is safe to retry).
func (s *Server) notLeader(ctx context.Context, why string) error {
	return s.unavailable(ctx, why, false)
}

// unavailable is an Unavailable status naming the leader, if one is known,
// in its message, in a loghousev1.Error detail and in the LeaderTrailer
// trailer. indeterminate says the write may have been committed.
func (s *Server) unavailable(ctx context.Context, why string, indeterminate bool) error {
	addr, id := s.node.Leader()
	msg := why + "; no leader is known"
	if addr != "" {
		msg = fmt.Sprintf("%s; the leader is %s at %s", why, id, addr)
		if ctx != nil {
			if err := grpc.SetTrailer(ctx, metadata.Pairs(LeaderTrailer, addr)); err != nil {
				s.logger.Debug("cannot set the leader trailer", "error", err)
			}
		}
	}
	st := status.New(codes.Unavailable, msg)
	if d, err := st.WithDetails(&loghousev1.Error{Code: int32(codes.Unavailable), Message: msg, LeaderAddr: addr, Indeterminate: indeterminate}); err == nil {
		st = d
	} else {
		s.logger.Warn("cannot attach error details", "error", err)
	}
	return st.Err()
}

// errorMessage turns a status error into the Error a ProduceStream response
// carries, with the leader address from its details.
func errorMessage(err error) *loghousev1.Error {
	st := status.Convert(err)
	e := &loghousev1.Error{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if le, ok := d.(*loghousev1.Error); ok {
			e.LeaderAddr = le.LeaderAddr
			e.Indeterminate = le.Indeterminate
		}
	}
	return e
}
