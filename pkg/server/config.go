package server

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/membership"
	"github.com/loghouse/loghouse/pkg/record"
	"github.com/loghouse/loghouse/pkg/replication"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// Authorizer decides whether an identity may take an action (auth.Action*).
// *auth.Authorizer implements it: nil allows; an error wrapping
// auth.ErrPermissionDenied denies; auth.ErrNoIdentity refuses an empty
// identity.
type Authorizer interface {
	Authorize(subject, action string) error
}

// Defaults for the zero fields of Config.
const (
	DefaultMaxRecordBytes     = 1 << 20
	DefaultMaxRequestRecords  = 10_000
	DefaultMaxBatchBytes      = 1 << 20
	DefaultConsumeMaxRecords  = 1000
	DefaultConsumeMaxBytes    = 1 << 20
	DefaultApplyTimeout       = 10 * time.Second
	DefaultMaxInflightApplies = 2
	DefaultProduceStreamDepth = 128
)

// ErrInvalidConfig means a Config failed validation.
var ErrInvalidConfig = errors.New("server: invalid config")

// Config configures a Server. Zero numeric fields take the defaults above.
type Config struct {
	// Node is the replica the server serves. Required.
	Node *replication.Node
	// Authorizer decides every call. Required.
	Authorizer Authorizer
	// TLS is the node's certificate store. With it, a follower forwards
	// writes to the leader (presenting its server certificate, naming the
	// client's identity in ForwardedForKey); without it, a follower
	// refuses writes with Unavailable and the leader's address.
	TLS *tlsutil.Store
	// Members lists the gossip members for the Members call; nil: the
	// call answers FailedPrecondition (no gossip).
	Members func() []membership.Member
	// Logger is the server's logger. Default: discard.
	Logger hclog.Logger

	// MaxRecordBytes bounds one record: its key, value and headers as
	// encoded in a batch (record.Record.EncodedSize). Default: 1 MiB.
	MaxRecordBytes int
	// MaxRequestRecords bounds the records of one produce request.
	// Default: 10,000.
	MaxRequestRecords int
	// MaxBatchBytes bounds the records of one group-commit batch, and so
	// of one raft entry (which adds a 5-byte batch header). A request is
	// never split, so it bounds a request too. It must stay below the
	// commit log's MaxEntryBytes (8 MiB by default): a leader whose log
	// refuses an entry steps down. Default: 1 MiB.
	MaxBatchBytes int
	// ConsumeMaxRecords bounds the records of one consume response (a
	// request may ask for fewer). Default: 1000.
	ConsumeMaxRecords int
	// ConsumeMaxBytes bounds the record bytes of one consume response; a
	// response holds at least one record. Default: 1 MiB.
	ConsumeMaxBytes int
	// ApplyTimeout bounds how long a batch waits to be handed to raft
	// (raft.Apply's enqueue timeout). Default: 10s.
	ApplyTimeout time.Duration
	// MaxInflightApplies bounds the batches handed to raft and not yet
	// committed. While that many are in flight, new requests queue and
	// the next batch grows. Smaller values give bigger batches (fewer raft
	// entries); see DESIGN.md for the measurements. Up to twice as many
	// may be in flight while the queue holds a whole batch (MaxBatchBytes),
	// which cannot grow any more. Default: 2.
	MaxInflightApplies int
	// ProduceStreamDepth bounds the requests of one ProduceStream that
	// are received but not yet answered; the stream stops reading while
	// it is reached (backpressure). Default: 128.
	ProduceStreamDepth int
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setInt(&c.MaxRecordBytes, DefaultMaxRecordBytes)
	setInt(&c.MaxRequestRecords, DefaultMaxRequestRecords)
	setInt(&c.MaxBatchBytes, DefaultMaxBatchBytes)
	setInt(&c.ConsumeMaxRecords, DefaultConsumeMaxRecords)
	setInt(&c.ConsumeMaxBytes, DefaultConsumeMaxBytes)
	setInt(&c.MaxInflightApplies, DefaultMaxInflightApplies)
	setInt(&c.ProduceStreamDepth, DefaultProduceStreamDepth)
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = DefaultApplyTimeout
	}
	return c
}

// validate checks a Config after defaults, with cross-field checks.
func (c Config) validate() error {
	var problems []string
	if c.Node == nil {
		problems = append(problems, "Node is required")
	}
	if c.Authorizer == nil {
		problems = append(problems, "Authorizer is required")
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxRecordBytes", c.MaxRecordBytes},
		{"MaxRequestRecords", c.MaxRequestRecords},
		{"MaxBatchBytes", c.MaxBatchBytes},
		{"ConsumeMaxRecords", c.ConsumeMaxRecords},
		{"ConsumeMaxBytes", c.ConsumeMaxBytes},
		{"MaxInflightApplies", c.MaxInflightApplies},
		{"ProduceStreamDepth", c.ProduceStreamDepth},
	} {
		if f.v < 0 {
			problems = append(problems, fmt.Sprintf("%s %d must not be negative", f.name, f.v))
		}
	}
	if c.ApplyTimeout < 0 {
		problems = append(problems, fmt.Sprintf("ApplyTimeout %s must not be negative", c.ApplyTimeout))
	}
	if c.MaxRecordBytes > c.MaxBatchBytes {
		problems = append(problems, fmt.Sprintf("MaxRecordBytes %d exceeds MaxBatchBytes %d: such a record could never be committed", c.MaxRecordBytes, c.MaxBatchBytes))
	}
	if c.MaxRequestRecords > record.MaxRecords {
		problems = append(problems, fmt.Sprintf("MaxRequestRecords %d exceeds the %d records a batch may hold", c.MaxRequestRecords, record.MaxRecords))
	}
	if c.MaxBatchBytes > maxBatchBytesLimit {
		problems = append(problems, fmt.Sprintf("MaxBatchBytes %d exceeds %d, the most a commit log entry may ever hold", c.MaxBatchBytes, maxBatchBytesLimit))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return nil
}

// maxBatchBytesLimit keeps a batch under the commit log's format limit of
// 1 GiB per entry, whatever the log's MaxEntryBytes.
const maxBatchBytesLimit = 1<<30 - 1<<10
