package server

import (
	"context"

	"github.com/hashicorp/raft"

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
