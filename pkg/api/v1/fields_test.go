package loghousev1

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestFieldNumbers: the Field constants are log.proto's numbers, and each
// message's fields are all named here, so a field added to log.proto
// fails this test until the hand-written codecs have been looked at.
func TestFieldNumbers(t *testing.T) {
	tests := []struct {
		msg    proto.Message
		fields map[protoreflect.Name]protowire.Number
	}{
		{&ProduceRequest{}, map[protoreflect.Name]protowire.Number{
			"records": FieldProduceRequestRecords, "sequence": FieldProduceRequestSequence}},
		{&ConsumeResponse{}, map[protoreflect.Name]protowire.Number{
			"records": FieldConsumeResponseRecords, "next_offset": FieldConsumeResponseNextOffset,
			"first_offset": FieldConsumeResponseFirstOffset, "committed_offset": FieldConsumeResponseCommittedOffset}},
		{&Record{}, map[protoreflect.Name]protowire.Number{
			"value": FieldRecordValue, "offset": FieldRecordOffset, "timestamp_unix_nano": FieldRecordTimestamp,
			"key": FieldRecordKey, "headers": FieldRecordHeaders}},
		{&Header{}, map[protoreflect.Name]protowire.Number{"key": FieldHeaderKey, "value": FieldHeaderValue}},
	}
	for _, tt := range tests {
		d := tt.msg.ProtoReflect().Descriptor()
		if d.Fields().Len() != len(tt.fields) {
			t.Errorf("%s has %d fields, the constants name %d", d.FullName(), d.Fields().Len(), len(tt.fields))
		}
		for name, num := range tt.fields {
			f := d.Fields().ByName(name)
			if f == nil || f.Number() != num {
				t.Errorf("%s.%s: constant %d, log.proto %v", d.FullName(), name, num, f)
			}
		}
	}
}
