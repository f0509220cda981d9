// Package replication puts hashicorp/raft on top of the commit log, so that
// each record is written once per replica.
//
//   - LogStore is raft's log store over a commitlog.Log: a raft entry is a
//     commit log entry, and a command carrying a record batch
//     (pkg/record) takes as many record offsets as it holds records, so
//     every replica computes the same offsets. Raft's suffix deletions are
//     honoured; its prefix deletions (log compaction) are ignored, because
//     only retention deletes data. The last 64 stored entries are served
//     from memory while the log still holds them. On the leader, command
//     entries are synced in the background while raft replicates them
//     (Raft thesis §10.2.1): the FSM applies only entries durable here,
//     and the transport (clamp.go) never tells followers a commit index
//     past the leader's durable log.
//   - FSM only moves the commit watermark: records below it are committed
//     and visible on this node, and durable in its log. WaitCommitted lets readers wait for it
//     without polling. Apply returns the entry's record offsets.
//   - SnapshotStore takes snapshots in O(1) (raft's metadata only) and,
//     when raft sends one to a follower, streams the entries the log still
//     holds up to the snapshot's index, read from the live segments. The
//     follower's FSM.Restore rebuilds its log from that stream.
//   - StableStore keeps raft's term and vote in one small checksummed file,
//     replaced atomically and fsync'd on every change.
//   - Mux shares the RPC port between gRPC and raft: a per-connection
//     goroutine reads the first byte under a deadline ('R' for raft, a TLS
//     ClientHello for gRPC). StreamLayer runs raft over it with mutual TLS
//     and requires a server-role certificate at both ends; each Write on a
//     raft connection sends its TLS records together (conn.go).
//   - Node wires all of it: log, stores, FSM, transport and raft, with
//     bootstrap only when no raft state exists.
//
// DESIGN.md beside this file gives the reasons and the known limits; the
// snapshot stream format is described on FSM.Restore.
package replication
