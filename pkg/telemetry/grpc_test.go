package telemetry

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

// BenchmarkUnaryInterceptor is what the metrics cost a Produce call: a
// counter and a latency sample by method, and the records counter.
func BenchmarkUnaryInterceptor(b *testing.B) {
	if _, err := Setup(); err != nil {
		b.Fatal(err)
	}
	icpt := UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: loghousev1.Log_Produce_FullMethodName}
	resp := &loghousev1.ProduceResponse{Count: 1}
	handler := func(context.Context, any) (any, error) { return resp, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := icpt(context.Background(), nil, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}
