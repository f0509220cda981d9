package telemetry

import (
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Sink is the go-metrics sink every metric of the process goes to, and the
// Prometheus collector that exports them. It produces what go-metrics' own
// Prometheus sink produced (the same names, labels, types and quantiles)
// at a fraction of the cost per sample: see "Metrics" in doc.go.
//
//   - A series is found by a hash of its kind, name parts and labels,
//     computed without allocating; it is created on first use.
//   - Counters and gauges are atomic float64s.
//   - Samples feed a summary: a count and a sum since start, and quantiles
//     0.5, 0.9 and 0.99 over the last 10 s (five 2 s slots), read from
//     log-linear buckets at collect time: a bucket's midpoint, within 1/32
//     of the sample, and never outside the window's smallest and largest
//     sample (so a series of equal samples reports them exactly).
//   - A series not updated for the expiration period (a raft peer that
//     left, say) is dropped at the next collection. Updates hold the read
//     lock from finding their series to updating it, and collections drop
//     series under the write lock, so no update lands in a dropped series.
type Sink struct {
	expiration time.Duration
	now        func() time.Time
	seed       maphash.Seed

	mu     sync.RWMutex
	series map[uint64][]*series

	// testHookAcquired, if set, runs when an update has found its series
	// and holds the read lock (tests only).
	testHookAcquired func()
}

var (
	_ metrics.MetricSink               = (*Sink)(nil)
	_ metrics.PrecisionGaugeMetricSink = (*Sink)(nil)
	_ prometheus.Collector             = (*Sink)(nil)
)

// NewSink returns an empty sink whose series expire after expiration
// without an update (0: never).
func NewSink(expiration time.Duration) *Sink {
	return &Sink{expiration: expiration, now: time.Now, seed: maphash.MakeSeed(), series: map[uint64][]*series{}}
}

type kind uint8

const (
	kindGauge kind = iota
	kindCounter
	kindSummary
)

// series is one exported time series.
type series struct {
	kind   kind
	parts  []string
	labels []metrics.Label

	desc        *prometheus.Desc
	labelValues []string

	updated atomic.Int64  // unix nanoseconds of the last update
	value   atomic.Uint64 // float64 bits: a gauge's value or a counter's total
	sum     *summary      // kindSummary only
}

// SetGauge implements metrics.MetricSink.
func (s *Sink) SetGauge(key []string, val float32) { s.SetGaugeWithLabels(key, val, nil) }

// SetGaugeWithLabels implements metrics.MetricSink.
func (s *Sink) SetGaugeWithLabels(key []string, val float32, labels []metrics.Label) {
	s.SetPrecisionGaugeWithLabels(key, float64(val), labels)
}

// SetPrecisionGauge implements metrics.PrecisionGaugeMetricSink.
func (s *Sink) SetPrecisionGauge(key []string, val float64) {
	s.SetPrecisionGaugeWithLabels(key, val, nil)
}

// SetPrecisionGaugeWithLabels implements metrics.PrecisionGaugeMetricSink.
func (s *Sink) SetPrecisionGaugeWithLabels(key []string, val float64, labels []metrics.Label) {
	now := s.now()
	sr := s.acquire(kindGauge, key, labels, now)
	sr.value.Store(math.Float64bits(val))
	sr.updated.Store(now.UnixNano())
	s.mu.RUnlock()
}

// EmitKey implements metrics.MetricSink. Like go-metrics' Prometheus
// sink, it drops the value: a pulled format has no place for a stream of
// values.
func (s *Sink) EmitKey([]string, float32) {}

// IncrCounter implements metrics.MetricSink.
func (s *Sink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

// IncrCounterWithLabels implements metrics.MetricSink.
func (s *Sink) IncrCounterWithLabels(key []string, val float32, labels []metrics.Label) {
	now := s.now()
	sr := s.acquire(kindCounter, key, labels, now)
	addFloat(&sr.value, float64(val))
	sr.updated.Store(now.UnixNano())
	s.mu.RUnlock()
}

// AddSample implements metrics.MetricSink.
func (s *Sink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }

// AddSampleWithLabels implements metrics.MetricSink.
func (s *Sink) AddSampleWithLabels(key []string, val float32, labels []metrics.Label) {
	now := s.now()
	sr := s.acquire(kindSummary, key, labels, now)
	sr.sum.observe(float64(val), now)
	sr.updated.Store(now.UnixNano())
	s.mu.RUnlock()
}

// acquire returns the series of kind, key and labels, made on first use,
// with s.mu read-locked: the caller updates it and then unlocks. Collect
// drops expired series under the write lock, so a series cannot expire
// between being found and being updated, which would lose the update to
// a series no longer exported.
func (s *Sink) acquire(k kind, key []string, labels []metrics.Label, now time.Time) *series {
	h := s.hash(k, key, labels)
	for {
		s.mu.RLock()
		for _, sr := range s.series[h] {
			if sr.is(k, key, labels) {
				if s.testHookAcquired != nil {
					s.testHookAcquired()
				}
				return sr
			}
		}
		s.mu.RUnlock()
		s.create(h, k, key, labels, now)
	}
}

// create adds the series of kind, key and labels unless it exists. It
// counts as updated at now, so that a collection before the caller's
// update does not take it for expired.
func (s *Sink) create(h uint64, k kind, key []string, labels []metrics.Label, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sr := range s.series[h] {
		if sr.is(k, key, labels) {
			return
		}
	}
	sr := newSeries(k, key, labels)
	sr.updated.Store(now.UnixNano())
	s.series[h] = append(s.series[h], sr)
}

func (s *Sink) hash(k kind, key []string, labels []metrics.Label) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	_ = h.WriteByte(byte(k))
	for _, p := range key {
		_, _ = h.WriteString(p)
		_ = h.WriteByte(0)
	}
	for _, l := range labels {
		_ = h.WriteByte(1)
		_, _ = h.WriteString(l.Name)
		_ = h.WriteByte(0)
		_, _ = h.WriteString(l.Value)
	}
	return h.Sum64()
}

func (sr *series) is(k kind, key []string, labels []metrics.Label) bool {
	return sr.kind == k && slices.Equal(sr.parts, key) && slices.Equal(sr.labels, labels)
}

func newSeries(k kind, key []string, labels []metrics.Label) *series {
	name := metricName(key)
	names := make([]string, len(labels))
	values := make([]string, len(labels))
	for i, l := range labels {
		names[i], values[i] = labelName(l.Name), l.Value
	}
	sr := &series{
		kind:   k,
		parts:  slices.Clone(key),
		labels: slices.Clone(labels),
		// The help text is the name, as go-metrics' sink has it.
		desc:        prometheus.NewDesc(name, name, names, nil),
		labelValues: values,
	}
	if k == kindSummary {
		sr.sum = &summary{}
	}
	return sr
}

// metricName joins key's parts with "_" and replaces what a Prometheus
// metric name may not hold with "_" (go-metrics' sink replaced " ", ".",
// "=", "-" and "/", which is all our names and raft's and Serf's use).
func metricName(key []string) string {
	return sanitize(strings.Join(key, "_"), true)
}

// labelName is name made a valid Prometheus label name.
func labelName(name string) string { return sanitize(name, false) }

func sanitize(name string, colon bool) string {
	valid := func(i int, c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			i > 0 && c >= '0' && c <= '9' || colon && c == ':'
	}
	ok := name != ""
	for i := 0; i < len(name) && ok; i++ {
		ok = valid(i, name[i])
	}
	if ok {
		return name
	}
	b := []byte(name)
	for i, c := range b {
		if !valid(i, c) {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// Describe implements prometheus.Collector. It sends nothing, which makes
// the sink an unchecked collector: its series come and go with use.
func (s *Sink) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector. It drops the series that have
// expired, and sends the rest.
func (s *Sink) Collect(ch chan<- prometheus.Metric) {
	now := s.now()
	var live []*series
	s.mu.Lock()
	for h, list := range s.series {
		kept := list[:0]
		for _, sr := range list {
			if s.expiration > 0 && now.Sub(time.Unix(0, sr.updated.Load())) > s.expiration {
				continue
			}
			kept = append(kept, sr)
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(s.series, h)
			continue
		}
		s.series[h] = kept
		live = append(live, kept...)
	}
	s.mu.Unlock()

	for _, sr := range live {
		var m prometheus.Metric
		var err error
		switch sr.kind {
		case kindGauge:
			m, err = prometheus.NewConstMetric(sr.desc, prometheus.GaugeValue, math.Float64frombits(sr.value.Load()), sr.labelValues...)
		case kindCounter:
			m, err = prometheus.NewConstMetric(sr.desc, prometheus.CounterValue, math.Float64frombits(sr.value.Load()), sr.labelValues...)
		case kindSummary:
			count, sum, qs := sr.sum.read(now)
			m, err = prometheus.NewConstSummary(sr.desc, count, sum, qs, sr.labelValues...)
		}
		if err != nil {
			m = prometheus.NewInvalidMetric(sr.desc, err)
		}
		ch <- m
	}
}

// addFloat adds d to the float64 whose bits v holds.
func addFloat(v *atomic.Uint64, d float64) {
	for {
		old := v.Load()
		if v.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Summary window: quantiles cover the last windowSlots slots of slotSpan,
// as go-metrics' sink (a Prometheus summary with a 10 s MaxAge) did.
const (
	slotSpan    = 2 * time.Second
	windowSlots = 5
)

// quantiles are the ones a summary reports.
var quantiles = [...]float64{0.5, 0.9, 0.99}

// summary is a count, a sum and a ring of bucket counts per time slot.
type summary struct {
	count atomic.Uint64
	sum   atomic.Uint64 // float64 bits
	slots [windowSlots]slot
}

// slot counts the samples of one slotSpan: the epoch'th since 1970.
type slot struct {
	epoch    atomic.Int64
	mu       sync.Mutex    // taken only to start a new epoch
	min, max atomic.Uint64 // float64 bits of the smallest and largest sample
	counts   [numBuckets]atomic.Uint32
}

func (m *summary) observe(v float64, now time.Time) {
	m.count.Add(1)
	addFloat(&m.sum, v)
	e := now.UnixNano() / int64(slotSpan)
	sl := &m.slots[e%windowSlots]
	if sl.epoch.Load() != e {
		sl.start(e)
	}
	sl.counts[bucketOf(v)].Add(1)
	extend(&sl.min, v, func(a, b float64) bool { return a < b })
	extend(&sl.max, v, func(a, b float64) bool { return a > b })
}

// extend stores v in x if it goes beyond x in the direction of beyond.
func extend(x *atomic.Uint64, v float64, beyond func(a, b float64) bool) {
	for {
		old := x.Load()
		if !beyond(v, math.Float64frombits(old)) || x.CompareAndSwap(old, math.Float64bits(v)) {
			return
		}
	}
}

// start makes sl count epoch e, forgetting what it counted before. The
// epoch is stored last, so a sample of epoch e is never cleared: its
// observer waits on mu until the slot is e's.
func (sl *slot) start(e int64) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.epoch.Load() == e {
		return
	}
	for i := range sl.counts {
		sl.counts[i].Store(0)
	}
	sl.min.Store(math.Float64bits(math.Inf(1)))
	sl.max.Store(math.Float64bits(math.Inf(-1)))
	sl.epoch.Store(e)
}

// read returns the count and sum since start, and the quantiles of the
// samples of the window that ends now (NaN when it has none, as a
// Prometheus summary reports them).
func (m *summary) read(now time.Time) (uint64, float64, map[float64]float64) {
	e := now.UnixNano() / int64(slotSpan)
	var counts [numBuckets]uint64
	var total uint64
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range m.slots {
		sl := &m.slots[i]
		if se := sl.epoch.Load(); se > e || se <= e-windowSlots {
			continue
		}
		lo = min(lo, math.Float64frombits(sl.min.Load()))
		hi = max(hi, math.Float64frombits(sl.max.Load()))
		for b := range sl.counts {
			n := uint64(sl.counts[b].Load())
			counts[b] += n
			total += n
		}
	}
	qs := make(map[float64]float64, len(quantiles))
	for _, q := range quantiles {
		qs[q] = math.NaN()
		if total == 0 {
			continue
		}
		// The sample of rank ceil(q*total), counting from 1.
		rank := max(uint64(math.Ceil(q*float64(total))), 1)
		var seen uint64
		for b, n := range counts {
			seen += n
			if seen >= rank {
				qs[q] = bucketValue(b)
				if lo <= hi {
					qs[q] = max(min(qs[q], hi), lo)
				}
				break
			}
		}
	}
	return m.count.Load(), math.Float64frombits(m.sum.Load()), qs
}

// Buckets: bucket 0 holds samples ≤ 0 (and NaN); then, for each power of
// two from 2^minExp to 2^maxExp, subBuckets buckets of equal width. Samples
// outside that range go to the first or last bucket.
const (
	subBuckets = 16
	minExp     = -14 // 2^-15 = 0.00003 (ms: 30 ns)
	maxExp     = 34  // 2^34 = 1.7e10
	numBuckets = 1 + (maxExp-minExp+1)*subBuckets
)

// bucketOf is v's bucket.
func bucketOf(v float64) int {
	switch {
	case !(v > 0):
		return 0
	case v > math.MaxFloat64:
		return numBuckets - 1
	}
	frac, exp := math.Frexp(v) // v = frac * 2^exp, frac in [0.5, 1)
	switch {
	case exp < minExp:
		return 1
	case exp > maxExp:
		return numBuckets - 1
	}
	sub := int((frac - 0.5) * 2 * subBuckets)
	return 1 + (exp-minExp)*subBuckets + min(sub, subBuckets-1)
}

// bucketValue is the middle of bucket b.
func bucketValue(b int) float64 {
	if b == 0 {
		return 0
	}
	b--
	exp, sub := minExp+b/subBuckets, b%subBuckets
	lo := math.Ldexp(0.5+float64(sub)/(2*subBuckets), exp)
	return lo + math.Ldexp(1.0/(4*subBuckets), exp)
}
