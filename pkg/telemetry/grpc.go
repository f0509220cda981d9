package telemetry

import (
	"context"
	"path"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
)

var (
	rpcCalls       = Key("rpc", "calls")
	rpcLatency     = Key("rpc", "latency_ms")
	produceRecords = Key("produce", "records")
	consumeRecords = Key("consume", "records")
)

// UnaryServerInterceptor counts and times every unary call, and counts
// the records of successful Produce and Consume calls. Put it first, so
// refused calls are counted too.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		observe(info.FullMethod, start, err)
		if err == nil {
			countRecords(resp)
		}
		return resp, err
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams: the
// records of every sent ProduceResponse (without error) and
// ConsumeResponse are counted as they go.
func StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, countingStream{ss})
		observe(info.FullMethod, start, err)
		return err
	}
}

type countingStream struct{ grpc.ServerStream }

func (s countingStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		countRecords(m)
	}
	return err
}

func observe(method string, start time.Time, err error) {
	name := path.Base(method)
	metrics.IncrCounterWithLabels(rpcCalls, 1, []metrics.Label{{Name: "method", Value: name}, {Name: "code", Value: status.Code(err).String()}})
	metrics.MeasureSinceWithLabels(rpcLatency, start, []metrics.Label{{Name: "method", Value: name}})
}

func countRecords(m any) {
	switch r := m.(type) {
	case *loghousev1.ProduceResponse:
		if r.GetError() == nil && r.GetCount() > 0 {
			metrics.IncrCounter(produceRecords, float32(r.GetCount()))
		}
	case *loghousev1.ConsumeResponse:
		if n := len(r.GetRecords()); n > 0 {
			metrics.IncrCounter(consumeRecords, float32(n))
		}
	}
}
