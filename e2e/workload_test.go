package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// workloadConfig sizes the workload.
type workloadConfig struct {
	Producers       int
	LeaderReaders   int
	FollowerReaders int
	// Pace is the mean pause between one worker's operations (it keeps
	// the history small enough to check).
	Pace         time.Duration
	WriteTimeout time.Duration
	ReadTimeout  time.Duration
	// Seed makes the workers' choices (targets, batch sizes, offsets)
	// repeatable; timing is not.
	Seed int64
}

func defaultWorkload(seed int64) workloadConfig {
	return workloadConfig{
		Producers: 6, LeaderReaders: 2, FollowerReaders: 3,
		Pace: 15 * time.Millisecond, WriteTimeout: 2 * time.Second, ReadTimeout: time.Second,
		Seed: seed,
	}
}

// Workload runs producers and readers against a cluster and records every
// operation in a History.
//
// Producers write records with values unique in the run, one to three per
// request, mostly to the node they believe leads and otherwise to any
// node (a follower forwards the write or refuses it naming the leader).
// Leader readers read near the log's tail from the node they believe
// leads or from a random node, checking with Status before and after that
// it led throughout in one term. Follower readers read from any node, half the time with
// min_committed set to an acknowledged offset (read-your-writes).
type Workload struct {
	c   *Cluster
	h   *History
	cfg workloadConfig

	leader  atomic.Pointer[Node] // the node believed to lead
	tail    atomic.Uint64        // one past the highest acknowledged offset
	lastAck atomic.Uint64        // the last record of the latest acknowledgement
	acks    atomic.Int64
	// sentinelID is the client ID of the final write (see Sentinel): one
	// past the workers'.
	sentinelID int

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// StartWorkload starts the workers; Stop ends them.
func StartWorkload(c *Cluster, h *History, cfg workloadConfig) *Workload {
	w := &Workload{c: c, h: h, cfg: cfg, stop: make(chan struct{})}
	id := 0
	spawn := func(f func(id int, rng *rand.Rand)) {
		rng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(id)))
		w.wg.Add(1)
		go func(id int) {
			defer w.wg.Done()
			f(id, rng)
		}(id)
		id++
	}
	for range cfg.Producers {
		spawn(w.producer)
	}
	for range cfg.LeaderReaders {
		spawn(w.leaderReader)
	}
	for range cfg.FollowerReaders {
		spawn(w.followerReader)
	}
	spawn(func(_ int, rng *rand.Rand) { w.watchLeader(rng) })
	w.sentinelID = id
	return w
}

// Stop ends the workers and waits for them; each finishes the operation
// it is in.
func (w *Workload) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// Acks is the number of acknowledged appends so far.
func (w *Workload) Acks() int64 { return w.acks.Load() }

// pause waits about d, or until Stop. It reports whether to go on.
func (w *Workload) pause(rng *rand.Rand, d time.Duration) bool {
	t := time.NewTimer(d/2 + time.Duration(rng.Int64N(int64(d)+1))) // d ± d/2
	defer t.Stop()
	select {
	case <-w.stop:
		return false
	case <-t.C:
		return true
	}
}

func (w *Workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *Workload) randomNode(rng *rand.Rand) *Node {
	nodes := w.c.Nodes()
	return nodes[rng.IntN(len(nodes))]
}

