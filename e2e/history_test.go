package e2e

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// opKind is what an operation did.
type opKind uint8

const (
	opAppend opKind = iota + 1 // Produce of one or more records
	opRead                     // Consume from an offset
)

// outcome is what the client learned.
type outcome uint8

const (
	outOK      outcome = iota + 1 // acknowledged
	outFail                       // refused: nothing was stored
	outUnknown                    // may or may not have taken effect
)

func (o outcome) String() string {
	switch o {
	case outOK:
		return "ok"
	case outFail:
		return "fail"
	case outUnknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", o)
}

// rec is a record as read: its offset and value.
type rec struct {
	Offset uint64
	Value  string
}

// Op is one operation of the history: what was asked, of which node, when
// (nanoseconds since the history began, on the monotonic clock), and what
// came back.
type Op struct {
	Kind    opKind
	Client  int    // the worker that issued it; a worker's ops never overlap
	Node    string // the node the call went to
	Call    int64
	Return  int64
	Outcome outcome
	Err     string // the error, if any

	// Appends.
	Values []string // the records' values, unique in the whole run
	Offset uint64   // the first record's offset, when acknowledged

	// Reads.
	From         uint64 // the requested offset
	MinCommitted uint64 // min_committed of the request (0: none)
	// Leader: the node said it was the leader, in one and the same term,
	// just before and just after the read; a leader read must be
	// linearizable.
	Leader bool
	// EpochCall and EpochReturn are the node's incarnation before and
	// after the call (they differ if the node restarted meanwhile).
	EpochCall, EpochReturn int64
	Records                []rec
	// Committed is the node's commit watermark in the answer.
	Committed uint64
	// PastEnd: the node answered OutOfRange, i.e. its watermark was below
	// From.
	PastEnd bool
}

// End is one past the last offset an acknowledged append took.
func (o *Op) End() uint64 { return o.Offset + uint64(len(o.Values)) }

func (o *Op) String() string {
	at := fmt.Sprintf("[%v, %v]", time.Duration(o.Call), time.Duration(o.Return))
	switch o.Kind {
	case opAppend:
		s := fmt.Sprintf("client %d append %q to %s %s: %s", o.Client, o.Values, o.Node, at, o.Outcome)
		if o.Outcome == outOK {
			s += fmt.Sprintf(" at offset %d", o.Offset)
		}
		if o.Err != "" {
			s += " (" + o.Err + ")"
		}
		return s
	case opRead:
		kind := "follower read"
		if o.Leader {
			kind = "leader read"
		}
		node := fmt.Sprintf("%s#%d", o.Node, o.EpochCall) // #incarnation
		if o.EpochReturn != o.EpochCall {
			node += fmt.Sprintf("-%d", o.EpochReturn)
		}
		s := fmt.Sprintf("client %d %s of %s from %d %s", o.Client, kind, node, o.From, at)
		if o.MinCommitted > 0 {
			s += fmt.Sprintf(" min_committed %d", o.MinCommitted)
		}
		switch {
		case o.Outcome != outOK:
			s += ": " + o.Outcome.String() + " (" + o.Err + ")"
		case o.PastEnd:
			s += fmt.Sprintf(": past the end (watermark < %d)", o.From)
		default:
			s += fmt.Sprintf(": %d records, watermark %d", len(o.Records), o.Committed)
		}
		return s
	}
	return "op?"
}

// History records operations from many goroutines.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts a history now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the time on the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records a completed operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns the operations sorted by call time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	out := append([]Op(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// classifyWrite says what a failed produce means for its records, and
// names the leader if the error does. Only an error that says so (a
// loghousev1.Error detail with indeterminate unset, or a request the
// server refused before it reached raft) is a definite failure; a
// deadline, a broken connection or anything unexpected is an unknown
// outcome.
func classifyWrite(err error) (outcome, string) {
	st, ok := status.FromError(err)
	if !ok {
		return outUnknown, ""
	}
	var detail *loghousev1.Error
	for _, d := range st.Details() {
		if e, ok := d.(*loghousev1.Error); ok {
			detail = e
		}
	}
	leader := detail.GetLeaderAddr()
	switch st.Code() {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated:
		return outFail, leader
	case codes.Unavailable, codes.FailedPrecondition:
		if detail != nil && !detail.GetIndeterminate() {
			return outFail, leader
		}
	}
	return outUnknown, leader
}

// errString is a short form of a gRPC error for the history.
func errString(err error) string {
	if st, ok := status.FromError(err); ok {
		msg := st.Message()
		if len(msg) > 120 {
			msg = msg[:120] + "…"
		}
		return st.Code().String() + ": " + msg
	}
	return strings.TrimSpace(err.Error())
}
