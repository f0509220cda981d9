package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/loghouse/loghouse/pkg/loadgen"
)

// report renders the comparison as Markdown.
type report struct {
	opts      options
	systems   map[string]system
	workloads []workload
	results   map[string]map[string][]loadgen.Result // system → workload key → one per round
	failures  map[string][]string
	started   time.Time
	elapsed   time.Duration
}

// stat is a metric's median and range over the rounds.
type stat struct {
	med, lo, hi float64
	n           int
}

func summarize(xs []float64) (stat, bool) {
	if len(xs) == 0 {
		return stat{}, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med: med, lo: s[0], hi: s[len(s)-1], n: len(s)}, true
}

// metric is what a table shows of a result.
type metric struct {
	value func(loadgen.Result) float64
	// latency: a run without measured operations has none.
	latency bool
}

var (
	rate = metric{value: func(r loadgen.Result) float64 { return r.RecordsPerSec }}
	p50  = metric{value: func(r loadgen.Result) float64 { return r.Latency.P50Ms }, latency: true}
	p99  = metric{value: func(r loadgen.Result) float64 { return r.Latency.P99Ms }, latency: true}
)

func (r report) stat(sys, key string, m metric) (stat, bool) {
	var xs []float64
	for _, res := range r.results[sys][key] {
		if res.Errors == 0 && (res.Latency.Count > 0 || !m.latency) {
			xs = append(xs, m.value(res))
		}
	}
	return summarize(xs)
}

