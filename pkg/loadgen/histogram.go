package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// The bucket layout (see the package doc). Values below subCount have a
// bucket each; every power of two above is split into half sub-buckets.
const (
	subBits  = 8
	subCount = 1 << subBits // 256
	half     = subCount / 2 // 128
	// numBuckets covers values up to math.MaxInt64: the largest exponent
	// is 63-subBits+1.
	numBuckets = (64-subBits)*half + subCount
)

// Histogram counts non-negative int64 values (nanoseconds, here) in
// log-linear buckets. The zero value is empty and ready; it is not safe
// for concurrent use (give each goroutine its own and Merge them).
type Histogram struct {
	counts   [numBuckets]uint64
	total    uint64
	sum      float64
	min, max int64
}

// bucketOf returns the bucket index of v ≥ 0.
func bucketOf(v int64) int {
	u := uint64(v)
	if u < subCount {
		return int(u)
	}
	e := bits.Len64(u) - subBits // ≥ 1; u>>e is in [half, subCount)
	return e*half + int(u>>e)
}

// bucketRange returns the lowest and highest value bucket i holds.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	e := i/half - 1
	m := int64(i - e*half) // in [half, subCount)
	lo = m << e
	return lo, lo + (int64(1) << e) - 1
}

// Record adds v; a negative v counts as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// RecordDuration adds d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds every value o holds.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are the exact smallest and largest values (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max is the exact largest value recorded (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact arithmetic mean (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value at quantile q in [0, 1]: the highest value
// of the bucket holding the ⌈q·n⌉-th smallest value (at least the first),
// clamped to the exact minimum and maximum. So Quantile(0) is Min,
// Quantile(1) is Max, and any other answer is at most 1/128 above the true
// value. An empty histogram answers 0.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	switch {
	case q <= 0 || math.IsNaN(q):
		return h.min
	case q >= 1:
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}

// Summary is a histogram's percentiles in milliseconds, for reports.
type Summary struct {
	Count  uint64  `json:"count"`
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p99_9_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Summarize returns h's count, min, mean, p50, p90, p99, p99.9 and max,
// with nanosecond values converted to milliseconds.
func (h *Histogram) Summarize() Summary {
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return Summary{
		Count:  h.total,
		MinMs:  ms(h.min),
		MeanMs: h.Mean() / 1e6,
		P50Ms:  ms(h.Quantile(0.50)),
		P90Ms:  ms(h.Quantile(0.90)),
		P99Ms:  ms(h.Quantile(0.99)),
		P999Ms: ms(h.Quantile(0.999)),
		MaxMs:  ms(h.max),
	}
}
