// Package agent wires a Loghouse node together and owns its start-up and
// shutdown order.
//
// Start-up: validate the configuration, load the TLS material and the ACL
// policy, bind the RPC port, start the connection mux, open the commit log
// and start raft on it (bootstrapping a static cluster only when there is
// no raft state), start gossip (pkg/membership) and its join loop, serve
// gRPC, serve plain HTTP on the HTTP port (/metrics, /v1/status,
// /v1/health, and /debug/pprof/ with enable_debug; http.go), and, with
// consul.enabled, register in Consul and join through its catalog
// (consul.go). A failure at any step undoes the earlier ones; Consul being
// down is not a failure.
//
// The cluster loop (cluster.go) bootstraps a bootstrap_expect cluster once
// enough servers have met and none of them (asked over gRPC with this
// node's server certificate) has raft state, and, while the node leads,
// reconciles raft's voters with gossip (membership.Plan) on every
// membership change, leadership gain and reconcile_interval.
//
// Shutdown, in order: tell systemd STOPPING=1, deregister from Consul (so
// DNS stops offering the node while it drains), stop the service (its
// group committer, waiting consumer streams and queued writes end), stop
// the HTTP server, stop accepting client calls
// (running calls get a grace period), hand leadership to another
// server if this node leads, leave the gossip pool if leave_on_terminate
// is set (the leader then removes this node from raft) and stop gossip,
// close the shared port, shut raft down (after ending its connections to
// peers, so that unreachable ones cannot hold it up), close the log.
// Shutdown is
// idempotent and joins every error.
//
// -dev mode binds 127.0.0.1, bootstraps a one-node cluster, generates a CA,
// a server certificate and a "root" client certificate in the data
// directory, and, without -data-dir, uses a temporary directory that
// Shutdown removes.
package agent
