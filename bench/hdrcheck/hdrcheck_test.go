// Package hdrcheck cross-checks pkg/loadgen's log-linear histogram against
// HdrHistogram (github.com/HdrHistogram/hdrhistogram-go), which the product
// module does not depend on.
package hdrcheck

import (
	"math"
	"math/rand/v2"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/loghouse/loghouse/pkg/loadgen"
)

// TestAgainstHdrHistogram records the same latencies (nanoseconds, 1µs to
// 10s) in both and compares percentiles: both report the highest value
// equivalent to the bucket holding the rank, within their precision
// (loadgen 1/128, HdrHistogram with 3 significant digits 1/1000).
func TestAgainstHdrHistogram(t *testing.T) {
	dists := []struct {
		name string
		gen  func(r *rand.Rand) int64
	}{
		{"lognormal", func(r *rand.Rand) int64 { return int64(math.Exp(13 + 1.2*r.NormFloat64())) }},
		{"uniform", func(r *rand.Rand) int64 { return 1000 + r.Int64N(50_000_000) }},
		{"exponential tail", func(r *rand.Rand) int64 { return 200_000 + int64(r.ExpFloat64()*3e6) }},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 11))
			ref := hdrhistogram.New(1, 10_000_000_000, 3)
			var h loadgen.Histogram
			for range 200_000 {
				v := min(max(d.gen(r), 1), 10_000_000_000)
				h.Record(v)
				if err := ref.RecordValue(v); err != nil {
					t.Fatal(err)
				}
			}
			for _, q := range []float64{50, 90, 99, 99.9, 99.99} {
				got, want := float64(h.Quantile(q/100)), float64(ref.ValueAtQuantile(q))
				if rel := math.Abs(got-want) / want; rel > 1.0/128+1.0/1000 {
					t.Errorf("p%v: loadgen %v, HdrHistogram %v (%.2f%% apart)", q, got, want, 100*rel)
				}
			}
			if h.Max() != ref.Max() && float64(ref.Max()-h.Max())/float64(h.Max()) > 1.0/1000 {
				t.Errorf("max: loadgen %d, HdrHistogram %d", h.Max(), ref.Max())
			}
		})
	}
}
