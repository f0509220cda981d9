package telemetry

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	prom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeClock is a Sink clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestSink(t *testing.T, expiration time.Duration) (*Sink, *fakeClock, *prometheus.Registry) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s := NewSink(expiration)
	s.now = clk.now
	reg := prometheus.NewRegistry()
	if err := reg.Register(s); err != nil {
		t.Fatal(err)
	}
	return s, clk, reg
}

// gather returns the metric named name whose labels are labels (name=value
// pairs), or nil.
func gather(t *testing.T, reg *prometheus.Registry, name string, labels ...string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel())*2 != len(labels) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
					continue metric
				}
			}
			return m
		}
	}
	return nil
}

func quantile(t *testing.T, m *dto.Metric, q float64) float64 {
	t.Helper()
	for _, x := range m.GetSummary().GetQuantile() {
		if x.GetQuantile() == q {
			return x.GetValue()
		}
	}
	t.Fatalf("no quantile %v in %v", q, m)
	return 0
}

func TestSinkCountersAndGauges(t *testing.T) {
	s, _, reg := newTestSink(t, 0)
	calls := []string{"loghouse", "rpc", "calls"}
	ok := []metrics.Label{{Name: "method", Value: "Produce"}, {Name: "code", Value: "OK"}}
	s.IncrCounterWithLabels(calls, 1, ok)
	s.IncrCounterWithLabels(calls, 2, ok)
	s.IncrCounterWithLabels(calls, 5, []metrics.Label{{Name: "method", Value: "Produce"}, {Name: "code", Value: "Unavailable"}})
	s.IncrCounter([]string{"loghouse", "produce", "records"}, 64)
	s.SetGauge([]string{"loghouse", "raft", "is_leader"}, 1)
	s.SetGauge([]string{"loghouse", "raft", "is_leader"}, 0)
	s.SetPrecisionGauge([]string{"loghouse", "log", "bytes"}, 1<<53+1) // not a float32
	s.SetGaugeWithLabels([]string{"loghouse", "members"}, 3, []metrics.Label{{Name: "status", Value: "alive"}})

	checks := []struct {
		name   string
		labels []string
		get    func(*dto.Metric) float64
		want   float64
	}{
		{"loghouse_rpc_calls", []string{"code", "OK", "method", "Produce"}, counter, 3},
		{"loghouse_rpc_calls", []string{"code", "Unavailable", "method", "Produce"}, counter, 5},
		{"loghouse_produce_records", nil, counter, 64},
		{"loghouse_raft_is_leader", nil, gauge, 0},
		{"loghouse_log_bytes", nil, gauge, 1<<53 + 1},
		{"loghouse_members", []string{"status", "alive"}, gauge, 3},
	}
	for _, c := range checks {
		m := gather(t, reg, c.name, c.labels...)
		if m == nil {
			t.Errorf("%s%v: missing", c.name, c.labels)
			continue
		}
		if got := c.get(m); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func counter(m *dto.Metric) float64 { return m.GetCounter().GetValue() }
func gauge(m *dto.Metric) float64   { return m.GetGauge().GetValue() }

// The same name as a gauge and as a counter are two series; Prometheus
// refuses to export both, and says so for the name, not for the scrape.
func TestSinkKindsAreSeparate(t *testing.T) {
	s, _, _ := newTestSink(t, 0)
	s.SetGauge([]string{"x"}, 1)
	s.IncrCounter([]string{"x"}, 1)
	if n := len(s.series); n != 2 {
		t.Fatalf("%d hash buckets, want 2 (kinds hash apart)", n)
	}
}

func TestSinkNames(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  string
	}{
		{[]string{"raft", "replication", "appendEntries", "rpc"}, "raft_replication_appendEntries_rpc"},
		{[]string{"serf", "member", "join"}, "serf_member_join"},
		{[]string{"a-b.c/d=e f"}, "a_b_c_d_e_f"},
		{[]string{"9lives", "é"}, "_lives___"},
		{[]string{"ns:sub"}, "ns:sub"},
	} {
		if got := metricName(c.parts); got != c.want {
			t.Errorf("metricName(%q) = %q, want %q", c.parts, got, c.want)
		}
	}
	if got := labelName("peer:id-1"); got != "peer_id_1" {
		t.Errorf("labelName = %q, want peer_id_1", got)
	}

	s, _, reg := newTestSink(t, 0)
	s.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, 1, []metrics.Label{{Name: "peer_id", Value: "n2"}})
	if gather(t, reg, "raft_replication_appendEntries_rpc", "peer_id", "n2") == nil {
		t.Fatal("summary with a label not exported under its name")
	}
}

