package main

import (
	"strings"
	"testing"

	"github.com/loghouse/loghouse/pkg/loadgen"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want stat
	}{
		{"odd", []float64{3, 1, 2}, stat{med: 2, lo: 1, hi: 3, n: 3}},
		{"even", []float64{4, 1, 3, 2}, stat{med: 2.5, lo: 1, hi: 4, n: 4}},
		{"one", []float64{7}, stat{med: 7, lo: 7, hi: 7, n: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := summarize(tt.in); !ok || got != tt.want {
				t.Fatalf("summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
	if _, ok := summarize(nil); ok {
		t.Fatal("summarize(nil) should report nothing")
	}
}

func TestProduceWorkload(t *testing.T) {
	w, err := produceWorkload("stream-8", 64, 32, 2)
	if err != nil || !w.Stream || w.Producers != 8 || w.Batch != 32 || w.Inflight != 2 || w.key() != "stream-8/64B" {
		t.Fatalf("%+v %v", w, err)
	}
	w, err = produceWorkload("unary-1", 256, 32, 2)
	if err != nil || w.Stream || w.Batch != 1 || w.Inflight != 1 {
		t.Fatalf("%+v %v", w, err)
	}
	for _, bad := range []string{"unary", "stream-0", "burst-4", "unary-x"} {
		if _, err := produceWorkload(bad, 256, 1, 1); err == nil {
			t.Errorf("produceWorkload(%q) accepted", bad)
		}
	}
}

// TestReport: medians, ranges, per-round ratios and goal verdicts from
// synthetic results; failed runs are left out.
func TestReport(t *testing.T) {
	res := func(rate, p99 float64) loadgen.Result {
		return loadgen.Result{RecordsPerSec: rate, Records: 1, Latency: loadgen.Summary{Count: 1, P50Ms: p99 / 2, P99Ms: p99}}
	}
	failed := loadgen.Result{Errors: 1, FirstError: "boom", RecordsPerSec: 1e9}
	o := options{mode: "short", rounds: 3, producers: []int{64}, systems: []string{"lh3", "js3-always", "lh1-none", "grpc"}, pageCache: "full"}
	r := report{
		opts:    o,
		systems: systemsByName(),
		workloads: []workload{
			{Name: "unary-1", Producers: 1, Batch: 1, Inflight: 1, Size: 256},
			{Name: "stream-64", Stream: true, Producers: 64, Batch: 64, Inflight: 4, Size: 256},
		},
		results: map[string]map[string][]loadgen.Result{
			"lh3":        {"stream-64/256B": {res(400e3, 50), res(300e3, 60), res(500e3, 40)}, "unary-1/256B": {res(1e3, 2), res(1e3, 3), failed}},
			"js3-always": {"stream-64/256B": {res(100e3, 100), res(200e3, 90), res(250e3, 80)}, "unary-1/256B": {res(1e3, 1), res(1e3, 1.5), res(1e3, 1.2)}},
			"lh1-none":   {"stream-64/256B": {res(600e3, 1)}},
			"grpc":       {"stream-64/256B": {res(1000e3, 1)}},
		},
	}
	s, ok := r.stat("lh3", "stream-64/256B", rate)
	if !ok || s.med != 400e3 || s.lo != 300e3 || s.hi != 500e3 {
		t.Fatalf("stat %+v", s)
	}
	if s, ok := r.stat("lh3", "unary-1/256B", p99); !ok || s.n != 2 || s.med != 2.5 {
		t.Fatalf("a failed run counted: %+v", s)
	}
	per, med, ok := r.ratio("lh3", "js3-always", "stream-64/256B", rate)
	if !ok || med != 2 || per.lo != 1.5 || per.hi != 4 {
		t.Fatalf("ratio %v %+v", med, per)
	}
	md := r.markdown()
	for _, want := range []string{
		"**met** — 3 nodes, durable, 256 B, 64 producers",
		"**missed** — 3 nodes, unary, 1 producer",
		"**met** — 1 node, sync none, streaming: within 2×",
		"| stream-64/256B | 400k (300k–500k) |",
		"Machine: ",
		"- Page cache: **full** (`-page-cache full`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// lh3's stream-64 latencies in their tables: p50 first, then p99.
	p50At, p99At := strings.Index(md, "## Latency p50"), strings.Index(md, "## Latency p99")
	row50, row99 := strings.Index(md, "| stream-64/256B | 25.0 (20.0–30.0) |"), strings.Index(md, "| stream-64/256B | 50.0 (40.0–60.0) |")
	if p50At < 0 || !(p50At < row50 && row50 < p99At && p99At < row99) {
		t.Errorf("latency tables out of place (p50 table %d, its row %d, p99 table %d, its row %d):\n%s", p50At, row50, p99At, row99, md)
	}
	r.opts.pageCache = "free"
	if md := r.markdown(); !strings.Contains(md, "- Page cache: **free memory** (`-page-cache free`)") {
		t.Errorf("a -page-cache free report does not say so:\n%s", md)
	}
}
