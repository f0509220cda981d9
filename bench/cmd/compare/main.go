// Command compare measures Loghouse beside raw baselines and NATS
// JetStream on this machine, in one run, and reports medians.
//
// Run it from bench/:
//
//	go run ./cmd/compare                # short mode: about 12 minutes on a 2-core VM, writes REPORT.md
//	go run ./cmd/compare -mode full     # 64 B, 256 B and 4 KiB records, longer runs
//
// It builds loghoused, makes a CA and certificates, and then, for each of
// several rounds, starts every system in turn (alternating the order from
// round to round, so slow drift of a noisy machine spreads over all of
// them), runs the workloads against it and stops it:
//
//   - fsync: a write+fdatasync loop on a plain file;
//   - grpc: Loghouse's API over mutual TLS, answered at once by a server
//     with nothing behind it;
//   - raft3: three hashicorp/raft nodes on Loghouse's durable log store;
//   - lh1, lh1-none, lh3: Loghouse, 1 node (storage.sync "always" and
//     "none") and 3 nodes (sync always), each node a loghoused process;
//   - js1, js1-always, js3, js3-always: NATS JetStream file streams with 1
//     and 3 replicas, each server an embedded nats-server in its own
//     process, with defaults and with sync_interval: always.
//
// Loghouse and the gRPC baseline are driven by `loghoused bench`; the
// others by the same load engine (pkg/loadgen) in child commands of this
// program. Every server is a child process in its own process group, and
// every child is stopped at the end, on failure and on interrupt.
//
// `compare profile -out DIR` runs one produce workload against a fresh
// Loghouse cluster and keeps CPU and allocation profiles of every node,
// the leader's execution trace and the load generator's CPU profile in
// DIR (see profile.go).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

// run dispatches the child commands, which the comparison starts; with no
// child command it runs the comparison.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve-nats":
			return serveNATS(ctx, args[1:], stdout, stderr)
		case "serve-grpc":
			return serveGRPC(ctx, args[1:], stdout, stderr)
		case "nats-bench":
			return natsBench(ctx, args[1:], stdout, stderr)
		case "raft-bench":
			return raftBench(ctx, args[1:], stdout, stderr)
		case "fsync-bench":
			return fsyncBench(ctx, args[1:], stdout, stderr)
		case "profile":
			return profile(ctx, args[1:], stdout, stderr)
		}
	}
	return compare(ctx, args, stdout, stderr)
}
