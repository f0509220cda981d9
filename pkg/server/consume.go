package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/commitlog"
	"github.com/loghouse/loghouse/pkg/record"
)

// Consume returns committed records from the requested start: at most
// ConsumeMaxRecords (or the request's max_records) and ConsumeMaxBytes of
// record bytes, and at least one record, except at the end of the log
// (offset == committed), which returns no records and the bounds. Past the
// end, or before the first retained record, is OutOfRange.
func (s *Server) Consume(ctx context.Context, req *loghousev1.ConsumeRequest) (*loghousev1.ConsumeResponse, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	if err := s.waitCommitted(ctx, req.GetMinCommitted()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	off, err := s.startOffset(req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	first, committed := s.bounds()
	switch {
	case off < first:
		return nil, s.outOfRange("server: offset %d is before the first retained record", off)
	case off >= committed && isTimeStart(req):
		return nil, s.outOfRange("server: no committed record at or after time %d", req.GetFromTimeUnixNano())
	case off == committed:
		// At the end, as a poller catching up will be: no records, and
		// the bounds, so the caller can tell "nothing yet" from an error.
		return &loghousev1.ConsumeResponse{NextOffset: off, FirstOffset: first, CommittedOffset: committed}, nil
	case off > committed:
		return nil, s.outOfRange("server: offset %d is past the end (not committed on this node)", off)
	}
	resp, err := s.read(off, committed, s.maxRecords(req))
	if err != nil {
		return nil, s.readError(ctx, off, err)
	}
	return resp, nil
}

// ConsumeStream sends committed records from the requested start on,
// several per message. Once it has caught up with the commit watermark it
// sleeps until the watermark moves (no polling). A start beyond the
// watermark is allowed: the stream waits for it. If retention deletes the
// records the stream is about to read, it ends with OutOfRange.
func (s *Server) ConsumeStream(req *loghousev1.ConsumeRequest, stream loghousev1.Log_ConsumeStreamServer) error {
	ctx, done := s.callContext(stream.Context())
	defer done()
	if err := s.readBarrier(ctx); err != nil {
		return err
	}
	if err := s.waitCommitted(ctx, req.GetMinCommitted()); err != nil {
		return s.toStatus(ctx, err)
	}
	off, err := s.startOffset(req)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	limit := s.maxRecords(req)
	var cache entryCache
	for {
		committed, changed := s.node.FSM.Committed()
		if first := s.node.Log.FirstOffset(); off < first {
			return s.outOfRange("server: offset %d is before the first retained record", off)
		}
		if off < committed {
			s.streamReads.Add(1)
			msg, err := s.readWire(off, committed, limit, &cache)
			if err != nil {
				return s.readError(ctx, off, err)
			}
			if err := stream.SendMsg(msg); err != nil {
				return err
			}
			off = msg.next
			continue
		}
		s.streamWaits.Add(1)
		select {
		case <-changed:
		case <-ctx.Done():
			return s.toStatus(ctx, context.Cause(ctx))
		}
	}
}

// readError maps an error of read at off. Retention deleting the records
// while they were read is reported like a start below the first offset.
func (s *Server) readError(ctx context.Context, off uint64, err error) error {
	if errors.Is(err, commitlog.ErrOutOfRange) && off < s.node.Log.FirstOffset() {
		return s.outOfRange("server: offset %d is before the first retained record", off)
	}
	return s.toStatus(ctx, err)
}

// readBarrier makes a read on the leader linearizable: it sees every
// write acknowledged before it began. A new leader's commit watermark can
// lag what the previous leader acknowledged (raft applies earlier terms'
// entries only once an entry of the new term commits), and a deposed
// leader that does not know it yet has a stale one; both served stale
// reads before (found by the e2e checker). So, as raft's read index
// (Ongaro's thesis, 6.4): once per term the leader commits and applies a
// barrier entry of its own term; then, for each read, it takes its commit
// index, confirms with a quorum that it still leads (VerifyLeader, one
// heartbeat round), and waits until that index is applied. Followers
// serve what they have committed, without waiting (monotonic, possibly
// behind: min_committed reads one's own writes there).
func (s *Server) readBarrier(ctx context.Context) error {
	r := s.node.Raft
	if r.State() != raft.Leader {
		return nil
	}
	ctx, done := s.callContext(ctx)
	defer done()
	if err := s.leaderReady(); err != nil {
		return s.readNotLeader(ctx, err)
	}
	index := r.CommitIndex()
	if err := r.VerifyLeader().Error(); err != nil {
		return s.readNotLeader(ctx, err)
	}
	// The records up to the entry at index must be visible. (Raft's own
	// applied index is no guide: it counts entries handed to the FSM, not
	// applied by it.) Every raft entry is in the log, with the offset
	// after its records; an entry retention deleted is older than any
	// record a read can see.
	e, err := s.node.Log.Read(index)
	if errors.Is(err, commitlog.ErrOutOfRange) && index < s.node.Log.FirstIndex() {
		return nil
	}
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if next := e.Offset + uint64(e.Count); next > 0 {
		if c, err := s.node.FSM.WaitCommitted(ctx, next-1); err != nil {
			return s.toStatus(ctx, fmt.Errorf("server: wait for offset %d to be committed for a leader read (committed up to %d): %w", next-1, c, context.Cause(ctx)))
		}
	}
	return nil
}

// leaderReady returns once this node, as leader, has applied a barrier
// entry of its current term (once per term; concurrent readers wait for
// the one barrier).
func (s *Server) leaderReady() error {
	term := s.node.Raft.CurrentTerm()
	if s.readyTerm.Load() >= term {
		return nil
	}
	s.barrierMu.Lock()
	defer s.barrierMu.Unlock()
	if s.readyTerm.Load() >= term {
		return nil
	}
	if err := s.node.Raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
		return err
	}
	s.readyTerm.Store(term)
	return nil
}

// readNotLeader is the error of a read on a node that turned out not to
// lead (any more): Unavailable with the leader, safe to retry there.
func (s *Server) readNotLeader(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return s.toStatus(ctx, ctx.Err())
	}
	return s.notLeader(ctx, fmt.Sprintf("this node could not confirm its leadership for a read (%v)", err))
}

