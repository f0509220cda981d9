// Package loadgen drives load through a set of workers and measures it: the
// engine behind `loghoused bench` and the bench/ comparison tool.
//
// A Worker sends operations (a produce request, a consume call, a publish)
// and receives their completions in order. Run starts every worker at once
// and keeps it busy for a warm-up and a measured duration, either as fast as
// it goes (closed loop) or at a target rate (open loop). In the open loop
// each operation has an intended send time on a fixed schedule, and its
// latency is measured from that time, not from when it was actually sent: a
// server that stalls delays every operation scheduled behind the stall, and
// those delays show in the percentiles instead of being hidden by a client
// that waited (coordinated omission). Operations that complete in the
// measured period are measured, whenever they were sent; the run ends with
// that period, abandoning what is still outstanding. So a request slower
// than the whole period still counts against throughput instead of
// leaving nothing measured, and, in the open loop, Result.Backlog says how
// far behind the schedule the workers fell.
//
// Latencies go into a Histogram per worker, merged at the end. The
// histogram is log-linear, like HdrHistogram: values below 256 are exact,
// larger ones fall into buckets 1/128 of their power of two wide, so a
// percentile is within 0.8% of the value it stands for; it covers every
// non-negative int64 with a fixed 7,424 counters.
package loadgen
