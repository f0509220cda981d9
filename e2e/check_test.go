package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// maxProblems bounds the problems a Report lists (all are counted).
const maxProblems = 40

// Report is the checker's verdict on a history and the nodes' final logs.
type Report struct {
	Seed int64

	Ops, Appends, Acked, Failed, Unknown, UnknownPresent int
	Reads, LeaderReads, FollowerReads, FailedReads       int
	Records, Nodes                                       int // final log length, nodes compared

	// Violations.
	NodeMismatch  int // a node's log differs from the others', or its offsets are not dense
	Lost          int // an acknowledged record is missing
	Misplaced     int // an acknowledged record is at another offset than acknowledged
	Duplicates    int // a value is stored more than once
	Phantoms      int // a record nobody produced
	FailedPresent int // a record whose produce was refused
	Torn          int // a batch of unknown outcome is partly present
	Diverged      int // a read returned a record the final log does not hold there
	NonMonotonic  int // a node's watermark went back between two reads of one incarnation
	ReadOwnWrites int // a read with min_committed did not see the record
	StaleLeader   int // a leader read missed a record acknowledged before it began

	// Linearizable is porcupine's verdict on the appends and leader reads.
	Linearizable  porcupine.CheckResult
	LinearizeTime time.Duration
	Visualization string // porcupine's HTML, when the history is not linearizable

	MaxAckGap time.Duration // the longest time without an acknowledged append

	Problems []string
}

// OK reports whether no violation was found.
func (r *Report) OK() bool {
	return r.NodeMismatch+r.Lost+r.Misplaced+r.Duplicates+r.Phantoms+r.FailedPresent+r.Torn+
		r.Diverged+r.NonMonotonic+r.ReadOwnWrites+r.StaleLeader == 0 && r.Linearizable == porcupine.Ok
}

func (r *Report) problem(counter *int, format string, args ...any) {
	*counter++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else if len(r.Problems) == maxProblems {
		r.Problems = append(r.Problems, "… (more problems; the counts are complete)")
	}
}

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d operations: %d appends (%d acked, %d failed, %d unknown of which %d present), "+
		"%d reads (%d leader, %d follower, %d failed); final log %d records on %d nodes\n",
		r.Seed, r.Ops, r.Appends, r.Acked, r.Failed, r.Unknown, r.UnknownPresent,
		r.Reads, r.LeaderReads, r.FollowerReads, r.FailedReads, r.Records, r.Nodes)
	fmt.Fprintf(&b, "lost %d, duplicates %d, misplaced %d, phantoms %d, failed-but-present %d, torn batches %d, "+
		"node mismatches %d, divergent reads %d, non-monotonic reads %d, read-your-writes misses %d, stale leader reads %d; "+
		"linearizable: %s (%v); longest gap between acks %v",
		r.Lost, r.Duplicates, r.Misplaced, r.Phantoms, r.FailedPresent, r.Torn,
		r.NodeMismatch, r.Diverged, r.NonMonotonic, r.ReadOwnWrites, r.StaleLeader,
		r.Linearizable, r.LinearizeTime.Round(time.Millisecond), r.MaxAckGap.Round(time.Millisecond))
	if r.Visualization != "" {
		fmt.Fprintf(&b, "\nporcupine visualization: %s", r.Visualization)
	}
	for _, p := range r.Problems {
		b.WriteString("\n  - " + p)
	}
	return b.String()
}

// checkOptions tune Check.
type checkOptions struct {
	// LinearizeTimeout bounds porcupine; a timeout is a failure (Unknown).
	LinearizeTimeout time.Duration
	// VizDir, if set, receives porcupine's visualization of a
	// non-linearizable history.
	VizDir string
}

// Check proves the history against the final logs of the nodes (read
// after every fault was healed and the nodes converged):
//
//   - every node's offsets are dense from 0 and all nodes hold the same log;
//   - every acknowledged record is in it at its acknowledged offset;
//   - every record in it was produced, by a produce that was not refused,
//     and only once; batches of unknown outcome are all there or not at all;
//   - every record a read returned is the final log's record at that offset;
//   - a node's commit watermark never goes back between reads of one of its
//     incarnations (monotonic reads), and min_committed is honoured;
//   - appends and leader reads are linearizable (porcupine, with a log
//     model: append(values) -> offset, read(offset) -> records and the
//     watermark, or "past the end").
func Check(ops []Op, logs map[string][]rec, opts checkOptions) *Report {
	r := &Report{Ops: len(ops), Nodes: len(logs)}
	ref := r.checkNodes(logs)
	r.Records = len(ref)
	at := map[string][]uint64{} // value -> offsets in the final log
	for i, v := range ref {
		at[v] = append(at[v], uint64(i))
	}
	producer := map[string]int{} // value -> index of the append op
	for i := range ops {
		if ops[i].Kind == opAppend {
			for _, v := range ops[i].Values {
				producer[v] = i
			}
		}
	}
	resolved := r.checkAppends(ops, ref, at, producer)
	r.checkReads(ops, ref)
	r.checkMonotonic(ops)
	r.checkStaleLeaderReads(ops)
	r.linearize(ops, ref, resolved, opts)
	return r
}