func (w *Workload) nodeByAddr(addr string) *Node {
	for _, n := range w.c.Nodes() {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// watchLeader keeps the leader hint fresh by asking a random node who
// leads, every 200ms.
func (w *Workload) watchLeader(rng *rand.Rand) {
	for w.pause(rng, 200*time.Millisecond) {
		st, err := w.randomNode(rng).Status(context.Background())
		if err != nil {
			continue
		}
		if n := w.nodeByAddr(st.GetLeaderAddr()); n != nil {
			w.leader.Store(n)
		}
	}
}

func (w *Workload) producer(id int, rng *rand.Rand) {
	for seq := 0; !w.stopped(); seq++ {
		n := w.leader.Load()
		if n == nil || rng.IntN(5) == 0 {
			n = w.randomNode(rng)
		}
		k := 1
		if rng.IntN(4) == 0 {
			k = 2 + rng.IntN(2)
		}
		values := make([]string, k)
		for i := range values {
			values[i] = fmt.Sprintf("c%d-%d-%d", id, seq, i)
		}
		op := w.produce(id, n, values)
		if !w.pause(rng, w.cfg.Pace) {
			return
		}
		if op.Outcome != outOK && !w.pause(rng, 5*w.cfg.Pace) {
			return // back off a little after a failure
		}
	}
}

// produce sends one Produce and records it.
func (w *Workload) produce(id int, n *Node, values []string) Op {
	req := &loghousev1.ProduceRequest{Records: make([]*loghousev1.Record, len(values))}
	for i, v := range values {
		req.Records[i] = &loghousev1.Record{Value: []byte(v)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.WriteTimeout)
	defer cancel()
	op := Op{Kind: opAppend, Client: id, Node: n.Name, Values: values, Call: w.h.Now()}
	resp, err := n.Client.Produce(ctx, req)
	op.Return = w.h.Now()
	if err != nil {
		var leader string
		op.Outcome, leader = classifyWrite(err)
		op.Err = errString(err)
		if ln := w.nodeByAddr(leader); ln != nil {
			w.leader.Store(ln)
		}
	} else {
		op.Outcome, op.Offset = outOK, resp.GetBaseOffset()
		if int(resp.GetCount()) != len(values) {
			op.Err = fmt.Sprintf("acknowledged %d records of %d", resp.GetCount(), len(values))
		}
		w.noteAck(op.Offset, uint64(len(values)))
	}
	w.h.Add(op)
	return op
}

func (w *Workload) noteAck(base, count uint64) {
	w.acks.Add(1)
	end := base + count
	for {
		t := w.tail.Load()
		if end <= t || w.tail.CompareAndSwap(t, end) {
			break
		}
	}
	w.lastAck.Store(end - 1)
}

// readFrom picks an offset near the acknowledged tail: mostly just below
// it, sometimes at or past it.
func (w *Workload) readFrom(rng *rand.Rand) uint64 {
	t := w.tail.Load()
	switch back := uint64(rng.IntN(8)); {
	case back == 0:
		return t + 1
	case back > t:
		return 0
	default:
		return t - back + 1
	}
}

func (w *Workload) leaderReader(id int, rng *rand.Rand) {
	for w.pause(rng, w.cfg.Pace) {
		// Half the time a random node: a new leader is read from as soon
		// as it says it leads, before the hint catches up.
		n := w.leader.Load()
		if n == nil || rng.IntN(2) == 0 {
			n = w.randomNode(rng)
		}
		before, err := n.Status(context.Background())
		if err != nil || before.GetRaftState() != "Leader" {
			continue
		}
		op := w.consume(id, n, w.readFrom(rng), 0)
		after, err := n.Status(context.Background())
		op.Leader = err == nil && after.GetRaftState() == "Leader" && after.GetTerm() == before.GetTerm()
		w.h.Add(op)
	}
}

func (w *Workload) followerReader(id int, rng *rand.Rand) {
	for w.pause(rng, w.cfg.Pace) {
		n := w.randomNode(rng)
		from, minCommitted := w.readFrom(rng), uint64(0)
		if a := w.lastAck.Load(); a > 0 && rng.IntN(2) == 0 {
			from, minCommitted = a, a
		}
		w.h.Add(w.consume(id, n, from, minCommitted))
	}
}

// consume sends one Consume; the caller records it.
func (w *Workload) consume(id int, n *Node, from, minCommitted uint64) Op {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ReadTimeout)
	defer cancel()
	op := Op{Kind: opRead, Client: id, Node: n.Name, From: from, MinCommitted: minCommitted, EpochCall: n.Epoch(), Call: w.h.Now()}
	resp, err := n.Client.Consume(ctx, &loghousev1.ConsumeRequest{
		Start: &loghousev1.ConsumeRequest_Offset{Offset: from}, MaxRecords: 4, MinCommitted: minCommitted,
	})
	op.Return, op.EpochReturn = w.h.Now(), n.Epoch()
	switch {
	case err == nil:
		op.Outcome, op.Committed = outOK, resp.GetCommittedOffset()
		for _, r := range resp.GetRecords() {
			op.Records = append(op.Records, rec{Offset: r.GetOffset(), Value: string(r.GetValue())})
		}
	case status.Code(err) == codes.OutOfRange:
		op.Outcome, op.PastEnd = outOK, true
	default:
		op.Outcome, op.Err = outFail, errString(err)
	}
	return op
}

// Sentinel writes one last record, through the leader, once the faults
// are healed and the workload stopped: its acknowledgement proves the
// cluster takes writes again, and its commit in the current leader's term
// commits everything before it. It is recorded like any append.
func (w *Workload) Sentinel(ctx context.Context) (Op, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last Op
	for try := 0; try < 1000; try++ {
		leader, err := w.c.WaitLeader(ctx)
		if err != nil {
			return last, err
		}
		last = w.produce(w.sentinelID, leader, []string{fmt.Sprintf("sentinel-%d", try)})
		if last.Outcome == outOK {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("e2e: no write was acknowledged after healing: %w", errors.Join(ctx.Err(), errors.New(last.String())))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last, fmt.Errorf("e2e: no write was acknowledged after healing; the last: %s", last.String())
}
