package server

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/replication"
)

// Server is the Log service of one node, with its health service. Create
// it with New and attach it to a grpc.Server with Register. At shutdown,
// Close it before grpc.Server.GracefulStop, and close the node after both.
type Server struct {
	loghousev1.UnimplementedLogServer

	cfg    Config
	node   *replication.Node
	authz  Authorizer
	logger hclog.Logger
	// wireBufs recycles ConsumeStream's response encodings.
	wireBufs wireBuffers
	health   *health.Server

	committer *committer
	fwd       *forwarder // nil: followers refuse writes instead of forwarding

	observer  *raft.Observer
	observeCh chan raft.Observation
	stopWatch chan struct{} // ends watchHealth
	raftDown  chan struct{} // closed when raft is seen shut down
	downOnce  sync.Once

	// closed ends when Close begins; calls that wait (streams,
	// min_committed) watch it through callContext.
	closed    context.Context
	endClosed context.CancelCauseFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	// streamWaits counts how often ConsumeStream loops went to sleep on
	// the commit watermark, and streamReads how often they read the log;
	// tests use them to see that a caught-up stream does not spin.
	streamWaits atomic.Int64
	streamReads atomic.Int64

	// readyTerm is the latest term in which this node, as leader, has
	// applied a barrier: its reads may then use the read index
	// (readBarrier). barrierMu lets one reader run the barrier.
	readyTerm atomic.Uint64
	barrierMu sync.Mutex
}

// New returns a Server for cfg.Node and starts its group committer and
// its health watcher.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		node:      cfg.Node,
		authz:     cfg.Authorizer,
		logger:    cfg.Logger,
		health:    health.NewServer(),
		observeCh: make(chan raft.Observation, 1),
		stopWatch: make(chan struct{}),
		raftDown:  make(chan struct{}),
	}
	s.closed, s.endClosed = context.WithCancelCause(context.Background())

	// Raft drops observations the channel has no room for; that is fine,
	// because a pending one makes the watcher read the current state.
	s.observer = raft.NewObserver(s.observeCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RaftState, raft.LeaderObservation:
			return true
		}
		return false
	})
	s.node.Raft.RegisterObserver(s.observer)
	s.updateHealth()
	s.wg.Add(1)
	go s.watchHealth()
	s.committer = newCommitter(s.node.Raft, cfg, s.logger.Named("committer"), s.raftDown)
	if cfg.TLS != nil {
		s.fwd = newForwarder(cfg.TLS)
	}
	return s, nil
}

// Register registers the Log service, the gRPC health service and server
// reflection on gs, which must have been made with GRPCServerOptions: its
// codec parses produce requests (see wire.go).
func (s *Server) Register(gs *grpc.Server) {
	desc := loghousev1.Log_ServiceDesc
	desc.Methods = slices.Clone(desc.Methods)
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == "Produce" {
			desc.Methods[i].Handler = produceHandler
		}
	}
	gs.RegisterService(&desc, s)
	healthpb.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
}

// Close ends waiting ConsumeStreams and min_committed reads, fails
// queued and later produce requests with Unavailable, reports NOT_SERVING,
// and waits for the health watcher and the group committer; batches
// already handed to raft are answered first. Call it before
// grpc.Server.GracefulStop, which would otherwise wait for caught-up
// streams forever, and close the node after both. Close is idempotent and
// returns nil (the error is for io.Closer).
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.endClosed(errServerClosed)
		// The committer may need the watcher to learn that raft shut
		// down, so it stops first.
		s.committer.close()
		if s.fwd != nil {
			s.fwd.close()
		}
		s.health.Shutdown()
		close(s.stopWatch)
		s.wg.Wait()
		s.node.Raft.DeregisterObserver(s.observer)
	})
	return nil
}

// callContext returns ctx, also cancelled (with cause errServerClosed)
// when Close begins, and the function that releases it.
func (s *Server) callContext(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.closed, func() { cancel(errServerClosed) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// watchHealth keeps the health status in step with raft, and closes
// raftDown when raft has shut down.
func (s *Server) watchHealth() {
	defer s.wg.Done()
	for {
		select {
		case <-s.observeCh:
			s.updateHealth()
		case <-s.stopWatch:
			return
		}
	}
}

// healthService is the service name the Log service reports health under;
// "" (the whole server) reports the same.
var healthService = loghousev1.Log_ServiceDesc.ServiceName

// updateHealth reports SERVING while the node is a leader, or a follower
// that knows its leader: then it serves reads of committed records and
// can tell writers where the leader is.
func (s *Server) updateHealth() {
	if s.node.Raft.State() == raft.Shutdown {
		s.downOnce.Do(func() { close(s.raftDown) })
	}
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.canServe() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(healthService, st)
}

func (s *Server) canServe() bool {
	switch s.node.Raft.State() {
	case raft.Leader:
		return true
	case raft.Follower:
		addr, _ := s.node.Leader()
		return addr != ""
	}
	return false
}