// checkNodes compares the nodes' logs and returns the reference: the
// longest (ties: the first by name).
func (r *Report) checkNodes(logs map[string][]rec) []string {
	names := make([]string, 0, len(logs))
	for n := range logs {
		names = append(names, n)
	}
	sort.Strings(names)
	refName := ""
	for _, n := range names {
		if refName == "" || len(logs[n]) > len(logs[refName]) {
			refName = n
		}
	}
	for _, n := range names {
		for i, x := range logs[n] {
			if x.Offset != uint64(i) {
				r.problem(&r.NodeMismatch, "node %s: record %d of its log has offset %d; offsets must be dense from 0", n, i, x.Offset)
				break
			}
		}
		if n == refName {
			continue
		}
		a, b := logs[n], logs[refName]
		if len(a) != len(b) {
			r.problem(&r.NodeMismatch, "node %s holds %d records, node %s %d", n, len(a), refName, len(b))
		}
		for i := range min(len(a), len(b)) {
			if a[i].Value != b[i].Value {
				r.problem(&r.NodeMismatch, "nodes diverge at offset %d: %s has %q, %s has %q", i, n, a[i].Value, refName, b[i].Value)
				break
			}
		}
	}
	ref := make([]string, len(logs[refName]))
	for i, x := range logs[refName] {
		ref[i] = x.Value
	}
	return ref
}

// checkAppends checks the appends against the final log and returns, for
// each append that took effect (acknowledged, or unknown and present), the
// offset its records are at (op index -> offset).
func (r *Report) checkAppends(ops []Op, ref []string, at map[string][]uint64, producer map[string]int) map[int]uint64 {
	resolved := map[int]uint64{}
	var acks []int64
	for i := range ops {
		op := &ops[i]
		if op.Kind != opAppend {
			continue
		}
		r.Appends++
		switch op.Outcome {
		case outOK:
			r.Acked++
			acks = append(acks, op.Return)
			ok := true
			for k, v := range op.Values {
				offs := at[v]
				switch {
				case len(offs) == 0:
					ok = false
					r.problem(&r.Lost, "lost: %s; %q is on no node", op, v)
				case !slices.Contains(offs, op.Offset+uint64(k)):
					ok = false
					r.problem(&r.Misplaced, "misplaced: %s; %q was acknowledged at offset %d but is at %v", op, v, op.Offset+uint64(k), offs)
				}
			}
			if ok {
				resolved[i] = op.Offset
			}
		case outFail:
			r.Failed++
			for _, v := range op.Values {
				if len(at[v]) > 0 {
					r.problem(&r.FailedPresent, "a refused produce took effect: %s; %q is at %v", op, v, at[v])
				}
			}
		default:
			r.Unknown++
			present := 0
			for _, v := range op.Values {
				if len(at[v]) > 0 {
					present++
				}
			}
			if present == 0 {
				continue
			}
			base := at[op.Values[0]][0]
			whole := present == len(op.Values)
			for k, v := range op.Values {
				if whole && !slices.Contains(at[v], base+uint64(k)) {
					whole = false
				}
			}
			if !whole {
				r.problem(&r.Torn, "torn batch: %s; %d of %d records present, not contiguously", op, present, len(op.Values))
				continue
			}
			r.UnknownPresent++
			resolved[i] = base
		}
	}
	for v, offs := range at {
		if len(offs) > 1 {
			r.problem(&r.Duplicates, "duplicate: %q is at offsets %v", v, offs)
			r.Duplicates += len(offs) - 2 // one problem, every extra copy counted
		}
		if _, ok := producer[v]; !ok {
			r.problem(&r.Phantoms, "phantom: %q at offsets %v was never produced", v, offs)
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i] < acks[j] })
	for i := 1; i < len(acks); i++ {
		r.MaxAckGap = max(r.MaxAckGap, time.Duration(acks[i]-acks[i-1]))
	}
	return resolved
}