// Quantiles are within 1/32 of the exact ones; count and sum are exact.
func TestSinkSummaryQuantiles(t *testing.T) {
	s, _, reg := newTestSink(t, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	key := []string{"loghouse", "commitlog", "fsync_ms"}
	var xs []float64
	var sum float64
	for range 20_000 {
		v := float32(math.Exp(rng.NormFloat64()*1.5 - 1)) // log-normal, 0.001 to 100s
		xs = append(xs, float64(v))
		sum += float64(v)
		s.AddSample(key, v)
	}
	slices.Sort(xs)
	m := gather(t, reg, "loghouse_commitlog_fsync_ms")
	if m == nil {
		t.Fatal("summary missing")
	}
	if got := m.GetSummary().GetSampleCount(); got != uint64(len(xs)) {
		t.Errorf("count %d, want %d", got, len(xs))
	}
	if got := m.GetSummary().GetSampleSum(); math.Abs(got-sum) > 1e-9*sum {
		t.Errorf("sum %v, want %v", got, sum)
	}
	for _, q := range quantiles {
		exact := xs[int(math.Ceil(q*float64(len(xs))))-1]
		got := quantile(t, m, q)
		if math.Abs(got-exact) > exact/32 {
			t.Errorf("q%v = %v, exact %v: off by more than 1/32", q, got, exact)
		}
	}
}

func TestSinkEqualSamplesExact(t *testing.T) {
	s, _, reg := newTestSink(t, 0)
	for range 100 {
		s.AddSample([]string{"raft", "fsm", "applyBatchNum"}, 1)
	}
	m := gather(t, reg, "raft_fsm_applyBatchNum")
	for _, q := range quantiles {
		if got := quantile(t, m, q); got != 1 {
			t.Errorf("q%v = %v, want exactly 1", q, got)
		}
	}
}

func TestSinkOddSamples(t *testing.T) {
	s, _, reg := newTestSink(t, 0)
	key := []string{"odd"}
	for _, v := range []float32{0, -3, 1e-30, 1e30, float32(math.Inf(1))} {
		s.AddSample(key, v)
	}
	m := gather(t, reg, "odd")
	if m.GetSummary().GetSampleCount() != 5 {
		t.Fatalf("count %d, want 5", m.GetSummary().GetSampleCount())
	}
	// The median, 1e-30, is below the smallest bucket: it reads as that.
	if got := quantile(t, m, 0.5); got != bucketValue(1) {
		t.Errorf("median %v, want the smallest bucket's %v", got, bucketValue(1))
	}
	for _, v := range []float64{0, -1, math.NaN()} {
		if b := bucketOf(v); b != 0 {
			t.Errorf("bucketOf(%v) = %d, want 0", v, b)
		}
	}
	if b := bucketOf(math.Inf(1)); b != numBuckets-1 {
		t.Errorf("bucketOf(+Inf) = %d, want the last", b)
	}
}

func TestSinkBuckets(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		v := math.Ldexp(0.5+rng.Float64()/2, minExp+rng.IntN(maxExp-minExp+1))
		b := bucketOf(v)
		if b < 1 || b >= numBuckets {
			t.Fatalf("bucketOf(%v) = %d, out of range", v, b)
		}
		if got := bucketValue(b); math.Abs(got-v) > v/32 {
			t.Fatalf("bucketValue(bucketOf(%v)) = %v: off by more than 1/32", v, got)
		}
		if b > 1 && bucketOf(math.Nextafter(bucketValue(b-1), 0)) > b {
			t.Fatalf("buckets out of order at %d", b)
		}
	}
}

// Quantiles cover the last 10 s; count and sum cover everything.
func TestSinkSummaryWindow(t *testing.T) {
	s, clk, reg := newTestSink(t, 0)
	key := []string{"w"}
	for range 10 {
		s.AddSample(key, 100)
	}
	clk.add(4 * time.Second)
	for range 10 {
		s.AddSample(key, 1)
	}
	m := gather(t, reg, "w")
	if got := quantile(t, m, 0.9); got != 100 {
		t.Errorf("q0.9 with both sets in the window = %v, want 100", got)
	}
	clk.add(7 * time.Second) // the 100s are 11 s old
	m = gather(t, reg, "w")
	if got := quantile(t, m, 0.9); got != 1 {
		t.Errorf("q0.9 after the 100s left the window = %v, want 1", got)
	}
	clk.add(10 * time.Second)
	m = gather(t, reg, "w")
	if got := quantile(t, m, 0.5); !math.IsNaN(got) {
		t.Errorf("q0.5 of an empty window = %v, want NaN", got)
	}
	if m.GetSummary().GetSampleCount() != 20 || m.GetSummary().GetSampleSum() != 1010 {
		t.Errorf("count %d sum %v, want 20 and 1010", m.GetSummary().GetSampleCount(), m.GetSummary().GetSampleSum())
	}
	// The slot of the 100s comes round again (21 s later): it must start
	// empty, or the ten 100s would be the median.
	for range 3 {
		s.AddSample(key, 7)
	}
	s.AddSample(key, 1000)
	m = gather(t, reg, "w")
	if got := quantile(t, m, 0.5); math.Abs(got-7) > 7.0/32 {
		t.Errorf("q0.5 after the slots came round = %v, want 7", got)
	}
}

