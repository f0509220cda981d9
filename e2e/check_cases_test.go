package e2e

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Crafted histories for the checker: it must pass a correct one and fail
// each kind of violation. These tests need no Docker.

func app(client int, call, ret int64, out outcome, off uint64, values ...string) Op {
	return Op{Kind: opAppend, Client: client, Node: "n1", Call: call, Return: ret, Outcome: out, Offset: off, Values: values}
}

// read is an answered read from offset from that saw the watermark
// committed and the records starting at from.
func read(client int, node string, leader bool, call, ret int64, from, committed uint64, values ...string) Op {
	op := Op{Kind: opRead, Client: client, Node: node, Leader: leader, Call: call, Return: ret, Outcome: outOK,
		From: from, Committed: committed, EpochCall: 1, EpochReturn: 1}
	for k, v := range values {
		op.Records = append(op.Records, rec{Offset: from + uint64(k), Value: v})
	}
	return op
}

func pastEnd(op Op) Op { op.PastEnd, op.Committed = true, 0; return op }

func epoch(op Op, e int64) Op { op.EpochCall, op.EpochReturn = e, e; return op }

func minCommitted(op Op, m uint64) Op { op.MinCommitted = m; return op }

func logOf(values ...string) []rec {
	out := make([]rec, len(values))
	for i, v := range values {
		out[i] = rec{Offset: uint64(i), Value: v}
	}
	return out
}

// same is a three-node cluster whose nodes all hold values.
func same(values ...string) map[string][]rec {
	return map[string][]rec{"n1": logOf(values...), "n2": logOf(values...), "n3": logOf(values...)}
}

func counters(r *Report) map[string]int {
	return map[string]int{
		"node mismatch": r.NodeMismatch, "lost": r.Lost, "misplaced": r.Misplaced, "duplicates": r.Duplicates,
		"phantoms": r.Phantoms, "failed present": r.FailedPresent, "torn": r.Torn, "diverged": r.Diverged,
		"non-monotonic": r.NonMonotonic, "read own writes": r.ReadOwnWrites, "stale leader": r.StaleLeader,
	}
}