// checkReads checks each answered read against the final log and
// min_committed.
func (r *Report) checkReads(ops []Op, ref []string) {
	for i := range ops {
		op := &ops[i]
		if op.Kind != opRead {
			continue
		}
		r.Reads++
		if op.Outcome != outOK {
			r.FailedReads++
			continue
		}
		if op.Leader {
			r.LeaderReads++
		} else {
			r.FollowerReads++
		}
		for k, x := range op.Records {
			switch {
			case x.Offset != op.From+uint64(k):
				r.problem(&r.Diverged, "read answered offset %d as its record %d: %s", x.Offset, k, op)
			case x.Offset >= uint64(len(ref)):
				r.problem(&r.Diverged, "read returned %q at offset %d, beyond the final log's %d records: %s", x.Value, x.Offset, len(ref), op)
			case ref[x.Offset] != x.Value:
				r.problem(&r.Diverged, "read returned %q at offset %d, the final log holds %q: %s", x.Value, x.Offset, ref[x.Offset], op)
			}
		}
		if !op.PastEnd && op.Committed < op.From+uint64(len(op.Records)) {
			r.problem(&r.Diverged, "read returned records at or above its own watermark: %s", op)
		}
		if op.MinCommitted > 0 && (op.PastEnd || op.Committed <= op.MinCommitted ||
			op.From == op.MinCommitted && (len(op.Records) == 0 || op.Records[0].Offset != op.MinCommitted)) {
			r.problem(&r.ReadOwnWrites, "min_committed not honoured: %s", op)
		}
	}
}

// checkMonotonic checks that a node's watermark, as its answers show it,
// never goes back within one incarnation: a read that began after another
// read of the same node ended sees at least that read's watermark.
func (r *Report) checkMonotonic(ops []Op) {
	type key struct {
		node  string
		epoch int64
	}
	groups := map[key][]*Op{}
	for i := range ops {
		op := &ops[i]
		if op.Kind == opRead && op.Outcome == outOK && op.EpochCall == op.EpochReturn {
			k := key{op.Node, op.EpochCall}
			groups[k] = append(groups[k], op)
		}
	}
	for _, g := range groups {
		byReturn := slices.Clone(g)
		sort.Slice(byReturn, func(i, j int) bool { return byReturn[i].Return < byReturn[j].Return })
		sort.Slice(g, func(i, j int) bool { return g[i].Call < g[j].Call })
		j, seen := 0, uint64(0)
		var witness *Op
		for _, op := range g {
			for ; j < len(byReturn) && byReturn[j].Return < op.Call; j++ {
				if p := byReturn[j]; !p.PastEnd && p.Committed >= seen {
					seen, witness = p.Committed, p
				}
			}
			if witness == nil {
				continue
			}
			if !op.PastEnd && op.Committed < seen || op.PastEnd && op.From <= seen {
				r.problem(&r.NonMonotonic, "watermark went back: %s, after %s", op, witness)
			}
		}
	}
}

// checkStaleLeaderReads finds leader reads that missed a record whose
// append was acknowledged before the read began: the plain witness of the
// non-linearizability porcupine reports.
func (r *Report) checkStaleLeaderReads(ops []Op) {
	var acked []*Op
	for i := range ops {
		if ops[i].Kind == opAppend && ops[i].Outcome == outOK {
			acked = append(acked, &ops[i])
		}
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i].Return < acked[j].Return })
	// best[k] is the acked append with the largest end among acked[:k+1].
	best := make([]*Op, len(acked))
	for k, a := range acked {
		best[k] = a
		if k > 0 && best[k-1].End() > a.End() {
			best[k] = best[k-1]
		}
	}
	for i := range ops {
		op := &ops[i]
		if op.Kind != opRead || !op.Leader || op.Outcome != outOK || op.PastEnd && op.From == 0 {
			continue
		}
		k := sort.Search(len(acked), func(k int) bool { return acked[k].Return >= op.Call }) - 1
		if k < 0 {
			continue
		}
		seen := op.Committed // the watermark the read saw, at most
		if op.PastEnd {
			seen = op.From - 1
		}
		if b := best[k]; b.End() > seen {
			r.problem(&r.StaleLeader, "stale leader read: %s; %s had been acknowledged before it began", op, b)
		}
	}
}

// linInput and linOutput are porcupine's view of an operation.
type linInput struct {
	kind   opKind
	values []string // append
	from   uint64   // read
}

type linOutput struct {
	offset    uint64 // append: the first record's offset
	committed uint64 // read: the watermark
	pastEnd   bool   // read: the watermark was below from
	records   []rec  // read
}

