package server

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// BenchmarkParseProduceRequest measures the codec's parse of one
// ProduceRequest into the record batch encoding: 64 records of 256 bytes
// (the compare workloads' requests), without and with a key and two
// headers per record.
func BenchmarkParseProduceRequest(b *testing.B) {
	for _, headers := range []bool{false, true} {
		req := &loghousev1.ProduceRequest{Sequence: 1, Records: values("bench", 64, benchRecordBytes)}
		if headers {
			for _, r := range req.Records {
				r.Key = []byte("key-0123")
				r.Headers = []*loghousev1.Header{{Key: "trace", Value: []byte("0af7651916cd43dd")}, {Key: "type", Value: []byte("order")}}
			}
		}
		wire, err := proto.Marshal(req)
		if err != nil {
			b.Fatal(err)
		}
		lim := Config{}.withDefaults().limits()
		b.Run(fmt.Sprintf("records=64/headers=%t", headers), func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				var m produceMsg
				m.parse(wire, lim)
				if m.err != nil || m.count != 64 {
					b.Fatal(m.err, m.count)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/record")
		})
	}
}