// ratio is the ratio of num's and den's medians, with the range of the
// per-round ratios (rounds pair up: both ran in the same round).
func (r report) ratio(num, den, key string, m metric) (stat, float64, bool) {
	a, b := r.results[num][key], r.results[den][key]
	var per []float64
	for i := range min(len(a), len(b)) {
		if m.value(b[i]) > 0 && a[i].Errors == 0 && b[i].Errors == 0 {
			per = append(per, m.value(a[i])/m.value(b[i]))
		}
	}
	sa, oka := r.stat(num, key, m)
	sb, okb := r.stat(den, key, m)
	if !oka || !okb || sb.med == 0 {
		return stat{}, 0, false
	}
	s, _ := summarize(per)
	return s, sa.med / sb.med, true
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f", ms)
	case ms >= 1:
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.3f", ms)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r report) keys() []workload { return r.workloads }

func (r report) markdown() string {
	var b strings.Builder
	o := r.opts
	fmt.Fprintf(&b, "# Loghouse beside raw baselines and NATS JetStream (%s mode)\n\n", o.mode)
	fmt.Fprintf(&b, "- Date: %s (took %s)\n", r.started.UTC().Format("2006-01-02 15:04 UTC"), r.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "- Machine: %s\n", machine())
	fmt.Fprintf(&b, "- Command (in `bench/`): `go run ./cmd/compare%s`\n", argString(o.args))
	fmt.Fprintf(&b, "- %d rounds; in each, every system started fresh, ran its workloads and stopped, in alternating order. "+
		"Each produce workload: a warm-up (%s unary, %s streaming/batched), then %s measured (%s unary), closed loop. Cells: median over rounds (min–max).\n",
		o.rounds, o.warmup, o.streamWarmup, o.duration, o.unaryDuration)
	if o.mode == "short" {
		fmt.Fprintf(&b, "- Short mode: 256-byte records only, and the consume log is %s records (%d MB), smaller than the full mode's.\n", thousands(float64(o.consumeRecords)), o.consumeRecords*256/1_000_000)
	}
	b.WriteString("\n## Systems\n\n| name | what |\n|---|---|\n")
	for _, name := range o.systems {
		fmt.Fprintf(&b, "| %s | %s |\n", name, r.systems[name].label)
	}
	b.WriteString("\n## Workloads\n\n| workload | what |\n|---|---|\n")
	for _, w := range r.keys() {
		fmt.Fprintf(&b, "| %s | %s |\n", w.key(), w.describe())
	}

	b.WriteString("\n## Throughput, records/s\n\n")
	r.table(&b, rate, func(s stat) string {
		return fmt.Sprintf("%s (%s–%s)", fmtRate(s.med), fmtRate(s.lo), fmtRate(s.hi))
	})
	latency := func(s stat) string {
		return fmt.Sprintf("%s (%s–%s)", fmtMs(s.med), fmtMs(s.lo), fmtMs(s.hi))
	}
	b.WriteString("\n## Latency p50, ms (per request from its send; JetStream streaming: per message; consume: per response)\n\n")
	r.table(&b, p50, latency)
	b.WriteString("\n## Latency p99, ms (the same)\n\n")
	r.table(&b, p99, latency)

	b.WriteString("\n## Ratios of median throughput (range of per-round ratios)\n\n")
	pairs := [][2]string{
		{"lh1", "js1-always"}, {"lh1", "js1"}, {"lh3", "js3-always"}, {"lh3", "js3"},
		{"lh1", "grpc"}, {"lh1-none", "grpc"}, {"lh3", "raft3"}, {"lh1", "fsync"},
	}
	var cols [][2]string
	for _, p := range pairs {
		if slices.Contains(o.systems, p[0]) && slices.Contains(o.systems, p[1]) {
			cols = append(cols, p)
		}
	}
	b.WriteString("| workload |")
	for _, p := range cols {
		fmt.Fprintf(&b, " %s / %s |", p[0], p[1])
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(cols)) + "\n")
	for _, w := range r.keys() {
		fmt.Fprintf(&b, "| %s |", w.key())
		for _, p := range cols {
			if s, med, ok := r.ratio(p[0], p[1], w.key(), rate); ok {
				fmt.Fprintf(&b, " %.2f (%.2f–%.2f) |", med, s.lo, s.hi)
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## Goals\n\n")
	for _, g := range r.goals() {
		fmt.Fprintf(&b, "- **%s** — %s: %s\n", g.verdict, g.name, g.detail)
	}
	if len(r.failures) > 0 {
		b.WriteString("\n## Failures\n\n")
		for _, name := range o.systems {
			for _, f := range r.failures[name] {
				fmt.Fprintf(&b, "- %s, %s\n", name, strings.ReplaceAll(strings.TrimSpace(firstLine(f)), "|", "/"))
			}
		}
	}
	b.WriteString(notes)
	b.WriteString(pageCacheNote(o.pageCache))
	return b.String()
}

// pageCacheNote says what state of the page cache the systems wrote in
// (see pagecache.go).
func pageCacheNote(mode string) string {
	const why = ` On a virtual machine that hands free memory back to the hypervisor (free page reporting, as
  the 2-core VM does within seconds), the first write to such a page faults in the hypervisor:
  there, dd of 2 GiB into the page cache took 3.6–4.9 s into free memory and 0.47–0.62 s with the
  page cache full, and a ` + "`sync = none`" + ` node at 64 producers wrote 0.97M records/s into free memory
  and 1.55M with the page cache full, while the gRPC baseline, which writes nothing, did not move
  (2026-11-27).
`
	if mode == "free" {
		return "- Page cache: **free memory** (`-page-cache free`): the systems wrote into memory that was free,\n" +
			"  as on a machine that has just booted, not into a full page cache as a long-running server does." + why
	}
	return "- Page cache: **full** (`-page-cache full`, the default): before each system runs, compare tops the\n" +
		fmt.Sprintf("  page cache up with a sparse scratch file it reads, until %d MiB are free, and keeps it to the end,\n", pageCacheSlack>>20) +
		"  so that every system writes into memory the kernel reclaims from the page cache, as on a server\n" +
		"  that has been running for a while (`-page-cache free` measures the other state)." + why
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// table writes one row per workload and one column per system.
func (r report) table(b *strings.Builder, m metric, cell func(stat) string) {
	b.WriteString("| workload |")
	for _, name := range r.opts.systems {
		fmt.Fprintf(b, " %s |", name)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(r.opts.systems)) + "\n")
	for _, w := range r.keys() {
		fmt.Fprintf(b, "| %s |", w.key())
		for _, name := range r.opts.systems {
			if s, ok := r.stat(name, w.key(), m); ok {
				fmt.Fprintf(b, " %s |", cell(s))
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
}

type goal struct{ verdict, name, detail string }

// goals checks the targets of issue #6 against the medians.
func (r report) goals() []goal {
	var gs []goal
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "missed"
	}
	missing := func(name string) goal { return goal{"not measured", name, "a system or workload it needs did not run"} }

	name := "3 nodes, durable, 256 B, 64 producers streaming/batched: ≥ 1.5× JetStream R3 sync-always and ≥ 300k records/s"
	lh, ok1 := r.stat("lh3", "stream-64/256B", rate)
	js, ok2 := r.stat("js3-always", "stream-64/256B", rate)
	if ok1 && ok2 {
		gs = append(gs, goal{verdict(lh.med >= 1.5*js.med && lh.med >= 300_000), name,
			fmt.Sprintf("Loghouse %s records/s, JetStream %s: %.2f×", fmtRate(lh.med), fmtRate(js.med), lh.med/js.med)})
	} else {
		gs = append(gs, missing(name))
	}

	name = "3 nodes, unary, 1 producer: p99 ≤ JetStream R3 sync-always"
	lh, ok1 = r.stat("lh3", "unary-1/256B", p99)
	js, ok2 = r.stat("js3-always", "unary-1/256B", p99)
	if ok1 && ok2 {
		gs = append(gs, goal{verdict(lh.med <= js.med), name, fmt.Sprintf("Loghouse p99 %s ms, JetStream %s ms", fmtMs(lh.med), fmtMs(js.med))})
	} else {
		gs = append(gs, missing(name))
	}

	for _, c := range []struct{ lh, js, label string }{{"lh1", "js1", "1 node"}, {"lh3", "js3", "3 nodes"}} {
		name = fmt.Sprintf("consume warm, batched, %s: ≥ 1M records/s over mTLS and ≥ JetStream replay (%s)", c.label, c.js)
		lhS, ok1 := r.stat(c.lh, "consume/256B", rate)
		jsS, ok2 := r.stat(c.js, "consume/256B", rate)
		if !ok1 || !ok2 {
			gs = append(gs, missing(name))
			continue
		}
		gs = append(gs, goal{verdict(lhS.med >= 1e6 && lhS.med >= jsS.med), name,
			fmt.Sprintf("Loghouse %s records/s, JetStream %s", fmtRate(lhS.med), fmtRate(jsS.med))})
	}

	name = "1 node, sync none, streaming: within 2× of the raw gRPC stream baseline"
	var parts []string
	all := true
	for _, p := range r.opts.producers {
		key := fmt.Sprintf("stream-%d/256B", p)
		_, med, ok := r.ratio("lh1-none", "grpc", key, rate)
		if !ok {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d producers %.2f", p, med))
		all = all && med >= 0.5
	}
	if len(parts) == 0 {
		gs = append(gs, missing(name))
	} else {
		gs = append(gs, goal{verdict(all), name, "Loghouse/raw: " + strings.Join(parts, ", ")})
	}
	return gs
}

// machine describes this computer.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	mem := ""
	if total := memInfo("MemTotal"); total > 0 {
		mem = fmt.Sprintf(", %.0f GiB RAM", float64(total)/(1<<30))
	}
	return fmt.Sprintf("%d × %s (nproc %d)%s, %s, %s/%s, %s", runtime.NumCPU(), cpu, runtime.NumCPU(), mem, kernel, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func argString(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(' ')
		if strings.ContainsAny(a, " \t\"'$") {
			fmt.Fprintf(&b, "%q", a)
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

const notes = `
## How it was measured

- Every server is its own process: each Loghouse node a ` + "`loghoused agent`" + ` (static peers, mutual TLS,
  default settings but ` + "`storage.sync`" + `), each JetStream server an embedded nats-server (library
  defaults, file storage) in a child process, the gRPC baseline a child process. Loghouse and the gRPC
  baseline are driven by ` + "`loghoused bench`" + `, JetStream, raft and fsync by the same load engine
  (` + "`pkg/loadgen`" + `) in a child process. All traffic is on 127.0.0.1.
- Producers each have their own connection. Unary: one record per request, the next sent when the
  previous is answered. Streaming/batched: requests of 64 records, 4 in flight per producer
  (Loghouse: ProduceStream; raft: pipelined Apply of a 64-record batch; JetStream: asynchronous
  publishes with the same 256 messages awaiting acks per producer, each message counted, and its
  latency measured, when its ack arrives: JetStream has no request of 64 records).
- Writes go to the leader (Loghouse: found with GetServers; JetStream: the clients connect to the
  stream leader's server). Loghouse acknowledges a write when it is committed on a quorum;
  JetStream when the stream leader has it stored and replicated to a quorum.
- Durability: Loghouse and raft3 ` + "`sync = always`" + ` fdatasync every batch before acknowledging, on
  every node; JetStream ` + "`sync_interval: always`" + ` syncs after every write; JetStream defaults sync
  every 2 minutes and rely on replication (like Loghouse ` + "`sync = none`" + `).
- Transport security: Loghouse and the gRPC baseline use mutual TLS on every connection (it cannot be
  turned off); JetStream runs its default, plaintext connections (not tuned down: TLS would only
  slow it). raft3 uses plain TCP.
- Consume (run by grpc, lh1, lh3, js1 and js3; reading does not depend on the sync setting): 1 consumer reads the log from offset 0 (Loghouse: ConsumeStream from a follower when there
  is one, the server's default response limits, 1000 records; JetStream: an ordered consumer with
  the client's defaults, counted in groups of 1000 messages). The log is produced right after the
  system starts, read once to warm up, then read again, measured.
- Warm-up: the streaming/batched workloads, which move 50–100 times the data of the unary ones, get
  a longer warm-up (` + "`-stream-warmup`" + `, 2 s by default), the same for every system. A server that
  has just started, or has been idle, grows its heap to its steady state first: a fresh 3-node
  Loghouse cluster ran 64 streaming producers at about 200k records/s for 2 s, then at 400k, while
  each node's heap grew from a few MB to about 140 MB; with a 500 ms warm-up the measured second
  fell in that ramp.
- Unary workloads are measured longer (` + "`-unary-duration`" + `, 3 s in short mode): one producer makes one or
  two thousand requests a second, and a p99 over one second would rest on its ten slowest.
- A request counts when it completes within the measured period, whenever it was sent; a 0 means
  that none did (a system whose first acknowledgements took longer than warm-up plus period).
- Latency percentiles come from log-linear histograms (within 0.8%), merged over producers; a
  closed loop has no queue at the client, so these are service latencies.
`