// logModel is the log's sequential specification for porcupine. The
// state is the log's length: the final log (ref) fixes which value is at
// which offset, so an append is legal only where it put its records and a
// read only where the log had exactly the length it reported.
func logModel(ref []string) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return uint64(0) },
		Step: func(state, input, output any) (bool, any) {
			n, in, out := state.(uint64), input.(linInput), output.(linOutput)
			if in.kind == opAppend {
				if out.offset != n {
					return false, state
				}
				for k, v := range in.values {
					if n+uint64(k) >= uint64(len(ref)) || ref[n+uint64(k)] != v {
						return false, state
					}
				}
				return true, n + uint64(len(in.values))
			}
			if out.pastEnd {
				return n < in.from, state
			}
			if out.committed != n {
				return false, state
			}
			for _, x := range out.records {
				if x.Offset >= n || ref[x.Offset] != x.Value {
					return false, state
				}
			}
			return true, state
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(linInput), output.(linOutput)
			if in.kind == opAppend {
				return fmt.Sprintf("append(%s) -> %d", strings.Join(in.values, ","), out.offset)
			}
			if out.pastEnd {
				return fmt.Sprintf("read(%d) -> past the end", in.from)
			}
			return fmt.Sprintf("read(%d) -> %d records, watermark %d", in.from, len(out.records), out.committed)
		},
		DescribeState: func(state any) string { return fmt.Sprintf("length %d", state.(uint64)) },
	}
}

// linearize runs porcupine over the appends that took effect and the
// leader reads. Appends of unknown outcome that took effect get the offset
// the final log shows and return at the end of time; offsets no such
// append explains (phantoms, duplicates, misplaced records: reported
// above) are filled by appends that may happen at any time, so that the
// check still judges the reads.
func (r *Report) linearize(ops []Op, ref []string, resolved map[int]uint64, opts checkOptions) {
	var end int64
	for i := range ops {
		end = max(end, ops[i].Return)
	}
	forever := end + int64(time.Hour)
	filler := 0 // the client ID of the filling appends: one past the others
	for i := range ops {
		filler = max(filler, ops[i].Client+1)
	}
	covered := make([]bool, len(ref))
	var hist []porcupine.Operation
	for i := range ops {
		op := &ops[i]
		switch {
		case op.Kind == opAppend && (op.Outcome == outOK || op.Outcome == outUnknown):
			off, ok := resolved[i]
			if op.Outcome == outOK {
				off, ok = op.Offset, true // judged where it was acknowledged
			}
			if !ok {
				continue // unknown and absent: it did not happen
			}
			ret := op.Return
			if op.Outcome == outUnknown {
				ret = forever
			}
			hist = append(hist, porcupine.Operation{ClientId: op.Client, Call: op.Call, Return: ret,
				Input: linInput{kind: opAppend, values: op.Values}, Output: linOutput{offset: off}})
			if _, ok := resolved[i]; ok {
				for k := range op.Values {
					covered[off+uint64(k)] = true
				}
			}
		case op.Kind == opRead && op.Leader && op.Outcome == outOK:
			hist = append(hist, porcupine.Operation{ClientId: op.Client, Call: op.Call, Return: op.Return,
				Input:  linInput{kind: opRead, from: op.From},
				Output: linOutput{committed: op.Committed, pastEnd: op.PastEnd, records: op.Records}})
		}
	}
	for o, c := range covered {
		if !c {
			hist = append(hist, porcupine.Operation{ClientId: filler, Call: 0, Return: forever,
				Input: linInput{kind: opAppend, values: []string{ref[o]}}, Output: linOutput{offset: uint64(o)}})
		}
	}
	timeout := opts.LinearizeTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	model := logModel(ref)
	start := time.Now()
	r.Linearizable = porcupine.CheckOperationsTimeout(model, hist, timeout)
	r.LinearizeTime = time.Since(start)
	if r.Linearizable == porcupine.Unknown {
		r.Problems = append(r.Problems, fmt.Sprintf("porcupine did not decide within %v (%d operations)", timeout, len(hist)))
	}
	if r.Linearizable != porcupine.Illegal || opts.VizDir == "" {
		return
	}
	_, info := porcupine.CheckOperationsVerbose(model, hist, timeout)
	path := filepath.Join(opts.VizDir, fmt.Sprintf("linearizability-%d.html", time.Now().UnixNano()))
	if err := os.MkdirAll(opts.VizDir, 0o755); err == nil {
		if err := porcupine.VisualizePath(model, info, path); err == nil {
			r.Visualization = path
		}
	}
}