func TestCheckerCraftedHistories(t *testing.T) {
	ok, illegal := porcupine.Ok, porcupine.Illegal
	// A correct history: concurrent appends, one of unknown outcome that
	// took effect, one that did not, a refused one, leader and follower
	// reads (a follower may lag), reads with min_committed.
	clean := []Op{
		app(0, 0, 10, outOK, 0, "a"),
		app(1, 5, 15, outOK, 1, "b", "c"),
		app(2, 12, 30, outUnknown, 0, "d"),
		app(3, 12, 30, outUnknown, 0, "e1", "e2"),
		app(4, 16, 18, outFail, 0, "f"),
		read(5, "n1", true, 16, 17, 0, 3, "a", "b", "c"),
		read(5, "n1", true, 40, 45, 1, 4, "b", "c", "d"),
		pastEnd(read(5, "n1", true, 46, 47, 6, 0)),
		read(6, "n2", false, 16, 20, 0, 1, "a"),
		read(6, "n2", false, 21, 22, 1, 1),
		minCommitted(read(6, "n3", false, 41, 42, 3, 4, "d"), 3),
	}
	tests := []struct {
		name string
		ops  []Op
		logs map[string][]rec
		want map[string]int // non-zero counters expected
		lin  porcupine.CheckResult
	}{
		{"correct history", clean, same("a", "b", "c", "d"), nil, ok},
		{"lost acknowledged record", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			app(1, 0, 10, outOK, 1, "b"),
		}, same("a"), map[string]int{"lost": 1}, illegal},
		{"duplicate record", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			app(1, 11, 20, outOK, 1, "b"),
		}, same("a", "b", "a"), map[string]int{"duplicates": 1}, ok},
		{"records stored in another order than acknowledged", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			app(1, 20, 30, outOK, 1, "b"),
		}, same("b", "a"), map[string]int{"misplaced": 2}, illegal},
		{"later append got an earlier offset", []Op{
			app(0, 0, 10, outOK, 1, "a"),
			app(1, 20, 30, outOK, 0, "b"),
		}, same("b", "a"), nil, illegal},
		{"stale leader read", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			read(1, "n2", true, 20, 30, 0, 0),
		}, same("a"), map[string]int{"stale leader": 1}, illegal},
		{"stale leader read past the end", []Op{
			app(0, 0, 10, outOK, 0, "a", "b"),
			pastEnd(read(1, "n2", true, 20, 30, 2, 0)),
		}, same("a", "b"), map[string]int{"stale leader": 1}, illegal},
		{"leader read of a record not yet produced", []Op{
			read(1, "n1", true, 0, 5, 0, 1, "a"),
			app(0, 10, 20, outOK, 0, "a"),
		}, same("a"), nil, illegal},
		{"stale follower read is allowed", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			read(1, "n2", false, 20, 30, 0, 0),
		}, same("a"), nil, ok},
		{"follower watermark goes back", []Op{
			app(0, 0, 10, outOK, 0, "a", "b"),
			read(1, "n2", false, 20, 30, 0, 2, "a", "b"),
			read(2, "n2", false, 31, 40, 0, 1, "a"),
		}, same("a", "b"), map[string]int{"non-monotonic": 1}, ok},
		{"follower watermark goes back past the end", []Op{
			app(0, 0, 10, outOK, 0, "a", "b"),
			read(1, "n2", false, 20, 30, 0, 2, "a", "b"),
			pastEnd(read(1, "n2", false, 31, 40, 2, 0)),
		}, same("a", "b"), map[string]int{"non-monotonic": 1}, ok},
		{"watermark may restart with the process", []Op{
			app(0, 0, 10, outOK, 0, "a", "b"),
			epoch(read(1, "n2", false, 20, 30, 0, 2, "a", "b"), 1),
			epoch(read(1, "n2", false, 31, 40, 0, 1, "a"), 2),
		}, same("a", "b"), nil, ok},
		{"phantom record", []Op{
			app(0, 0, 10, outOK, 0, "a"),
		}, same("a", "x"), map[string]int{"phantoms": 1}, ok},
		{"refused produce took effect", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			app(1, 0, 10, outFail, 0, "f"),
		}, same("a", "f"), map[string]int{"failed present": 1}, ok},
		{"torn batch", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			app(1, 0, 10, outUnknown, 0, "u1", "u2"),
		}, same("a", "u1"), map[string]int{"torn": 1}, ok},
		{"nodes diverge", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			app(1, 0, 10, outUnknown, 0, "b"),
			app(2, 0, 10, outUnknown, 0, "c"),
		}, map[string][]rec{"n1": logOf("a", "b"), "n2": logOf("a", "c"), "n3": logOf("a", "b")},
			map[string]int{"node mismatch": 1}, ok},
		{"node misses the tail", []Op{
			app(0, 0, 10, outOK, 0, "a", "b"),
		}, map[string][]rec{"n1": logOf("a", "b"), "n2": logOf("a"), "n3": logOf("a", "b")},
			map[string]int{"node mismatch": 1}, ok},
		{"offsets not dense", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			app(1, 0, 10, outOK, 1, "b"),
		}, map[string][]rec{"n1": {{0, "a"}, {2, "b"}}}, map[string]int{"node mismatch": 1}, ok},
		{"read returned a record the log does not hold", []Op{
			app(0, 0, 10, outOK, 0, "a"),
			read(1, "n3", false, 20, 30, 0, 1, "z"),
		}, same("a"), map[string]int{"diverged": 1}, ok},
		{"min_committed not honoured", []Op{
			app(0, 0, 10, outOK, 0, "a", "b"),
			minCommitted(read(1, "n3", false, 20, 30, 1, 1), 1),
		}, same("a", "b"), map[string]int{"read own writes": 1}, ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(tc.ops, tc.logs, checkOptions{LinearizeTimeout: 10 * time.Second})
			for name, got := range counters(r) {
				if want := tc.want[name]; got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
			if r.Linearizable != tc.lin {
				t.Errorf("linearizable = %s, want %s", r.Linearizable, tc.lin)
			}
			wantOK := len(tc.want) == 0 && tc.lin == ok
			if r.OK() != wantOK {
				t.Errorf("OK() = %v, want %v", r.OK(), wantOK)
			}
			if t.Failed() {
				t.Log(r)
			}
		})
	}
}
