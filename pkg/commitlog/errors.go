package commitlog

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by the log wrap these with context; test
// for them with errors.Is.
var (
	// ErrOutOfRange means an index, offset or time lies outside what the
	// log holds (before its first entry, or after its last).
	ErrOutOfRange = errors.New("commitlog: out of range")
	// ErrCorrupt means stored data failed a check (checksum, framing,
	// header). A *CorruptError carries the file and position.
	ErrCorrupt = errors.New("commitlog: corrupt data")
	// ErrEntryTooLarge means an entry's payload exceeds Options.MaxEntryBytes.
	ErrEntryTooLarge = errors.New("commitlog: entry too large")
	// ErrInvalidBatch means a batch given to Append is malformed: empty,
	// not dense, not starting at the log's next index, or larger than a
	// segment's index can hold.
	ErrInvalidBatch = errors.New("commitlog: invalid batch")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("commitlog: log closed")
	// ErrFailed means an earlier fsync or a failed clean-up left the
	// on-disk state unknown; the log refuses writes until it is reopened,
	// which recovers from what is on disk. Reads of what was already
	// visible keep working.
	ErrFailed = errors.New("commitlog: log failed; reopen to recover")
	// ErrInvalidOptions means Options failed validation.
	ErrInvalidOptions = errors.New("commitlog: invalid options")
)

// CorruptError says where corrupt data was found. It wraps ErrCorrupt.
type CorruptError struct {
	File   string // path of the file
	Pos    int64  // byte position in the file
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("commitlog: corrupt data in %s at byte %d: %s", e.File, e.Pos, e.Reason)
}

// Unwrap lets errors.Is(err, ErrCorrupt) match.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
