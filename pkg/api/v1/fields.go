package loghousev1

import "google.golang.org/protobuf/encoding/protowire"

// Field numbers of log.proto's messages on the produce and consume paths,
// for the hand-written codecs that parse and build them without protobuf's
// reflection (pkg/server's produce parser and consume encoder, pkg/client's
// consume decoder). TestFieldNumbers checks them against log.proto.
const (
	FieldProduceRequestRecords          protowire.Number = 1
	FieldProduceRequestSequence         protowire.Number = 2
	FieldConsumeResponseRecords         protowire.Number = 1
	FieldConsumeResponseNextOffset      protowire.Number = 2
	FieldConsumeResponseFirstOffset     protowire.Number = 3
	FieldConsumeResponseCommittedOffset protowire.Number = 4
	FieldRecordValue                    protowire.Number = 1
	FieldRecordOffset                   protowire.Number = 2
	FieldRecordTimestamp                protowire.Number = 3
	FieldRecordKey                      protowire.Number = 4
	FieldRecordHeaders                  protowire.Number = 5
	FieldHeaderKey                      protowire.Number = 1
	FieldHeaderValue                    protowire.Number = 2
)
