package server

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// Produce appends the request's records as one unit: they get consecutive
// offsets in one raft entry, shared with other callers' requests (group
// commit). It answers once the entry is committed. gRPC calls reach
// produceMsg directly (see Register); this is for callers holding a
// message.
func (s *Server) Produce(ctx context.Context, req *loghousev1.ProduceRequest) (*loghousev1.ProduceResponse, error) {
	return s.produceMsg(ctx, msgFromProto(req, s.cfg.limits()))
}

// produceMsg is Produce for a request the codec parsed.
func (s *Server) produceMsg(ctx context.Context, m *produceMsg) (*loghousev1.ProduceResponse, error) {
	r, err := s.newRequest(ctx, m)
	if err != nil {
		return nil, err
	}
	res := s.produce(r)
	if res.err != nil {
		return nil, s.toStatus(ctx, res.err)
	}
	return &loghousev1.ProduceResponse{BaseOffset: res.base, Count: res.count, TimestampUnixNano: res.time}, nil
}

// produceHandler is the gRPC handler of Produce: the generated one would
// unmarshal a ProduceRequest message, this one has the codec parse the
// request into a produceMsg.
func produceHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Server)
	in := new(produceMsg)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return s.produceMsg(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: loghousev1.Log_Produce_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.produceMsg(ctx, req.(*produceMsg))
	})
}

// produce submits r and waits for its result or for the caller to leave.
func (s *Server) produce(r *request) result {
	if err := s.submit(r); err != nil {
		return result{err: err}
	}
	select {
	case res := <-r.done:
		return res
	case <-r.ctx.Done():
		return result{err: r.ctx.Err()}
	}
}

// submit hands r to the committer on the leader. A follower forwards it to
// the leader (unless it was forwarded to this node already: one hop only,
// so a stale view of the leader can never make requests loop), answering
// r.done when the leader has.
func (s *Server) submit(r *request) error {
	if s.node.IsLeader() {
		return s.committer.submit(r)
	}
	if s.fwd == nil || isForwarded(r.ctx) {
		return s.notLeader(r.ctx, "this node is not the leader")
	}
	if r.stream != nil {
		r.stream.send(r)
		return nil
	}
	// The goroutine ends with the call: the leader answers, the
	// request's context ends, or Close closes the forwarder's
	// connections.
	go s.forward(r)
	return nil
}

// newRequest wraps a parsed request, or returns why it is refused.
func (s *Server) newRequest(ctx context.Context, m *produceMsg) (*request, error) {
	if m.err != nil {
		return nil, m.err
	}
	return &request{ctx: ctx, done: make(chan result, 1), msg: m}, nil
}

// pending is a ProduceStream request awaiting its answer.
type pending struct {
	seq  uint64
	done <-chan result
}

// ProduceStream reads requests as they come and submits each at once, so
// that they are committed in pipelined batches; a second goroutine sends
// the answers in request order. At most ProduceStreamDepth requests are
// unanswered; the stream is not read while that many are.
func (s *Server) ProduceStream(stream loghousev1.Log_ProduceStreamServer) error {
	ctx := stream.Context()
	queue := make(chan pending, s.cfg.ProduceStreamDepth)
	var sendErr error
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		sendErr = s.answer(stream, queue)
	}()

	fwd := newStreamForwarder(ctx, s)
	recvErr := s.receive(ctx, stream, queue, senderDone, fwd)
	close(queue)
	<-senderDone
	fwd.close()
	if recvErr != nil && !errors.Is(recvErr, errSenderStopped) {
		return recvErr
	}
	return sendErr
}

// errSenderStopped tells ProduceStream that receive stopped because the
// sender did; the sender's error is the stream's.
var errSenderStopped = errors.New("server: the stream's sender stopped")

// receive reads the stream until it ends and queues each request's
// pending answer. It returns nil at the end of the stream.
func (s *Server) receive(ctx context.Context, stream loghousev1.Log_ProduceStreamServer, queue chan<- pending, senderDone <-chan struct{}, fwd *streamForwarder) error {
	for {
		// The codec parses the message (see Register); RecvMsg with a
		// produceMsg works on the stream ProduceStream is given.
		req := new(produceMsg)
		err := stream.RecvMsg(req)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return s.toStatus(ctx, err)
		}
		var done chan result
		r, err := s.newRequest(ctx, req)
		if err == nil {
			done = r.done
			r.stream = fwd
			err = s.submit(r)
		} else {
			done = make(chan result, 1)
		}
		if err != nil {
			done <- result{err: err}
		}
		select {
		case queue <- pending{seq: req.seq, done: done}:
		case <-senderDone:
			// The sender stopped early: the stream broke.
			return errSenderStopped
		}
	}
}

// answer sends the answers in request order.
func (s *Server) answer(stream loghousev1.Log_ProduceStreamServer, queue <-chan pending) error {
	ctx := stream.Context()
	for p := range queue {
		var res result
		select {
		case res = <-p.done:
		case <-ctx.Done():
			return s.toStatus(ctx, ctx.Err())
		}
		resp := &loghousev1.ProduceResponse{Sequence: p.seq}
		if res.err != nil {
			resp.Error = errorMessage(s.toStatus(ctx, res.err))
		} else {
			resp.BaseOffset, resp.Count, resp.TimestampUnixNano = res.base, res.count, res.time
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}
