// Package e2e holds Loghouse's system tests: the real loghoused binary on
// three and five containers of a private Docker network, a concurrent
// workload recorded operation by operation, faults injected from the
// host, and a checker that proves the history safe once the faults are
// healed. Apart from this file, everything is in _test.go files.
//
// # Running
//
//	go test -count=1 -v ./e2e                       # short mode, a few minutes (what CI runs)
//	LOGHOUSE_E2E_SEED=42 go test -v ./e2e            # replay a seed
//	LOGHOUSE_E2E_LONG=1 go test -timeout 0 -v -run TestRandomFaults ./e2e    # soak: 10m per cluster size
//	LOGHOUSE_E2E_LONG=45m go test -timeout 0 -v -run TestRandomFaults ./e2e  # soak for 45m each
//
// The tests need a Docker engine, root (or the docker group, see
// Partitions), and no registry: the image is built FROM scratch. If
// `docker info` fails they skip, unless CI=true, where that is a failure;
// they also skip under -short. Other variables:
//
//   - LOGHOUSE_E2E_SEED: the seed of the random choices (fault kinds,
//     targets, durations, workload targets and batch sizes). Every test
//     logs the seed it used. The choices replay; the timing does not.
//   - LOGHOUSE_E2E_LONG: "1" or a duration: the random schedules run that
//     long instead of 20s (three nodes) and 15s (five nodes).
//   - LOGHOUSE_E2E_JOIN: "static" (bootstrap = true with peer blocks) or
//     "gossip" (Serf: bootstrap_expect, retry_join, encrypt from
//     `loghoused keygen`; the default, as in production).
//   - LOGHOUSE_E2E_ARTIFACTS: a directory that receives, for a failed
//     test, every node's full log, the history (history.txt) and
//     porcupine's visualization of a non-linearizable history. Without it,
//     the history and visualization go under $TMPDIR/loghouse-e2e-artifacts.
//
// # The harness
//
// The first test that needs Docker builds a static loghoused
// (CGO_ENABLED=0 go build -trimpath) and an image FROM scratch holding
// only it, tagged loghouse-e2e:<first 12 hex digits of the binary's
// SHA-256> and reused while the binary is unchanged; the image is removed
// when the test binary exits. MakeCluster then creates an internal bridge
// network (no route out) named loghouse-e2e-<random id> on a free
// 172.29.x.0/24, makes a CA, a server certificate per node (with its IP)
// and a "root" client certificate with `loghoused tls`, writes each node's
// config.hcl (short raft timeouts: 500ms heartbeat and election, 250ms
// lease, snapshots every 2s or 256 entries), and runs node i as container
// loghouse-e2e-<id>-n<i> at x.(10+i). Containers run as the test's user
// with their configuration mounted read-only and a data directory
// bind-mounted from the test's temporary directory. The test talks to every
// node over mutual TLS from the network's gateway address (x.1) with the
// generated loghousev1 client.
//
// Every container, network and image carries the label loghouse-e2e and
// the test process's PID; t.Cleanup removes a cluster's containers and
// network, and a later run removes what a killed run left behind (only if
// that process is gone). When a test fails, the last 50 log lines of each
// node are written to the test log.
//
// # Faults
//
//   - kill: docker kill -s KILL (kill -9). Healing starts the container
//     again on the same data.
//   - pause: docker pause (cgroup freezer): the process stops, its
//     connections stay open and go silent, as in a long GC pause or a VM
//     stall. Healing unpauses it.
//   - isolate: the node is cut from every other node (but not from
//     clients). Partitions are iptables DROP rules in the INPUT and OUTPUT
//     chains of each affected container's network namespace, set from the
//     host with nsenter --net=/proc/<pid>/ns/net iptables; they cut raft,
//     gRPC forwarding and gossip (TCP and UDP) alike, and are put back
//     when a cut node restarts. Without root, nsenter or iptables the
//     harness falls back to docker network disconnect, which also cuts the
//     clients off.
//   - split: a random minority ((n-1)/2 nodes) is cut from the majority.
//   - restart: docker stop (SIGTERM, then SIGKILL after 20s) and start; a
//     rolling restart does every node in turn, each catching up with the
//     leader before the next.
//   - wipe: the container is removed, its data directory emptied, and a
//     new container started with the same name, address, certificate and
//     configuration (a replaced disk). A wiped node has forgotten its votes
//     and the entries it acknowledged: rejoining as the same voter, it can
//     help elect a leader that lacks an acknowledged write (the checker
//     caught such a loss). With the gossip formation the wipe therefore
//     follows the operator's procedure: the dead node is removed from raft
//     (RemovePeer through another node) before the new container starts,
//     and the leader adds it back. With the static formation the node finds
//     no raft state and bootstraps again with the same server list, exposed
//     to that hazard. The schedules wipe a node only when every node has
//     caught up, and wait for it to catch up before the next fault.
//
// TestSingleFaults runs each fault alone (kill leader, kill follower,
// pause leader, isolate leader, split minority, rolling restart, wipe a
// follower and then the leader) and one pair: a follower killed, then the
// leader restarted gracefully (it hands leadership to a node that cannot
// commit, and may itself be re-elected with a commit watermark at its last
// snapshot). TestRandomFaults runs a random schedule:
// calm for 0.5-1.5s, then one fault or, a quarter of the time, two at once
// on different nodes, held for 1-3s and healed; after each step the nodes
// must agree on a leader. TestNoFaults is the baseline.
//
// # The workload
//
// Six producers write records whose values are unique in the run, one to
// three per request, mostly to the node they believe leads, otherwise to
// any node (a follower forwards the write, or refuses it naming the
// leader). Two leader readers read near the tail from the believed leader
// or a random node (so that a new leader is read from as soon as it says
// it leads) and count as leader reads only if Status, just before and
// just after, says that node leads in one and the same term. Three follower readers
// read from any node, half of the time with min_committed set to an
// acknowledged offset. Every operation is recorded with its call and
// return times. A produce that fails with a loghousev1.Error detail whose
// indeterminate flag is unset (or with InvalidArgument, PermissionDenied,
// Unauthenticated) stored nothing; every other failure (indeterminate,
// DeadlineExceeded, a broken connection) is an unknown outcome: its
// records may be stored, at most once.
//
// After the schedule, every fault is healed, writes must resume, the
// workload stops, one sentinel record is written through the leader, and
// once every node has committed the same log each node's log is read in
// full.
//
// # The checker
//
// Check (check_test.go) proves, from the history and the final logs:
// offsets are dense from 0 and every node holds the same log; every
// acknowledged record is there at its acknowledged offset (lost,
// misplaced); no value is stored twice (duplicates); every stored record
// was produced (phantoms), by a produce that was not refused; a batch of
// unknown outcome is there whole or not at all; every record a read
// returned is the final log's record at that offset; a node's commit
// watermark never goes back within one incarnation of its process
// (monotonic reads); min_committed is honoured; and appends and leader reads
// are linearizable, checked with porcupine against a log model
// (append(values) -> offset, read(offset) -> records and watermark, or
// past the end). It prints the counts and the seed. check_cases_test.go
// shows it fails on crafted histories with a lost record, a duplicate, a
// reordering, a stale leader read and the other violations.
package e2e
