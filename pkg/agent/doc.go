// Package agent wires a Loghouse node together and owns its start-up and
// shutdown order.
//
// Start-up: validate the configuration, load the TLS material and the ACL
// policy, bind the RPC port, start the connection mux, open the commit log
// and start raft on it (bootstrapping a static cluster only when there is
// no raft state), start gossip (pkg/membership) and its join loop, then
// serve gRPC. A failure at any step undoes the earlier ones.
//
// The cluster loop (cluster.go) bootstraps a bootstrap_expect cluster once
// enough servers have met and none of them (asked over gRPC with this
// node's server certificate) has raft state, and, while the node leads,
// reconciles raft's voters with gossip (membership.Plan) on every
// membership change, leadership gain and reconcile_interval.
//
// Shutdown, in order: stop the service (its group committer, waiting
// consumer streams and queued writes end), stop accepting client calls
// (running calls get a grace period), hand leadership to another
// server if this node leads, leave the gossip pool if leave_on_terminate
// is set (the leader then removes this node from raft) and stop gossip,
// close the shared port, shut raft down, close the log. Shutdown is
// idempotent and joins every error.
//
// -dev mode binds 127.0.0.1, bootstraps a one-node cluster, generates a CA,
// a server certificate and a "root" client certificate in the data
// directory, and, without -data-dir, uses a temporary directory that
// Shutdown removes.
package agent
