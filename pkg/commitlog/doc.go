// Package commitlog is Loghouse's storage engine: an append-only log of
// entries identified by a dense, increasing 64-bit index, kept as a
// directory of segments. It is built to be raft's LogStore: each entry
// carries raft's index, term and type, and the record offset and count of
// the records it holds, so a record is found by offset (and an entry by
// time) with binary searches. The package has no networking and no
// goroutines; DESIGN.md beside this file gives the reasons for the choices
// below.
//
// # Directory
//
// A log directory holds, per segment, three files named after the index of
// the segment's first entry (its base index), as 20 decimal digits so that
// names sort by index:
//
//	00000000000000000001.store      the entries
//	00000000000000000001.index      fixed-width index of the entries
//	00000000000000000001.timeindex  sparse time index (sealed segments only)
//
// A file named LOCK holds an exclusive flock(2) while the log is open, so two
// processes never append to the same log.
//
// The last segment is the active one (appended to); the others are sealed
// and never change, except that truncating a suffix can cut a sealed segment
// and make it active again. The store file defines a segment: an index or
// time index without a store is a leftover of an interrupted deletion and is
// removed on open, as is any "<segment file name>.tmp" (an interrupted
// atomic write). Other files are ignored and reported. A store whose header
// does not match its name is an error.
//
// Integers are little-endian. Checksums are CRC-32C (Castagnoli).
//
// # File header
//
// Every file starts with the same 64-byte header:
//
//	offset size field
//	0      8    magic: "LHSTORE\x00", "LHINDEX\x00" or "LHTIMEX\x00"
//	8      4    format version, 1
//	12     4    flags, 0
//	16     8    base index: index of the segment's first entry (>= 1)
//	24     8    base offset: record offset of the segment's first record
//	32     8    creation time, unix nanoseconds
//	40     8    start time: running maximum entry time before this
//	            segment (math.MinInt64 if none)
//	48     12   reserved, 0
//	60     4    CRC-32C of bytes 0..59
//
// The index and time index repeat their store's header with their own
// magic; a header that differs from the store's means the file belongs to
// another segment and is rebuilt.
//
// # Store file
//
// After the header come entries, back to back. Each is a 56-byte header,
// then the extensions, then the data:
//
//	offset size field
//	0      4    CRC-32C of bytes 4..55 of the header, the extensions and
//	            the data
//	4      4    data length
//	8      4    extensions length (data + extensions <= 1 GiB)
//	12     1    flags: bit 0 = last entry of an Append batch
//	13     1    type (raft log type)
//	14     2    reserved, 0
//	16     8    index
//	24     8    term
//	32     8    offset: record offset of the entry's first record
//	40     8    time, unix nanoseconds
//	48     4    count: records the entry holds (may be 0)
//	52     4    reserved, 0
//
// Within a log, entry indexes are dense (each is the previous plus one) and
// offsets are dense over records: an entry's offset is the previous entry's
// offset plus its count. The first entry of a segment has the segment's base
// index and base offset.
//
// The active segment's store file may be longer than its entries: past
// the last entry it holds zeros, space reserved ahead of the writes with
// fallocate (Options.Preallocate). With SyncAlways a background goroutine
// also writes zeros over that space ahead of the appender and syncs them,
// so that an append's fdatasync has no extent conversion to commit through
// the file system's journal (DESIGN.md, "Zeroing ahead"). A sealed store is
// exactly its entries: it is cut to them before it is sealed.
//
// # Index file
//
// After the header, one 16-byte entry per store entry, in order:
//
//	0      8    position of the entry in the store file
//	8      8    the entry's offset
//
// The index of the active segment is sized up front for MaxSegmentEntries
// entries (a sparse file) and mapped; entries past the segment's count are
// meaningless. A sealed segment's index is cut to exactly its entries. The
// number of entries is never read from the index: for a sealed segment it is
// the next segment's base index minus its own, and for the active segment it
// comes from scanning the store.
//
// # Time index file
//
// Written when a segment is sealed. After the header come 16-byte points,
// then an 8-byte trailer:
//
//	point:   0 8 running maximum entry time at and including the entry
//	         8 8 the entry's index
//	trailer: 0 4 number of points
//	         4 4 CRC-32C of everything before it (header and points)
//
// There is a point for the segment's first entry, and then for the first
// entry that starts at least TimeIndexInterval bytes after the previous
// point's entry. The running maximum makes the times non-decreasing, so the
// first entry at or after a time T is found by binary search over segments
// (a segment's newest time is the next segment's start time), then over
// points, then by scanning at most TimeIndexInterval bytes. A missing or
// damaged time index is rebuilt from its store.
//
// # Recovery
//
// Open reads every store's header, checks that base indexes and offsets
// ascend, and scans only the last store. The scan stops at the first entry
// that is torn (runs past the end of the file), fails its checksum, has
// reserved bits set, or breaks index or offset continuity. If everything from
// there to the end of the file is zero and the last entry ended a batch, that
// is preallocated space and the end is clean. Otherwise the store is cut back
// to the end of the last entry that ended a batch (so an Append is all or
// nothing across a crash), zeros included, and what was dropped is reported
// in Recovery and logged. The index is compared with the scan and rewritten
// where it differs. The last sealed segment is opened too, so that a store
// that does not continue it exactly (index and offset) is refused. Other
// sealed segments are checked when first opened (lazily):
// the first and last index entries must agree with the store; otherwise the
// index is rebuilt by scanning the store, and a corrupt entry found then is a
// *CorruptError naming the file and position. Every read verifies the entry's
// checksum and index.
package commitlog
