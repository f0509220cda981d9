// Package telemetry exports Loghouse's metrics for Prometheus.
//
// Everything emits through hashicorp/go-metrics, as the rest of the
// HashiCorp stack does: raft (raft_commitTime, raft_leader_lastContact,
// raft_replication_appendEntries_rpc, ...), Serf and memberlist
// (serf_member_*, memberlist_gossip, ...) and our own code under the
// "loghouse" prefix. Setup installs one global Prometheus sink (go-metrics
// is global because raft and Serf call its package-level functions) over a
// private registry that also holds the Go runtime and process collectors;
// the agent serves Handler at /metrics on the HTTP port.
//
// Our metrics:
//
//	loghouse_rpc_calls{method,code}          counter, every gRPC call
//	loghouse_rpc_latency_ms{method}          summary, gRPC call latency
//	loghouse_produce_records                 counter, records committed by produce calls on this node
//	loghouse_consume_records                 counter, records served by consume calls
//	loghouse_commitlog_fsync_ms              summary, fsync latency of the commit log
//	loghouse_log_committed_offset            gauge, the commit watermark (next offset to commit)
//	loghouse_log_first_offset                gauge, the oldest retained offset
//	loghouse_log_segments / _bytes           gauges, segment count and bytes on disk
//	loghouse_raft_is_leader                  gauge, 1 on the leader
//	loghouse_members{status}                 gauge, gossip members by status
//
// Timers are in milliseconds, as go-metrics (and so raft's own timers)
// measure them. Summaries come from go-metrics' Prometheus sink, which
// reports quantiles 0.5, 0.9 and 0.99 over a sliding window.
package telemetry
