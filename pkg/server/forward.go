package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// ForwardedForKey is the metadata key a server sets on a request it
// forwards to the leader: the identity of the client it forwards for. The
// leader honours it only from a peer with a server certificate, authorizes
// that identity, and never forwards the request again.
const ForwardedForKey = "loghouse-forwarded-for"

// forwardedFor returns the client identity a forwarding server named, if
// ctx carries one.
func forwardedFor(ctx context.Context) (string, bool) {
	// ValueFromIncomingContext reads the one key without copying the
	// whole metadata map, which every call pays for.
	v := metadata.ValueFromIncomingContext(ctx, ForwardedForKey)
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// isForwarded reports whether the call came from another server on a
// client's behalf.
func isForwarded(ctx context.Context) bool {
	_, ok := forwardedFor(ctx)
	return ok
}

// forwarder keeps gRPC connections to the servers this node forwards to
// (the leader, which changes), dialled with this node's server certificate
// and requiring a server certificate back.
type forwarder struct {
	tls *tlsutil.Store

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

func newForwarder(store *tlsutil.Store) *forwarder {
	return &forwarder{tls: store, conns: map[string]*grpc.ClientConn{}}
}

// client returns a Log client for addr, dialling it on first use.
func (f *forwarder) client(addr string) (loghousev1.LogClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errServerClosed
	}
	if cc, ok := f.conns[addr]; ok {
		return loghousev1.NewLogClient(cc), nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(f.tls.ClientConfig(tlsutil.ServerRole))))
	if err != nil {
		return nil, fmt.Errorf("server: dial the leader at %s: %w", addr, err)
	}
	// One connection per server that has led: as many as the cluster
	// has servers (gRPC lets idle ones go idle). None is closed before
	// Close, which would fail forwarded calls still running on it.
	f.conns[addr] = cc
	return loghousev1.NewLogClient(cc), nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for a, cc := range f.conns {
		_ = cc.Close()
		delete(f.conns, a)
	}
}

// outgoing is the context for a forwarded call: ctx's deadline, and the
// client's identity in ForwardedForKey.
func outgoing(ctx context.Context) context.Context {
	return metadata.NewOutgoingContext(ctx, metadata.Pairs(ForwardedForKey, IdentityFrom(ctx)))
}

// leaderWaitPoll is how often a forwarding node looks for a new leader.
const leaderWaitPoll = 20 * time.Millisecond

// waitLeader returns the leader's address once one is known and is not
// this node, or "" if this node has become the leader. It waits within
// ctx's deadline, and at most ApplyTimeout.
func (s *Server) waitLeader(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	for {
		if s.node.IsLeader() {
			return "", nil
		}
		if addr, _ := s.node.Leader(); addr != "" && addr != s.node.Advertise() {
			return addr, nil
		}
		select {
		case <-ctx.Done():
			return "", s.notLeader(ctx, "no leader was elected in time")
		case <-s.closed.Done():
			return "", errServerClosed
		case <-time.After(leaderWaitPoll):
		}
	}
}

// forward produces r through the leader and answers it on r.done. While
// the leader says it did not take the request (it lost leadership before
// accepting it), forward retries with the next leader within the
// request's deadline; an outcome it cannot know is reported as
// indeterminate.
func (s *Server) forward(r *request) {
	// Retries end with the request's deadline, and after ApplyTimeout for
	// a request that has none.
	giveUp := time.Now().Add(s.cfg.ApplyTimeout)
	for {
		addr, err := s.waitLeader(r.ctx)
		if err != nil {
			r.done <- result{err: err}
			return
		}
		if addr == "" { // this node leads now
			if err := s.committer.submit(r); err != nil {
				r.done <- result{err: err}
			}
			return
		}
		cl, err := s.fwd.client(addr)
		if err != nil {
			r.done <- result{err: err}
			return
		}
		req, err := r.msg.toProto()
		if err != nil {
			r.done <- result{err: err}
			return
		}
		var p peer.Peer
		resp, err := cl.Produce(outgoing(r.ctx), req, grpc.Peer(&p))
		if err == nil {
			r.done <- result{base: resp.GetBaseOffset(), count: resp.GetCount(), time: resp.GetTimestampUnixNano()}
			return
		}
		err = s.forwardError(r.ctx, err, p.Addr != nil)
		if retryable(err) && r.ctx.Err() == nil && time.Now().Before(giveUp) {
			s.logger.Debug("the leader did not take a forwarded request; retrying", "leader", addr, "error", err)
			select {
			case <-time.After(leaderWaitPoll):
				continue
			case <-r.ctx.Done():
			}
		}
		r.done <- result{err: err}
		return
	}
}

// forwardError turns what a forwarded call returned into the error the
// client gets. A status from the leader's service (with a loghousev1.Error
// detail, or a code other than Unavailable and the like) is passed on. A
// call that never left this node (sent is false: gRPC found no connection
// to carry it, so the grpc.Peer call option stayed empty) stored nothing
// and may be retried. Any other failure, after which the leader may or
// may not have committed the records, becomes an indeterminate
// Unavailable.
func (s *Server) forwardError(ctx context.Context, err error, sent bool) error {
	st, ok := status.FromError(err)
	if ok {
		for _, d := range st.Details() {
			if _, ok := d.(*loghousev1.Error); ok {
				return st.Err()
			}
		}
	}
	if !sent {
		if ctx.Err() != nil {
			return s.toStatus(ctx, ctx.Err())
		}
		return s.notLeader(ctx, fmt.Sprintf("cannot reach the leader: %v", err))
	}
	if !ok {
		return s.unavailable(ctx, fmt.Sprintf("forwarding to the leader failed: %v", err), true)
	}
	switch st.Code() {
	case codes.Unavailable, codes.Unknown, codes.Internal, codes.Canceled:
		if ctx.Err() != nil {
			return s.toStatus(ctx, ctx.Err())
		}
		return s.unavailable(ctx, fmt.Sprintf("forwarding to the leader failed: %s", st.Message()), true)
	}
	return st.Err()
}

