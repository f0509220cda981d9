package server

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/record"
)

// Produce appends the request's records as one unit: they get consecutive
// offsets in one raft entry, shared with other callers' requests (group
// commit). It answers once the entry is committed.
func (s *Server) Produce(ctx context.Context, req *loghousev1.ProduceRequest) (*loghousev1.ProduceResponse, error) {
	r, err := s.newRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	res := s.produce(r)
	if res.err != nil {
		return nil, s.toStatus(ctx, res.err)
	}
	return &loghousev1.ProduceResponse{BaseOffset: res.base, Count: res.count, TimestampUnixNano: res.time}, nil
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

// newRequest validates a produce request and converts its records, which
// keep aliasing the message's bytes.
func (s *Server) newRequest(ctx context.Context, req *loghousev1.ProduceRequest) (*request, error) {
	in := req.GetRecords()
	switch {
	case len(in) == 0:
		return nil, status.Error(codes.InvalidArgument, "server: a produce request needs at least one record")
	case len(in) > s.cfg.MaxRequestRecords:
		return nil, status.Errorf(codes.InvalidArgument, "server: %d records in one request, the limit is %d", len(in), s.cfg.MaxRequestRecords)
	}
	nh := 0
	for i, pr := range in {
		if h := len(pr.GetHeaders()); h > record.MaxHeaders {
			return nil, status.Errorf(codes.InvalidArgument, "server: record %d has %d headers, the limit is %d", i, h, record.MaxHeaders)
		}
		nh += len(pr.GetHeaders())
	}
	r := &request{ctx: ctx, done: make(chan result, 1), pb: req}
	if r.recs = r.one[:]; len(in) > 1 {
		r.recs = make([]record.Record, len(in))
	}
	headers := make([]record.Header, nh)
	for i, pr := range in {
		rec := &r.recs[i]
		rec.Key, rec.Value = pr.GetKey(), pr.GetValue()
		if hs := pr.GetHeaders(); len(hs) > 0 {
			rec.Headers, headers = headers[:len(hs):len(hs)], headers[len(hs):]
			for j, h := range hs {
				rec.Headers[j] = record.Header{Name: h.GetKey(), Value: h.GetValue()}
			}
		}
		n := rec.EncodedSize()
		if n > s.cfg.MaxRecordBytes {
			return nil, status.Errorf(codes.InvalidArgument, "server: record %d takes %d bytes (key, value and headers), the limit is %d", i, n, s.cfg.MaxRecordBytes)
		}
		r.size += n
	}
	if r.size > s.cfg.MaxBatchBytes {
		return nil, status.Errorf(codes.InvalidArgument, "server: the request's records take %d bytes, the limit for one request is %d", r.size, s.cfg.MaxBatchBytes)
	}
	return r, nil
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
		req, err := stream.Recv()
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
		case queue <- pending{seq: req.GetSequence(), done: done}:
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
