package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// Consume reads committed records from a follower (see Config.ReadFromLeader),
// retrying on another server while servers are unavailable. A follower
// serves only what it has committed; set req's min_committed to read your
// own writes.
func (c *Client) Consume(ctx context.Context, req *loghousev1.ConsumeRequest) (*loghousev1.ConsumeResponse, error) {
	var resp *loghousev1.ConsumeResponse
	err := c.call(ctx, "Consume", route{kind: toReader}, false, func(ctx context.Context, lc loghousev1.LogClient, opts ...grpc.CallOption) error {
		var err error
		resp, err = lc.Consume(ctx, req, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// RecordStream follows the log from a start position: it delivers every
// committed record once, in offset order, and waits for new ones. When its
// server fails it goes on from the next offset on another server. Make one
// with Client.ConsumeStream. Recv and Close must not be called
// concurrently; cancel the stream's context to end a waiting Recv.
type RecordStream struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	req    *loghousev1.ConsumeRequest // the caller's, cloned

	next    uint64 // the offset of the next record to deliver
	hasNext bool   // next is known: the start was an offset, or a record was delivered

	stream   loghousev1.Log_ConsumeStreamClient
	conn     *conn
	stop     context.CancelFunc // ends stream
	excluded map[string]bool
	failures int // stream failures since the last message
	err      error
}

// ConsumeStream returns a RecordStream from req's start (an offset or a
// time); req's max_records bounds each message and its min_committed makes
// the first server wait until it has committed that offset. The stream
// connects on the first Recv and lasts until ctx ends, Close, or an error
// that is not worth retrying.
func (c *Client) ConsumeStream(ctx context.Context, req *loghousev1.ConsumeRequest) *RecordStream {
	ctx, cancel := context.WithCancel(ctx)
	s := &RecordStream{
		c:        c,
		ctx:      ctx,
		cancel:   cancel,
		req:      proto.Clone(req).(*loghousev1.ConsumeRequest),
		excluded: make(map[string]bool),
	}
	if _, byTime := s.req.GetStart().(*loghousev1.ConsumeRequest_FromTimeUnixNano); !byTime {
		s.next, s.hasNext = s.req.GetOffset(), true
	}
	return s
}

// Recv returns the next records, at least one, in a message whose
// NextOffset is the offset after the last of them. After an error every
// later Recv returns it again.
func (s *RecordStream) Recv() (*loghousev1.ConsumeResponse, error) {
	for s.err == nil {
		var (
			addr string
			err  error
		)
		if s.stream == nil {
			addr, err = s.open()
		}
		if err == nil {
			addr = s.conn.addr
			var resp *loghousev1.ConsumeResponse
			if resp, err = s.stream.Recv(); err == nil {
				recs, aerr := s.accept(resp, addr)
				if aerr != nil {
					s.fail(aerr)
					break
				}
				s.failures = 0
				clear(s.excluded)
				if len(recs) == 0 {
					continue
				}
				resp.Records, resp.NextOffset = recs, s.next
				return resp, nil
			}
		}
		s.retryOrFail(addr, err)
	}
	return nil, s.err
}

// NextOffset returns the offset of the next record the stream will
// deliver; ok is false while a stream that starts at a time has delivered
// nothing.
func (s *RecordStream) NextOffset() (offset uint64, ok bool) { return s.next, s.hasNext }

// Close ends the stream. It is idempotent; Recv returns ErrClosed after it
// (or the error that ended the stream before).
func (s *RecordStream) Close() error {
	s.fail(ErrClosed)
	return nil
}

// open starts a server stream at the next offset (or at the request's
// start time while next is unknown) on a reader the Client picks.
func (s *RecordStream) open() (string, error) {
	addr, err := s.c.pick(s.ctx, route{kind: toReader}, s.excluded)
	if err != nil {
		return "", err
	}
	cn, err := s.c.acquire(addr)
	if err != nil {
		return addr, err
	}
	req := proto.Clone(s.req).(*loghousev1.ConsumeRequest)
	if s.hasNext {
		req.Start = &loghousev1.ConsumeRequest_Offset{Offset: s.next}
	}
	ctx, stop := context.WithCancel(s.ctx)
	stream, err := cn.log.ConsumeStream(ctx, req)
	if err != nil {
		stop()
		s.c.release(cn)
		return addr, err
	}
	s.stream, s.conn, s.stop = stream, cn, stop
	return addr, nil
}

// closeStream ends the current server stream, if any.
func (s *RecordStream) closeStream() {
	if s.stream == nil {
		return
	}
	s.stop()
	s.c.release(s.conn)
	s.stream, s.conn, s.stop = nil, nil, nil
}

func (s *RecordStream) fail(err error) {
	s.closeStream()
	s.cancel()
	if s.err == nil {
		s.err = err
	}
}

// retryOrFail handles the failure err of the stream on addr ("" if no
// server could be picked): it waits a back-off before the next server, or
// ends the stream.
func (s *RecordStream) retryOrFail(addr string, err error) {
	var trailer map[string][]string
	if s.stream != nil {
		trailer = s.stream.Trailer()
	}
	s.closeStream()
	switch {
	case errors.Is(err, ErrClosed), s.ctx.Err() != nil:
		s.fail(err)
		return
	case errors.Is(err, io.EOF):
		// The server ended a stream that has no end: go on elsewhere.
	case addr == "":
		// No server to ask (no leader for ReadFromLeader); try again.
	default:
		f := classify(err, false, true, trailer)
		if f.verdict != retry {
			s.fail(err)
			return
		}
		if f.leader != "" && f.leader != addr {
			s.c.setLeader(f.leader)
		} else {
			s.c.forgetLeader(addr)
		}
	}
	if addr != "" {
		s.excluded[addr] = true
	}
	s.failures++
	s.c.logger.Debug("consumer stream failed; resuming", "addr", addr, "next", s.next, "known", s.hasNext, "failures", s.failures, "error", err)
	if s.failures >= s.c.cfg.MaxAttempts {
		s.fail(err)
		return
	}
	if werr := sleep(s.ctx, s.c.backoff(s.failures)); werr != nil {
		s.fail(err)
	}
}

// accept checks that a message from addr continues the stream: it drops
// records already delivered and refuses a gap. It returns the records to
// deliver and advances next past them.
func (s *RecordStream) accept(resp *loghousev1.ConsumeResponse, addr string) ([]*loghousev1.Record, error) {
	recs := resp.Records
	if s.hasNext {
		i := 0
		for i < len(recs) && recs[i].Offset < s.next {
			i++
		}
		if i > 0 {
			s.c.logger.Debug("dropped records delivered before", "addr", addr, "count", i, "next", s.next)
		}
		recs = recs[i:]
	}
	for i, r := range recs {
		want := s.next
		switch {
		case i > 0:
			want = recs[i-1].Offset + 1
		case !s.hasNext:
			continue // the first record of a stream from a time sets the offset
		}
		if r.Offset != want {
			return nil, fmt.Errorf("%w: %s sent offset %d, want %d", ErrOffsetGap, addr, r.Offset, want)
		}
	}
	if len(recs) > 0 {
		s.next, s.hasNext = recs[len(recs)-1].Offset+1, true
	}
	return recs, nil
}

// Records iterates over the records of a ConsumeStream from req's start,
// one at a time. It yields a non-nil error once, last, when the stream
// ends; stopping the loop closes the stream.
func (c *Client) Records(ctx context.Context, req *loghousev1.ConsumeRequest) iter.Seq2[*loghousev1.Record, error] {
	return func(yield func(*loghousev1.Record, error) bool) {
		s := c.ConsumeStream(ctx, req)
		defer s.fail(ErrClosed)
		for {
			resp, err := s.Recv()
			if err != nil {
				yield(nil, err)
				return
			}
			for _, r := range resp.Records {
				if !yield(r, nil) {
					return
				}
			}
		}
	}
}