// waitCommitted waits until the record at offset minCommitted is
// committed on this node; 0 means do not wait. Close ends the wait.
func (s *Server) waitCommitted(ctx context.Context, minCommitted uint64) error {
	if minCommitted == 0 {
		return nil
	}
	ctx, done := s.callContext(ctx)
	defer done()
	if c, err := s.node.FSM.WaitCommitted(ctx, minCommitted); err != nil {
		return fmt.Errorf("server: wait for offset %d to be committed (committed up to %d): %w", minCommitted, c, context.Cause(ctx))
	}
	return nil
}

func isTimeStart(req *loghousev1.ConsumeRequest) bool {
	_, ok := req.GetStart().(*loghousev1.ConsumeRequest_FromTimeUnixNano)
	return ok
}

// startOffset is the offset the request starts at: its offset (0 if it
// sets none), or the first record at or after its time. If no entry is
// at or after the time, it is the commit watermark read before the search,
// so that a stream gets every record committed after it.
func (s *Server) startOffset(req *loghousev1.ConsumeRequest) (uint64, error) {
	st, ok := req.GetStart().(*loghousev1.ConsumeRequest_FromTimeUnixNano)
	if !ok {
		return req.GetOffset(), nil
	}
	committed, _ := s.node.FSM.Committed()
	i, err := s.node.Log.SearchTime(st.FromTimeUnixNano)
	if errors.Is(err, commitlog.ErrOutOfRange) {
		return committed, nil
	}
	if err != nil {
		return 0, err
	}
	return s.node.Log.OffsetOf(i)
}

