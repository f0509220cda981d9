package client

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

var (
	// ErrIndeterminate is wrapped by the error of a write whose outcome is
	// unknown: it reached a server and failed in a way that does not say
	// whether the records were committed. The Client never retries such a
	// write (see the package doc). The error also wraps the gRPC status.
	ErrIndeterminate = errors.New("client: outcome unknown, the records may or may not have been committed")
	// ErrClosed is returned by calls on a closed Client, Producer or
	// RecordStream, and by calls a Producer's Close found queued.
	ErrClosed = errors.New("client: closed")
	// ErrNoLeader is wrapped, with an Unavailable status, when no server
	// knows a leader (an election is under way or has no quorum).
	ErrNoLeader = errors.New("client: no leader is known")
	// ErrOffsetGap is returned by a RecordStream whose server sent a record
	// after the one it expects next; the stream stops rather than skip a
	// record.
	ErrOffsetGap = errors.New("client: consumer stream skipped offsets")
)

// leaderTrailer is the trailer in which a server that refuses a request
// names the leader (server.LeaderTrailer; not imported, to keep the
// server's dependencies out of clients).
const leaderTrailer = "loghouse-leader"

// errNoLeader is ErrNoLeader as an Unavailable status error.
func errNoLeader() error {
	return fmt.Errorf("%w: %w", ErrNoLeader, status.Error(codes.Unavailable, "no server knows a leader"))
}

// indeterminate wraps a write's error in ErrIndeterminate.
func indeterminate(err error) error {
	return fmt.Errorf("%w: %w", ErrIndeterminate, err)
}

// verdict is what a call does after an attempt failed.
type verdict int

const (
	// final: return the error as it is.
	final verdict = iota
	// retry: nothing was done; try again, on another server or the leader.
	retry
	// unknown: a write that may or may not have been committed; return it
	// wrapped in ErrIndeterminate.
	unknown
)

func (v verdict) String() string {
	switch v {
	case final:
		return "final"
	case retry:
		return "retry"
	case unknown:
		return "indeterminate"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// failure is the classification of a failed attempt.
type failure struct {
	verdict verdict
	// leader is the leader's address as the server named it, if it did.
	leader string
}

// classify decides what to do about err, the failure of one attempt.
// write says the call stores records (Produce); sent says the request
// reached a server's transport (gRPC reported a peer), so that a broken
// connection may have delivered it; trailer is the call's trailer.
//
// Reads retry on Unavailable. Writes retry only on Unavailable that proves
// nothing was stored: the server's loghousev1.Error detail says the write
// was not indeterminate, or the request never left the client. The rules
// are spelled out in the package doc.
func classify(err error, write, sent bool, trailer metadata.MD) failure {
	st := status.Convert(err)
	var detail *loghousev1.Error
	for _, d := range st.Details() {
		if e, ok := d.(*loghousev1.Error); ok {
			detail = e
		}
	}
	f := failure{verdict: final}
	if detail != nil && detail.LeaderAddr != "" {
		f.leader = detail.LeaderAddr
	} else if v := trailer.Get(leaderTrailer); len(v) > 0 {
		f.leader = v[len(v)-1]
	}
	code := st.Code()
	if !write {
		if code == codes.Unavailable {
			f.verdict = retry
		}
		return f
	}
	switch code {
	case codes.Unavailable:
		switch {
		case detail != nil && detail.Indeterminate:
			f.verdict = unknown
		case detail != nil, !sent:
			f.verdict = retry
		default:
			// The connection failed after the request went out.
			f.verdict = unknown
		}
	case codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal, codes.Aborted, codes.DataLoss:
		if sent {
			f.verdict = unknown
		}
	}
	return f
}