func TestSinkExpiration(t *testing.T) {
	s, clk, reg := newTestSink(t, 5*time.Minute)
	peer := []metrics.Label{{Name: "peer_id", Value: "n3"}}
	s.AddSampleWithLabels([]string{"raft", "replication", "heartbeat"}, 1, peer)
	s.SetGauge([]string{"kept"}, 1)
	clk.add(4 * time.Minute)
	s.SetGauge([]string{"kept"}, 2)
	clk.add(2 * time.Minute)
	if gather(t, reg, "raft_replication_heartbeat", "peer_id", "n3") != nil {
		t.Error("a series not updated for 6 minutes is still exported")
	}
	if m := gather(t, reg, "kept"); m == nil || gauge(m) != 2 {
		t.Errorf("a series updated 2 minutes ago: %v", m)
	}
	s.AddSampleWithLabels([]string{"raft", "replication", "heartbeat"}, 3, peer)
	m := gather(t, reg, "raft_replication_heartbeat", "peer_id", "n3")
	if m == nil || m.GetSummary().GetSampleCount() != 1 {
		t.Errorf("an expired series updated again should start over: %v", m)
	}
}

// A collection that would expire a series while an update to it is under
// way waits for the update, which then counts (before, the update went to
// a series the collection had just dropped, and was lost).
func TestSinkExpiryDoesNotLoseAnUpdateInFlight(t *testing.T) {
	s, clk, reg := newTestSink(t, 5*time.Minute)
	key := []string{"raft", "apply"}
	s.IncrCounter(key, 1)
	clk.add(6 * time.Minute) // the series is now due to expire

	collected := make(chan *dto.Metric, 1)
	s.testHookAcquired = func() {
		s.testHookAcquired = nil // this update only
		go func() { collected <- gather(t, reg, "raft_apply") }()
		// Give the collection every chance to run now, inside the update.
		select {
		case m := <-collected:
			collected <- m
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.IncrCounter(key, 1)
	if m := <-collected; m == nil || counter(m) != 2 {
		t.Fatalf("the collection racing the update exported %v, want the counter at 2", m)
	}
	if m := gather(t, reg, "raft_apply"); m == nil || counter(m) != 2 {
		t.Fatalf("after the update: %v, want the counter at 2", m)
	}
}

// Samples, counters and gauges, concurrently with collections (run with
// -race): nothing is lost.
func TestSinkConcurrent(t *testing.T) {
	s, _, reg := newTestSink(t, 0)
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			labels := []metrics.Label{{Name: "w", Value: string(rune('a' + w%2))}}
			for i := range each {
				s.AddSampleWithLabels([]string{"lat"}, float32(i%50), labels)
				s.IncrCounter([]string{"n"}, 1)
				s.SetGauge([]string{"g"}, float32(w))
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	<-done
	if m := gather(t, reg, "n"); counter(m) != workers*each {
		t.Errorf("counter %v, want %d", counter(m), workers*each)
	}
	var total uint64
	for _, l := range []string{"a", "b"} {
		total += gather(t, reg, "lat", "w", l).GetSummary().GetSampleCount()
	}
	if total != workers*each {
		t.Errorf("samples %d, want %d", total, workers*each)
	}
}

// A sample to an existing series allocates nothing.
func TestSinkAllocations(t *testing.T) {
	s := NewSink(time.Minute)
	key := []string{"raft", "replication", "appendEntries", "rpc"}
	labels := []metrics.Label{{Name: "peer_id", Value: "n2"}}
	s.AddSampleWithLabels(key, 1, labels)
	s.IncrCounterWithLabels(key, 1, labels)
	s.SetGaugeWithLabels(key, 1, labels)
	if n := testing.AllocsPerRun(1000, func() {
		s.AddSampleWithLabels(key, 0.5, labels)
		s.IncrCounterWithLabels(key, 1, labels)
		s.SetGaugeWithLabels(key, 1, labels)
	}); n != 0 {
		t.Errorf("%v allocations per sample, counter and gauge update, want 0", n)
	}
}

// BenchmarkSinkSample compares a latency sample with a label (what raft
// does for each replication message) in this sink and in go-metrics'
// Prometheus sink, which the agent used before.
func BenchmarkSinkSample(b *testing.B) {
	key := []string{"raft", "replication", "appendEntries", "rpc"}
	labels := []metrics.Label{{Name: "peer_id", Value: "n2"}}
	b.Run("sink=loghouse", func(b *testing.B) {
		s := NewSink(5 * time.Minute)
		b.ReportAllocs()
		for b.Loop() {
			s.AddSampleWithLabels(key, 0.6, labels)
		}
	})
	b.Run("sink=go-metrics", func(b *testing.B) {
		s, err := prom.NewPrometheusSinkFrom(prom.PrometheusOpts{Expiration: 5 * time.Minute, Registerer: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			s.AddSampleWithLabels(key, 0.6, labels)
		}
	})
}
