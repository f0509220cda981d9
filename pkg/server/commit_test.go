package server

import (
	"context"
	"fmt"
	"sync"
	"testing"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/record"
)

// TestCommitterMayForm: beyond MaxInflightApplies batches in flight, the
// committer forms another only when the queue holds a whole batch, and
// never more than twice that many.
func TestCommitterMayForm(t *testing.T) {
	c := &committer{depth: 2, maxBytes: 1000, wake: make(chan struct{}, 1), slots: make(chan struct{}, 4)}
	queue := func(bytes int) {
		m := &produceMsg{buf: make([]byte, record.BatchHeaderSize+bytes), count: 1}
		if err := c.submit(&request{ctx: context.Background(), msg: m, done: make(chan result, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	hold := func(n int) {
		for len(c.slots) < n {
			c.slots <- struct{}{}
		}
		for len(c.slots) > n {
			<-c.slots
		}
	}
	queue(400)
	for _, n := range []int{1, 2} {
		hold(n)
		if !c.mayForm() {
			t.Fatalf("%d in flight (this one included), depth 2: may not form", n)
		}
	}
	hold(3)
	if c.mayForm() {
		t.Fatal("3 in flight with 400 of 1000 bytes queued: may form")
	}
	queue(599)
	if c.mayForm() {
		t.Fatal("3 in flight with 999 of 1000 bytes queued: may form")
	}
	queue(1)
	if !c.mayForm() {
		t.Fatal("3 in flight with a whole batch queued: may not form")
	}
	hold(4)
	if !c.mayForm() {
		t.Fatal("4 in flight with a whole batch queued: may not form")
	}
	// Forming takes the batch off the queue; what is left is not whole.
	if b := c.next(); b == nil || len(b.reqs) != 3 {
		t.Fatalf("next = %+v, want the 3 queued requests", b)
	}
	hold(3)
	queue(10)
	if c.mayForm() || c.queuedBytes != 10 {
		t.Fatalf("after forming: %d bytes queued, may form %v", c.queuedBytes, c.mayForm())
	}
}

// TestCommitterDepth: small requests from many callers never have more than
// MaxInflightApplies batches in flight (so batches grow), and requests that
// fill whole batches never more than twice that.
func TestCommitterDepth(t *testing.T) {
	// With requests far smaller than a batch, no more than the depth (2)
	// are ever in flight. With requests of more than half a batch (one to a
	// batch) and 32 callers, the queue holds a whole batch's bytes while two
	// are in flight, so more go: up to twice the depth. The slots allow no
	// more than that, so only going beyond the depth shows the rule at work.
	for _, tc := range []struct {
		name                            string
		maxBatchBytes                   int
		records, size                   int
		wantPeakAtLeast, wantPeakAtMost int64
	}{
		{"small requests", 1 << 20, 1, 100, 1, DefaultMaxInflightApplies},
		{"whole batches queued", 16 << 10, 8, 1 << 10, DefaultMaxInflightApplies + 1, 2 * DefaultMaxInflightApplies},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 1, clusterOpts{server: func(cfg *Config) { cfg.MaxBatchBytes, cfg.MaxRecordBytes = tc.maxBatchBytes, 4<<10 }})
			n := c.nodes[0]
			conn := dial(t, n, "root")
			const callers, rounds = 32, 8
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for p := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cl := loghousev1.NewLogClient(conn)
					for r := range rounds {
						recs := values(fmt.Sprintf("p%d-r%d", p, r), tc.records, tc.size)
						if _, err := cl.Produce(context.Background(), &loghousev1.ProduceRequest{Records: recs}); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			peak := n.srv.committer.peak.Load()
			t.Logf("%d batches, at most %d in flight", n.srv.committer.batches.Load(), peak)
			if peak < tc.wantPeakAtLeast || peak > tc.wantPeakAtMost {
				t.Fatalf("%d batches in flight at once, want %d..%d", peak, tc.wantPeakAtLeast, tc.wantPeakAtMost)
			}
			if got, want := n.node.Log.NextOffset(), uint64(callers*rounds*tc.records); got != want {
				t.Fatalf("log holds %d records, want %d", got, want)
			}
		})
	}
}
