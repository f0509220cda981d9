// Package membership is Loghouse's gossip layer: Serf (over memberlist) on
// the Serf port, encrypted with the cluster's gossip key.
//
// Every server advertises, in Serf tags, its role ("server"), its RPC
// address (gRPC and raft share it) and, when set, its bootstrap_expect.
// A node joins through retry_join addresses, retried with jittered,
// doubling back-off until one answers (or RetryMax attempts, after which
// the agent stops, as Consul's does). Serf's snapshot in DataDir/serf lets a
// restarted node rejoin the members it knew without retry_join.
//
// The package decides nothing about raft itself; it offers what the agent
// needs to:
//
//   - reconcile raft's configuration with gossip (Plan): the leader runs a
//     pass on every membership change and on a timer, and every pass is a
//     pure function of the current state (plus the names Serf reaped), so a
//     missed event is repaired by the next pass. Alive servers become
//     voters; servers that left gracefully are removed; failed servers stay
//     voters until Serf reaps them after reconnect_timeout, or an operator
//     removes them (`loghoused operator raft remove-peer`). Removing a
//     failed voter at once, as proglog did, would let a partition shrink
//     the quorum under a minority's feet.
//
//   - bootstrap with bootstrap_expect (BootstrapServers): once that many
//     servers that agree on the number have met, each of them bootstraps
//     raft with the same sorted server set, which raft accepts exactly
//     once; the agent also asks each of them first whether it already has
//     raft state, and never bootstraps a node that has any (a restarted or
//     rejoining node).
//
// The event loop never stops while the node runs, whatever it sees happen
// to the node itself: proglog's handler returned when it saw its own
// leave, and the node went deaf after rejoining.
package membership