// maxRecords is the record limit of one response to req.
func (s *Server) maxRecords(req *loghousev1.ConsumeRequest) int {
	if n := req.GetMaxRecords(); n > 0 && int64(n) < int64(s.cfg.ConsumeMaxRecords) {
		return int(n)
	}
	return s.cfg.ConsumeMaxRecords
}

// entryCache keeps the last entry a stream read part of, so that the next
// response continues from it instead of reading and copying it again, and
// the iterator the stream reads with, so that each response reuses its
// chunk buffer instead of allocating (and clearing) 256 KiB.
type entryCache struct {
	index uint64
	entry commitlog.Entry // Data is the stream's own copy
	it    *commitlog.Iterator
	// lastWire is the size of the stream's last response encoding, from
	// which the next one's buffer is sized.
	lastWire int
}

// read builds a response of committed records from offset off, as a
// ConsumeResponse (unary Consume).
func (s *Server) read(off, committed uint64, maxRecords int) (*loghousev1.ConsumeResponse, error) {
	b := protoResponse{limit: responseLimit{max: maxRecords, maxBytes: s.cfg.ConsumeMaxBytes}}
	next, err := s.scan(off, committed, nil, true, b.add)
	if err == nil {
		err = checkRead(b.limit.n, off, committed)
	}
	if err != nil {
		return nil, err
	}
	b.resp.NextOffset = next
	b.resp.FirstOffset = s.node.Log.FirstOffset()
	b.resp.CommittedOffset = committed
	return &b.resp, nil
}

// readWire builds the same response as read, but straight into its
// protobuf wire encoding (ConsumeStream): no Record objects, no copy of
// the entries out of the iterator's buffer, no reflection. cache is the
// stream's. It returns the encoding and where the next response starts.
func (s *Server) readWire(off, committed uint64, maxRecords int, cache *entryCache) (*consumeWire, error) {
	p := s.wireBufs.Get(wireSizeHint(maxRecords, s.cfg.ConsumeMaxBytes, cache.lastWire))
	b := wireResponse{limit: responseLimit{max: maxRecords, maxBytes: s.cfg.ConsumeMaxBytes}, buf: (*p)[:0]}
	next, err := s.scan(off, committed, cache, false, b.add)
	if err == nil {
		err = checkRead(b.limit.n, off, committed)
	}
	if err != nil {
		s.wireBufs.Put(p)
		return nil, err
	}
	b.finish(next, s.node.Log.FirstOffset(), committed)
	cache.lastWire = len(b.buf)
	msg := &consumeWire{next: next}
	if cap(b.buf) == cap(*p) { // still the pooled buffer: gRPC returns it
		*p = b.buf
		msg.data = mem.NewBuffer(p, &s.wireBufs)
	} else {
		s.wireBufs.Put(p)
		msg.data = mem.SliceBuffer(b.buf)
	}
	return msg, nil
}

// checkRead fails a read that found no record below the watermark, which
// raft never allows.
func checkRead(n int, off, committed uint64) error {
	if n == 0 {
		return status.Errorf(codes.Internal, "server: no record readable at offset %d below the commit watermark %d", off, committed)
	}
	return nil
}

