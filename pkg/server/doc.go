// Package server is Loghouse's gRPC service: the loghouse.v1.Log API
// (pkg/api/v1) over a replication.Node, the gRPC health service and server
// reflection, with the interceptors that authenticate and authorize every
// call.
//
// # Identity and access
//
// A caller's identity is the common name of its client certificate, as
// crypto/tls verified it against the cluster CA (tlsutil.IdentityFromState).
// A call without one is refused with Unauthenticated. With the production
// TLS configuration (tlsutil.Store.ServerConfig) the handshake already
// refuses a client without a certificate; the interceptor checks again so
// that a server configured otherwise stays closed. Every call is then
// authorized by the Authorizer:
//
//	Produce, ProduceStream   produce
//	Consume, ConsumeStream   consume
//	GetServers               produce, consume or admin
//	Status, Members          admin
//	RemovePeer               admin
//	health, reflection       any verified identity
//
// A refusal is PermissionDenied naming the identity and the action. A
// caller with a server certificate (tlsutil.ServerRole) may also call
// GetServers and Status as itself: servers ask each other for the leader
// and, before bootstrap_expect bootstraps, for their raft state.
//
// # Writes
//
// Only the leader commits writes. A follower given a Config.TLS forwards
// them: a unary Produce becomes a Produce on the leader, a ProduceStream
// one upstream ProduceStream per client stream (so its requests stay in
// order). The forwarding node presents its server certificate and names
// the client in the "loghouse-forwarded-for" metadata; the leader honours
// that header only from a server certificate, authorizes the client's
// identity (the follower has already, with the same policy), and never
// forwards a forwarded call again, so a stale view of the leader cannot
// make a request loop. While there is no leader the request waits for
// one, within its deadline (at most ApplyTimeout); when the leader says
// it did not take the request (it lost leadership first), the follower
// retries with the next one. Without Config.TLS, a follower fails writes
// with Unavailable; the message, a loghousev1.Error status detail and the
// trailer "loghouse-leader" give the leader's address when it is known.
//
// Every Unavailable carries loghousev1.Error.indeterminate: false means
// nothing was stored and the write may be retried; true means the records
// were handed to raft (or sent to the leader) and may or may not be
// committed, so a retry may store them twice.
//
// Produce requests of concurrent callers are grouped into one raft entry
// (group commit). The server's codec parses each request straight into
// the record batch encoding (wire.go); a committer goroutine takes
// whatever requests are queued, up to MaxBatchBytes, joins them into one
// record batch and hands it to raft, while a second goroutine waits for the outcomes in order. A
// request's records are contiguous in the batch, so they get consecutive
// offsets, and the request succeeds or fails as a whole. ProduceStream
// pipelines: it submits each request as it arrives and answers in request
// order, echoing each request's sequence; a failed request is answered
// with its error and the stream goes on.
//
// # Reads
//
// Reads see only records the node has committed (replication.FSM's
// watermark), on any node. On the leader they are linearizable: they see
// every write acknowledged before they began (readBarrier: a barrier once
// per term, then raft's read index with VerifyLeader). A follower serves
// what it has committed without asking the leader: its reads are
// monotonic but may be behind. Consume answers with the records from a start
// offset or time; min_committed makes it wait until the node has committed
// that offset first (read your writes from a follower). ConsumeStream
// sends records as they are committed and sleeps on the watermark when it
// has caught up.
//
// # Errors
//
// Codes follow pkg/api/v1's error model: InvalidArgument for a malformed,
// empty, oversized or too large request (the message names the limit and, for a
// record, its index), OutOfRange with the node's bounds [first, committed)
// in the message, PermissionDenied, Unauthenticated, Unavailable with the
// leader, DeadlineExceeded and Canceled for the caller's context, and
// Internal for anything else, whose cause is logged and not sent.
//
// DESIGN.md beside this file gives the reasons for these choices.
package server
