package commitlog

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/vfs"
)

// SyncPolicy says when appended data is made durable.
type SyncPolicy int

const (
	// SyncAlways makes every Append durable (fdatasync) before it returns.
	SyncAlways SyncPolicy = iota
	// SyncNone leaves flushing to the operating system; a crash of the
	// machine can lose recent appends (a process crash cannot). Segments
	// are still synced when they are sealed.
	SyncNone
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// ParseSyncPolicy parses "always" or "none".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "always":
		return SyncAlways, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("%w: sync policy %q: want \"always\" or \"none\"", ErrInvalidOptions, s)
}

// Defaults, chosen for production (see DESIGN.md for the reasons).
const (
	DefaultMaxSegmentBytes   = 64 << 20
	DefaultMaxSegmentEntries = 1 << 20
	DefaultMaxEntryBytes     = 8 << 20
	DefaultTimeIndexInterval = 4 << 10
	DefaultMaxOpenSegments   = 64
	DefaultPreallocate       = 8 << 20
	DefaultWritebackBytes    = 8 << 20
)

// Options configure a Log. The zero value of each field means its default.
type Options struct {
	// Logger receives recovery reports and warnings. Default: discard.
	Logger hclog.Logger
	// FS is the file system. Default: vfs.OS{}.
	FS vfs.FS
	// Sync is the durability policy. Default: SyncAlways.
	Sync SyncPolicy
	// MaxSegmentBytes rolls the active segment once its store would grow
	// past this size. A single batch larger than this still fits in a
	// segment of its own. Default: 64 MiB.
	MaxSegmentBytes int64
	// MaxSegmentEntries is the capacity of a segment's index, in entries.
	// Default: 1Mi entries (a 16 MiB sparse index file while active).
	MaxSegmentEntries int
	// MaxSegmentAge rolls the active segment once it is this old, so that
	// age-based retention can delete data with this granularity. Zero:
	// segments roll by size only.
	MaxSegmentAge time.Duration
	// MaxEntryBytes bounds one entry's payload (extensions plus data).
	// Default: 8 MiB. It must not exceed MaxSegmentBytes.
	MaxEntryBytes int
	// TimeIndexInterval is how many store bytes lie at most between two
	// points of the sparse time index. Default: 4 KiB.
	TimeIndexInterval int
	// MaxOpenSegments bounds how many sealed segments keep their files
	// open and mapped at once (the active segment is always open).
	// Default: 64.
	MaxOpenSegments int
	// Preallocate is how far ahead of its writes the active store file is
	// extended with allocated, zeroed blocks (fallocate), a chunk at a
	// time and never past MaxSegmentBytes. An fdatasync after a write
	// into allocated blocks has no block allocation or size change to
	// commit, which makes it markedly cheaper on ext4 and XFS. Recovery
	// tells the zeroed tail from a torn write, and a store is cut to its
	// entries when it is sealed. Default: 8 MiB; negative: never (each
	// write extends the file). File systems that cannot preallocate are
	// detected and written the plain way. With SyncAlways, a Preallocate
	// of 64 KiB or more and a file system that implements vfs.ZeroFiller
	// (vfs.OS does), the reserved space is also zeroed and synced in the
	// background ahead of the writes (DESIGN.md, "Zeroing ahead").
	Preallocate int64
	// WritebackBytes, with SyncNone, makes the appender start the kernel's
	// writeback of the active store each time this many bytes have been
	// written since it last did (sync_file_range(2), without waiting), so
	// that the fdatasync that seals a segment finds little left to write
	// instead of the whole segment: that sync runs inside an append, and
	// an append under raft holds up every write behind it (DESIGN.md,
	// "Writeback behind the appender"). Like RocksDB's bytes_per_sync, it
	// makes nothing durable. Default: 8 MiB; negative: never. Ignored
	// with SyncAlways, whose appends are synced anyway.
	WritebackBytes int64
	// InitialIndex is the index of the first entry of a new, empty log.
	// Default: 1.
	InitialIndex uint64
	// RetentionBytes makes ApplyRetention delete the oldest sealed segments
	// while the log is larger than this. Zero: no size limit.
	RetentionBytes int64
	// RetentionAge makes ApplyRetention delete sealed segments whose newest
	// entry is older than this. Zero: no age limit.
	RetentionAge time.Duration
	// Now is the clock, for tests. Default: time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.FS == nil {
		o.FS = vfs.OS{}
	}
	if o.MaxSegmentBytes == 0 {
		o.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if o.MaxSegmentEntries == 0 {
		o.MaxSegmentEntries = DefaultMaxSegmentEntries
	}
	if o.MaxEntryBytes == 0 {
		o.MaxEntryBytes = DefaultMaxEntryBytes
		if int64(o.MaxEntryBytes) > o.MaxSegmentBytes {
			o.MaxEntryBytes = int(o.MaxSegmentBytes)
		}
	}
	if o.TimeIndexInterval == 0 {
		o.TimeIndexInterval = DefaultTimeIndexInterval
	}
	if o.MaxOpenSegments == 0 {
		o.MaxOpenSegments = DefaultMaxOpenSegments
	}
	if o.InitialIndex == 0 {
		o.InitialIndex = 1
	}
	if o.Preallocate == 0 {
		o.Preallocate = DefaultPreallocate
	}
	if o.WritebackBytes == 0 {
		o.WritebackBytes = DefaultWritebackBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate checks the options after defaults are applied.
func (o Options) validate() error {
	var problems []string
	if o.Sync != SyncAlways && o.Sync != SyncNone {
		problems = append(problems, fmt.Sprintf("sync policy %d is not SyncAlways or SyncNone", int(o.Sync)))
	}
	if o.MaxSegmentBytes < fileHeaderSize+entryHeaderSize {
		problems = append(problems, fmt.Sprintf("MaxSegmentBytes %d is below the minimum of %d", o.MaxSegmentBytes, fileHeaderSize+entryHeaderSize))
	}
	if o.MaxSegmentEntries < 1 || o.MaxSegmentEntries > 1<<28 {
		problems = append(problems, fmt.Sprintf("MaxSegmentEntries %d is outside [1, %d]", o.MaxSegmentEntries, 1<<28))
	}
	if o.MaxEntryBytes < 0 || o.MaxEntryBytes > maxFormatEntryBytes {
		problems = append(problems, fmt.Sprintf("MaxEntryBytes %d is outside [0, %d]", o.MaxEntryBytes, maxFormatEntryBytes))
	}
	if int64(o.MaxEntryBytes) > o.MaxSegmentBytes {
		problems = append(problems, fmt.Sprintf("MaxEntryBytes %d exceeds MaxSegmentBytes %d", o.MaxEntryBytes, o.MaxSegmentBytes))
	}
	if o.TimeIndexInterval < 1 {
		problems = append(problems, fmt.Sprintf("TimeIndexInterval %d must be positive", o.TimeIndexInterval))
	}
	if o.MaxOpenSegments < 1 {
		problems = append(problems, fmt.Sprintf("MaxOpenSegments %d must be positive", o.MaxOpenSegments))
	}
	if o.MaxSegmentAge < 0 || o.RetentionAge < 0 || o.RetentionBytes < 0 {
		problems = append(problems, "MaxSegmentAge, RetentionAge and RetentionBytes must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(problems, "; "))
	}
	return nil
}