// retryable reports whether err says the request was not taken: an
// Unavailable whose detail is not indeterminate.
func retryable(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	for _, d := range st.Details() {
		if e, ok := d.(*loghousev1.Error); ok {
			return !e.GetIndeterminate()
		}
	}
	return false
}

// streamForwarder forwards one follower ProduceStream's requests to the
// leader over one upstream ProduceStream, so that they are committed in
// the order they arrived. Answers come back in order and are matched to
// the waiting requests. If the upstream breaks, the requests sent on it
// fail as indeterminate and the next request opens a new one (to the
// leader of the moment).
type streamForwarder struct {
	s   *Server
	ctx context.Context

	mu  sync.Mutex
	cur *upstream
	wg  sync.WaitGroup
}

// upstream is one stream to a leader and the requests sent on it.
type upstream struct {
	stream  loghousev1.Log_ProduceStreamClient
	cancel  context.CancelFunc
	waiting []*request // sent, not yet answered, in order; guarded by streamForwarder.mu
	seq     uint64
}

func newStreamForwarder(ctx context.Context, s *Server) *streamForwarder {
	return &streamForwarder{s: s, ctx: ctx}
}

// send forwards r, or answers it with an error if no upstream can be
// opened. It is called by the one goroutine that reads the client's stream, so
// requests go upstream in order. It does not hold sf.mu while sending: a
// Send blocked by flow control must not keep the receiver from taking the
// answers that would unblock it.
func (sf *streamForwarder) send(r *request) {
	sf.mu.Lock()
	if sf.cur == nil {
		// Opening may wait for an election; the receivers of earlier
		// upstreams must not wait for the lock meanwhile. Only this
		// goroutine sets sf.cur, so it is still nil afterwards.
		sf.mu.Unlock()
		up, err := sf.open()
		if err != nil {
			r.done <- result{err: err}
			return
		}
		sf.mu.Lock()
		sf.cur = up
	}
	up := sf.cur
	up.seq++
	seq := up.seq
	up.waiting = append(up.waiting, r)
	sf.mu.Unlock()
	req, err := r.msg.toProto()
	if err == nil {
		req.Sequence = seq
		err = up.stream.Send(req)
	}
	if err != nil {
		// The upstream's receiver sees it end and fails every request
		// sent on it, this one included.
		up.cancel()
		sf.mu.Lock()
		if sf.cur == up {
			sf.cur = nil
		}
		sf.mu.Unlock()
	}
}

// open starts an upstream stream to the current leader.
func (sf *streamForwarder) open() (*upstream, error) {
	addr, err := sf.s.waitLeader(sf.ctx)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, sf.s.notLeader(sf.ctx, "this node became the leader while forwarding")
	}
	cl, err := sf.s.fwd.client(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(outgoing(sf.ctx))
	stream, err := cl.ProduceStream(ctx)
	if err != nil {
		cancel()
		// Nothing was sent on a stream that did not open.
		return nil, sf.s.forwardError(sf.ctx, err, false)
	}
	up := &upstream{stream: stream, cancel: cancel}
	sf.wg.Add(1)
	go sf.receive(up)
	return up, nil
}

// receive answers up's waiting requests from its responses, in order,
// until it ends; then it fails those still waiting.
func (sf *streamForwarder) receive(up *upstream) {
	defer sf.wg.Done()
	defer up.cancel()
	var failure error
	for {
		resp, err := up.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "the leader ended the stream")
			}
			failure = sf.s.forwardError(sf.ctx, err, true)
			break
		}
		sf.mu.Lock()
		if len(up.waiting) == 0 {
			sf.mu.Unlock()
			failure = sf.s.unavailable(sf.ctx, "the leader answered a request that was not sent", true)
			break
		}
		r := up.waiting[0]
		up.waiting = up.waiting[1:]
		sf.mu.Unlock()
		r.done <- upstreamResult(resp)
	}
	sf.mu.Lock()
	if sf.cur == up {
		sf.cur = nil
	}
	for _, r := range up.waiting {
		r.done <- result{err: failure}
	}
	up.waiting = nil
	sf.mu.Unlock()
}

// upstreamResult is the result a leader's stream response carries.
func upstreamResult(resp *loghousev1.ProduceResponse) result {
	if e := resp.GetError(); e != nil {
		st := status.New(codes.Code(e.GetCode()), e.GetMessage())
		if d, err := st.WithDetails(e); err == nil {
			st = d
		}
		return result{err: st.Err()}
	}
	return result{base: resp.GetBaseOffset(), count: resp.GetCount(), time: resp.GetTimestampUnixNano()}
}

// close half-closes the upstream stream, whose receiver ends once the
// requests sent on it are answered (or the stream's context ends), and
// waits for the receivers.
func (sf *streamForwarder) close() {
	sf.mu.Lock()
	if sf.cur != nil {
		if err := sf.cur.stream.CloseSend(); err != nil {
			sf.cur.cancel()
		}
		sf.cur = nil
	}
	sf.mu.Unlock()
	sf.wg.Wait()
}
