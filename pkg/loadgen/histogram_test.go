package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestBucketLayout: every bucket's range starts right after the previous
// one's, values map into the bucket whose range holds them, and a bucket
// is at most 1/128 of its lowest value wide.
func TestBucketLayout(t *testing.T) {
	var prevHi int64 = -1
	last := bucketOf(math.MaxInt64)
	for i := 0; i <= last; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, prevHi+1)
		}
		if hi < lo {
			t.Fatalf("bucket %d: [%d, %d]", i, lo, hi)
		}
		if w := hi - lo + 1; lo >= subCount && float64(w)/float64(lo) > 1.0/half {
			t.Fatalf("bucket %d [%d, %d] is %d wide, more than 1/%d of %d", i, lo, hi, w, half, lo)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		prevHi = hi
	}
	if prevHi != math.MaxInt64 {
		t.Fatalf("the last bucket ends at %d", prevHi)
	}
	if last >= numBuckets {
		t.Fatalf("bucket %d beyond %d counters", last, numBuckets)
	}
}

// exactQuantile is the ⌈q·n⌉-th smallest of sorted (the definition
// Quantile approximates).
func exactQuantile(sorted []int64, q float64) int64 {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func TestQuantiles(t *testing.T) {
	uniform := make([]int64, 0, 100_000)
	for v := int64(1); v <= 100_000; v++ {
		uniform = append(uniform, v*1000) // 1µs .. 100ms in ns
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lognormal := make([]int64, 50_000)
	for i := range lognormal {
		lognormal[i] = int64(math.Exp(13 + 1.5*rng.NormFloat64())) // ~0.4ms median, long tail
	}
	bimodal := make([]int64, 0, 10_000)
	for i := range 10_000 {
		if i%100 == 0 {
			bimodal = append(bimodal, 50_000_000) // 1% at 50ms
		} else {
			bimodal = append(bimodal, 200_000) // 99% at 0.2ms
		}
	}
	tests := []struct {
		name   string
		values []int64
	}{
		{"small exact values", []int64{0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233}},
		{"uniform", uniform},
		{"lognormal", lognormal},
		{"bimodal", bimodal},
		{"one value", []int64{123_456_789}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			sorted := slices.Clone(tt.values)
			slices.Sort(sorted)
			if h.Count() != uint64(len(sorted)) || h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] {
				t.Fatalf("count %d min %d max %d; want %d %d %d", h.Count(), h.Min(), h.Max(), len(sorted), sorted[0], sorted[len(sorted)-1])
			}
			var sum float64
			for _, v := range sorted {
				sum += float64(v)
			}
			if m := sum / float64(len(sorted)); math.Abs(h.Mean()-m) > 1e-9*m {
				t.Fatalf("mean %v, want %v", h.Mean(), m)
			}
			prev := int64(-1)
			for _, q := range []float64{0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
				got, want := h.Quantile(q), exactQuantile(sorted, q)
				// Never below the true value, at most one bucket
				// width (1/128) above it; exact below 256.
				limit := want + want/half
				if want < subCount {
					limit = want
				}
				if got < want || got > limit {
					t.Errorf("Quantile(%v) = %d, want %d (up to %d)", q, got, want, limit)
				}
				if got < prev {
					t.Errorf("Quantile(%v) = %d below a lower quantile's %d", q, got, prev)
				}
				prev = got
			}
		})
	}
}

func TestQuantileEdgeCases(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Summarize() != (Summary{}) {
		t.Fatal("an empty histogram should answer zeros")
	}
	h.Record(-5) // counts as 0
	h.Record(1_000_000)
	if h.Min() != 0 || h.Quantile(0.5) != 0 || h.Quantile(0.51) != 1_000_000 || h.Quantile(math.NaN()) != 0 {
		t.Fatalf("min %d p50 %d p51 %d", h.Min(), h.Quantile(0.5), h.Quantile(0.51))
	}
	h.Record(math.MaxInt64)
	if h.Quantile(1) != math.MaxInt64 || h.Quantile(0.99) != math.MaxInt64 {
		t.Fatalf("max %d p99 %d", h.Quantile(1), h.Quantile(0.99))
	}
}

// TestMerge: merging per-worker histograms answers as one histogram of all
// values would.
func TestMerge(t *testing.T) {
	var all Histogram
	parts := make([]Histogram, 4)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 40_000 {
		v := rng.Int64N(int64(i%4+1) * 10_000_000)
		all.Record(v)
		parts[i%4].Record(v)
	}
	var merged Histogram
	merged.Merge(&Histogram{}) // empty: no change
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if merged.Summarize() != all.Summarize() || merged.counts != all.counts {
		t.Fatalf("merged %+v, want %+v", merged.Summarize(), all.Summarize())
	}
}

func TestSummarize(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 1000; v++ {
		h.Record(v * 1_000_000) // 1..1000 ms
	}
	s := h.Summarize()
	check := func(name string, got, want float64) {
		t.Helper()
		if got < want || got > want*(1+1.0/half) {
			t.Errorf("%s = %v ms, want %v ms (+1/%d)", name, got, want, half)
		}
	}
	check("min", s.MinMs, 1)
	check("p50", s.P50Ms, 500)
	check("p90", s.P90Ms, 900)
	check("p99", s.P99Ms, 990)
	check("p99.9", s.P999Ms, 999)
	check("max", s.MaxMs, 1000)
	check("mean", s.MeanMs, 500.5)
	if s.Count != 1000 {
		t.Errorf("count %d", s.Count)
	}
}
