// Package client is the Go client of a Loghouse cluster. It talks to every
// server over mutual TLS, sends writes to the leader, spreads reads over the
// followers, follows leader changes and retries what is safe to retry.
//
//	c, err := client.New(ctx, client.Config{
//		Seeds: []string{"10.0.0.1:8400", "10.0.0.2:8400"},
//		TLS:   tlsConfig, // client.TLSConfigFromFiles(ca, cert, key)
//	})
//	...
//	defer c.Close()
//	resp, err := c.Produce(ctx, &loghousev1.Record{Value: []byte("hello")})
//
// ConfigFromEnv builds a Config from LOGHOUSE_ADDR (comma-separated seeds, or
// a target "loghouse://host1:8400,host2:8400"), LOGHOUSE_CACERT,
// LOGHOUSE_CLIENT_CERT and LOGHOUSE_CLIENT_KEY, as the loghoused command
// line does.
//
// # Finding the cluster
//
// Seeds are addresses, or DNS SRV names looked up again on every
// resolution: "consul://loghouse" asks the local Consul agent for
// loghouse.service.consul, "srv://HOST:PORT/NAME" any DNS server (see
// Config.Seeds).
//
// New asks the seeds, one after the other, for the cluster's servers
// (GetServers: every server's ID, RPC address, whether it leads and whether
// it votes) and remembers them. The Client keeps one gRPC connection per
// server address, made on first use; it registers no global resolver or
// balancer and keeps no package-level state, so several Clients (to several
// clusters) live side by side. It asks again
//
//   - when a call fails with Unavailable: the failing server usually names
//     the leader (in a loghousev1.Error status detail, or in the
//     "loghouse-leader" trailer) and the next attempt goes there; otherwise
//     it asks the servers it knows, then the seeds, with GetServers;
//   - every Config.ResolveInterval in the background, until Close.
//
// Connections to addresses that leave the cluster are closed once no call
// uses them.
//
// # Where calls go
//
// Produce and RemovePeer go to the leader. Consume, ConsumeStream and
// Members go to the followers in turn (round-robin), or to the leader alone
// with Config.ReadFromLeader; with a single server, to it. Followers serve
// only records that are committed, but they may lag the leader by a
// heartbeat: to read your own writes from a follower, set the request's
// min_committed to the last offset you produced and the follower waits
// until it has committed it (Consume with MinCommitted; mind that 0 means
// "do not wait"). Servers asks the leader if one is known; Status asks the
// server you name.
//
// # Retries and at-most-once writes
//
// Every retry waits an exponential back-off with jitter
// (Config.InitialBackoff doubling up to Config.MaxBackoff, each wait drawn
// from its upper half) and gives up after Config.MaxAttempts attempts or
// when the call's context ends, returning the last error the servers gave.
// Retries never outlive the caller's context.
//
// Reads are idempotent and always retried on another server when a server
// is unavailable (codes.Unavailable, which includes refused and broken
// connections).
//
// A produce is retried only when the failure proves that nothing was
// stored, so a record is stored at most once per Produce call:
//
//   - Unavailable with a loghousev1.Error detail whose indeterminate flag is
//     false: the server refused the write before handing it to raft (it
//     does not lead, it is shutting down, raft did not take it in time). The
//     write is sent again, to the leader the detail names if it names one.
//   - Unavailable before the request reached any server: the connection
//     could not be made (refused, TLS failure), so nothing was sent.
//
// Every other failure of a write that reached a server is not retried, and
// the error returned wraps ErrIndeterminate (errors.Is) as well as the gRPC
// status (status.Code still works): the records may or may not have been
// committed. That is the case for Unavailable with indeterminate set
// (leadership was lost, or the node shut down, while committing), for
// Unavailable without detail after the request was sent (the connection
// broke), for DeadlineExceeded and Canceled, and for Internal, Unknown,
// Aborted and DataLoss. A caller that must not lose records may retry such
// a write itself, accepting a possible duplicate, or read the log to find
// out. Errors that reject the request (InvalidArgument, PermissionDenied,
// ResourceExhausted and the like) are returned at once and stored nothing.
//
// # Batching producer
//
// Each Client.Produce is one request, and with many concurrent callers of
// few records each, gRPC's cost per request bounds throughput. A Producer
// (Client.NewProducer) sends the records of concurrent calls together:
//
//	p, err := c.NewProducer(client.ProducerConfig{})
//	...
//	defer p.Close()
//	resp, err := p.Produce(ctx, rec) // from many goroutines
//
// Calls queue in arrival order. While fewer than
// ProducerConfig.MaxInflight requests are in flight, the oldest queued
// calls form the next request at once, as many as fit MaxRecords and
// MaxBytes (at least one call, even one that alone exceeds them). There is
// no linger timer: a lone caller is sent at once, and calls share requests
// when they arrive while others are in flight. When a request of several
// calls returns, the Producer holds the queued calls briefly (half that
// request's latency, at most ProducerConfig.RegroupMax) for its callers to
// produce again, so that callers in a loop travel together rather than in
// alternating groups. A call's records stay
// together and in order in one request, so Produce keeps Client.Produce's
// contract: the records are stored atomically at consecutive offsets, and
// the response gives the call's own base offset and count and the entry's
// timestamp.
//
// Each request goes through Client.Produce, with its retry rules, under a
// context of its own (RequestTimeout), so one caller giving up does not
// fail the others. If a request fails, every call in it gets the error,
// with ErrIndeterminate when the outcome is unknown, with one exception:
// when a request of several calls is rejected with InvalidArgument or
// ResourceExhausted, which store nothing and may be caused by one call's
// records (a record over the server's size limit, say), each call is sent
// again in a request of its own, so only the call at fault fails.
// Produce refuses a call with no records, or with a header name that is
// not UTF-8, with InvalidArgument before queueing it.
//
// If a caller's context ends while its call is queued, the call is
// dropped and Produce returns the context's error: nothing was sent. If it
// ends after the request was sent, Produce returns at once an error that
// wraps ErrIndeterminate and the context's error; the request goes on and
// may commit the records, and reads them until it ends, so a caller must
// not modify records it has passed to Produce.
//
// Close fails the queued calls with ErrClosed and waits for the requests in
// flight. Close the Producer before the Client; if the Client closes
// first, the Producer's requests fail with ErrClosed (ErrIndeterminate for
// those in flight).
//
// # Consumer streams
//
// ConsumeStream returns a RecordStream that follows the log from a start
// position. It remembers the offset after the last record it delivered;
// when its server fails (Unavailable, or the stream ends) it opens a new
// stream on another server from that offset. It drops records it has
// already delivered and fails with ErrOffsetGap rather than skip one, so
// every record is delivered once and in order. Records iterates over the
// same stream record by record.
//
// The records of a consume response are decoded by Codec into shared
// memory: slabs of 128 records and 16 KiB chunks of their values and keys.
// A record kept long after the rest of its response therefore keeps up to
// 32 KiB alive; copy the records you keep if that matters.
package client