// scan passes the committed records from offset off on to add, in order,
// until add says the response is full (it always takes the first). The
// records' bytes alias memory that is reused after add returns, unless
// clone is set: then each entry's data is a copy of its own, which add may
// keep. It returns the offset after the last record add took. cache, if
// not nil, is a stream's: the entry a response stops inside is kept there
// (its own copy) for the next response to continue from, and so is the
// iterator.
func (s *Server) scan(off, committed uint64, cache *entryCache, clone bool, add func(off uint64, time int64, rec *record.Record) bool) (uint64, error) {
	l := s.node.Log
	idx, err := l.IndexOfOffset(off)
	if err != nil {
		return 0, err
	}
	next := off
	var rec record.Record
	// take passes e's records from next on; it reports whether the
	// response filled up inside e. owned says data is a copy add and the
	// cache may keep.
	take := func(e commitlog.Entry, data []byte, owned bool) (bool, error) {
		end := e.Offset + uint64(e.Count)
		if e.Offset > next {
			return false, fmt.Errorf("server: entry %d holds offsets from %d, want %d", e.Index, e.Offset, next)
		}
		dec, err := record.NewDecoder(data)
		if err != nil {
			return false, fmt.Errorf("server: entry %d: %w", e.Index, err)
		}
		for o := e.Offset; o < end && o < committed; o++ {
			ok, err := dec.Next(&rec)
			if err == nil && !ok {
				err = fmt.Errorf("%w: %d records, the entry says %d", record.ErrMalformed, o-e.Offset, e.Count)
			}
			if err != nil {
				return false, fmt.Errorf("server: entry %d: %w", e.Index, err)
			}
			if o < next {
				continue
			}
			if !add(o, e.Time, &rec) {
				if cache != nil {
					if !owned {
						data = bytes.Clone(data)
					}
					e.Data = data
					cache.index, cache.entry = e.Index, e
				}
				return true, nil
			}
			next = o + 1
		}
		return false, nil
	}
	from := idx
	if cache != nil && cache.entry.Data != nil && cache.index == idx {
		full, err := take(cache.entry, cache.entry.Data, true)
		if err != nil || full {
			return next, err
		}
		from = idx + 1
	}
	var it *commitlog.Iterator
	switch {
	case cache == nil:
		it = l.NewIterator(from)
	case cache.it == nil:
		cache.it = l.NewIterator(from)
		it = cache.it
	default:
		it = cache.it
		it.Seek(from) // what it read ahead may be past the watermark: read again
	}
	for next < committed && it.Next() {
		e := it.Entry()
		if e.Count == 0 || e.Offset+uint64(e.Count) <= next {
			continue
		}
		data := e.Data
		if clone {
			data = bytes.Clone(data)
		}
		full, err := take(e, data, clone)
		if err != nil {
			return next, err
		}
		if full {
			break
		}
	}
	return next, it.Err()
}

// responseLimit is what a consume response may hold: at most max records
// and maxBytes of record bytes, and always at least one record. Both ways
// of building a response use it, so that they hold the same records.
type responseLimit struct {
	n, size       int
	max, maxBytes int
}

// take counts rec into the response if it fits, and says whether it did.
func (l *responseLimit) take(rec *record.Record) bool {
	n := rec.EncodedSize()
	if l.n > 0 && (l.n >= l.max || l.size+n > l.maxBytes) {
		return false
	}
	l.n++
	l.size += n
	return true
}

// protoResponse collects records into a ConsumeResponse. The records alias
// the entries' data, which scan copies for it.
type protoResponse struct {
	resp  loghousev1.ConsumeResponse
	slab  []loghousev1.Record
	limit responseLimit
}

func (b *protoResponse) add(off uint64, time int64, rec *record.Record) bool {
	if !b.limit.take(rec) {
		return false
	}
	if len(b.slab) == cap(b.slab) {
		b.slab = make([]loghousev1.Record, 0, min(b.limit.max-len(b.resp.Records), 256))
	}
	b.slab = b.slab[:len(b.slab)+1]
	pr := &b.slab[len(b.slab)-1]
	pr.Offset, pr.TimestampUnixNano, pr.Key, pr.Value = off, time, rec.Key, rec.Value
	if len(rec.Headers) > 0 {
		pr.Headers = make([]*loghousev1.Header, len(rec.Headers))
		hs := make([]loghousev1.Header, len(rec.Headers))
		for j, h := range rec.Headers {
			hs[j].Key, hs[j].Value = h.Name, h.Value
			pr.Headers[j] = &hs[j]
		}
	}
	b.resp.Records = append(b.resp.Records, pr)
	return true
}
