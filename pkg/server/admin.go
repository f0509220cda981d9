package server

import (
	"context"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// GetServers lists the servers of the raft configuration this node knows,
// and which one leads.
func (s *Server) GetServers(ctx context.Context, _ *loghousev1.GetServersRequest) (*loghousev1.GetServersResponse, error) {
	f := s.node.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	_, leaderID := s.node.Leader()
	servers := f.Configuration().Servers
	resp := &loghousev1.GetServersResponse{Servers: make([]*loghousev1.Server, 0, len(servers))}
	for _, srv := range servers {
		resp.Servers = append(resp.Servers, &loghousev1.Server{
			Id:       string(srv.ID),
			RpcAddr:  string(srv.Address),
			IsLeader: leaderID != "" && string(srv.ID) == leaderID,
			Voter:    srv.Suffrage == raft.Voter,
		})
	}
	return resp, nil
}

// Status describes this node's raft state and log.
func (s *Server) Status(_ context.Context, _ *loghousev1.StatusRequest) (*loghousev1.StatusResponse, error) {
	r, l := s.node.Raft, s.node.Log
	leaderAddr, leaderID := s.node.Leader()
	first, committed := s.bounds()
	st := l.Stats()
	return &loghousev1.StatusResponse{
		NodeId:          s.node.ID(),
		RaftState:       r.State().String(),
		LeaderId:        leaderID,
		LeaderAddr:      leaderAddr,
		Term:            r.CurrentTerm(),
		CommitIndex:     r.CommitIndex(),
		AppliedIndex:    r.AppliedIndex(),
		FirstOffset:     first,
		CommittedOffset: committed,
		FirstIndex:      l.FirstIndex(),
		LastIndex:       l.LastIndex(),
		Segments:        int64(st.Segments),
		LogBytes:        st.Bytes,
	}, nil
}

// Members lists the gossip members this node knows.
func (s *Server) Members(_ context.Context, _ *loghousev1.MembersRequest) (*loghousev1.MembersResponse, error) {
	if s.cfg.Members == nil {
		return nil, status.Error(codes.FailedPrecondition, "server: this node runs without gossip")
	}
	ms := s.cfg.Members()
	resp := &loghousev1.MembersResponse{Members: make([]*loghousev1.Member, 0, len(ms))}
	for _, m := range ms {
		resp.Members = append(resp.Members, &loghousev1.Member{
			Name: m.Name, GossipAddr: m.Addr, RpcAddr: m.RPCAddr, Status: m.Status, Tags: m.Tags,
		})
	}
	return resp, nil
}

// RemovePeer removes a server from the raft configuration. The leader does
// it; a follower forwards the call there.
func (s *Server) RemovePeer(ctx context.Context, req *loghousev1.RemovePeerRequest) (*loghousev1.RemovePeerResponse, error) {
	id := req.GetId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "server: remove-peer needs the server's id")
	}
	if !s.node.IsLeader() {
		if s.fwd == nil || isForwarded(ctx) {
			return nil, s.notLeader(ctx, "this node is not the leader")
		}
		addr, err := s.waitLeader(ctx)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		if addr != "" {
			cl, err := s.fwd.client(addr)
			if err != nil {
				return nil, s.toStatus(ctx, err)
			}
			var p peer.Peer
			resp, err := cl.RemovePeer(outgoing(ctx), req, grpc.Peer(&p))
			if err != nil {
				return nil, s.forwardError(ctx, err, p.Addr != nil)
			}
			return resp, nil
		}
	}
	f := s.node.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	known := false
	for _, srv := range f.Configuration().Servers {
		known = known || string(srv.ID) == id
	}
	if !known {
		return nil, status.Errorf(codes.NotFound, "server: %q is not a raft server of this cluster", id)
	}
	if err := s.node.Raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout).Error(); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.logger.Info("removed a raft server", "id", id, "by", IdentityFrom(ctx))
	return &loghousev1.RemovePeerResponse{}, nil
}

// Serving reports what the health service reports: true on the leader, and
// on a follower that knows its leader.
func (s *Server) Serving() bool { return s.canServe() }
