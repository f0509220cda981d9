package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/loghouse/loghouse/pkg/loadgen"
)

// The stream every JetStream run uses.
const (
	natsStream  = "BENCH"
	natsSubject = "bench"
)

// natsBench is the JetStream load generator, the counterpart of `loghoused
// bench` (same engine, same workloads):
//
//	compare nats-bench produce -url URL -workloads unary-1,stream-64 ...
//	compare nats-bench consume -url URL -records N ...
//
// Each producer has its own connection. A unary request is a synchronous
// js.Publish (one message, waits for its ack). The streaming workload
// publishes asynchronously with -batch × -inflight messages awaiting their
// acks per producer: as many records in flight as Loghouse's ProduceStream
// with the same flags. Each message counts when its ack arrives (latency is
// per message); grouping messages into requests that complete with their
// last ack would count nothing for a server whose acks for a full window
// take longer than the measured period (a sync-always R1 stream, one fsync
// per message). The consumer is
// an ordered consumer (the client library's defaults) from the start of
// the stream; one operation is -batch messages.
func natsBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "produce" && args[0] != "consume") {
		return errors.New("usage: compare nats-bench produce|consume [flags]")
	}
	fs := flag.NewFlagSet("nats-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var lf loadFlags
	lf.register(fs)
	url := fs.String("url", "", "server URL (the stream leader's)")
	records := fs.Int("records", 100_000, "consume: messages to read from the start (topped up first if the stream holds fewer)")
	consumeBatch := fs.Int("consume-batch", 1000, "consume: messages per measured operation")
	pullMax := fs.Int("pull-max", 0, "consume: the ordered consumer's PullMaxMessages buffer (0: the client's default)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline of set-up calls")
	lf.dir = "-" // unused here
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("nats-bench needs -url")
	}
	if args[0] == "consume" {
		res, err := natsConsume(ctx, *url, *records, *consumeBatch, *pullMax, lf.size, *timeout, lf)
		if err != nil {
			return err
		}
		return printResults(stdout, map[string]loadgen.Result{"consume": res})
	}
	if err := lf.parse(); err != nil {
		return err
	}
	out := map[string]loadgen.Result{}
	for _, w := range lf.parsed {
		res, err := natsProduce(ctx, *url, w, lf)
		if err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
		out[w.Name] = res
	}
	return printResults(stdout, out)
}

func natsProduce(ctx context.Context, url string, w workload, lf loadFlags) (loadgen.Result, error) {
	data := make([]byte, w.Size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	workers := make([]loadgen.Worker, w.Producers)
	for i := range workers {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprint("bench-", i)))
		if err != nil {
			return loadgen.Result{}, err
		}
		conns = append(conns, nc)
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(max(w.Batch*w.Inflight, 1)+1))
		if err != nil {
			return loadgen.Result{}, err
		}
		if !w.Stream {
			workers[i] = loadgen.Call(func(ctx context.Context) (int, error) {
				if _, err := js.Publish(ctx, natsSubject, data); err != nil {
					return 0, err
				}
				return 1, nil
			})
			continue
		}
		workers[i] = &natsAsync{js: js, data: data, pending: make(chan jetstream.PubAckFuture, w.Batch*w.Inflight)}
	}
	cfg := lf.config(w)
	if w.Stream {
		cfg.RecordsPerOp, cfg.Inflight = 1, w.Batch*w.Inflight
	}
	return loadgen.Run(ctx, cfg, workers)
}

// natsAsync publishes one message per operation, asynchronously; Recv
// waits for the oldest ack.
type natsAsync struct {
	js      jetstream.JetStream
	data    []byte
	pending chan jetstream.PubAckFuture
}

func (a *natsAsync) Send(context.Context) error {
	f, err := a.js.PublishAsync(natsSubject, a.data)
	if err != nil {
		return err
	}
	a.pending <- f // the window bounds the messages outstanding
	return nil
}

func (a *natsAsync) Recv(ctx context.Context) (int, error) {
	var f jetstream.PubAckFuture
	select {
	case f = <-a.pending:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case <-f.Ok():
		return 1, nil
	case err := <-f.Err():
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// natsConsume tops the stream up to records messages, reads them once to
// warm up (unmeasured), then reads them again, measured.
func natsConsume(ctx context.Context, url string, records, batch, pullMax, size int, timeout time.Duration, lf loadFlags) (loadgen.Result, error) {
	nc, err := nats.Connect(url, nats.Name("bench-consumer"))
	if err != nil {
		return loadgen.Result{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return loadgen.Result{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stream, err := js.Stream(sctx, natsStream)
	if err != nil {
		return loadgen.Result{}, err
	}
	info, err := stream.Info(sctx)
	if err != nil {
		return loadgen.Result{}, err
	}
	if missing := records - int(info.State.Msgs); missing > 0 {
		if err := natsTopUp(ctx, js, missing, size, timeout); err != nil {
			return loadgen.Result{}, err
		}
		if info, err = stream.Info(sctx); err != nil {
			return loadgen.Result{}, err
		}
		if int(info.State.Msgs) < records {
			return loadgen.Result{}, fmt.Errorf("the stream holds %d messages after topping up to %d", info.State.Msgs, records)
		}
	}
	var res loadgen.Result
	for pass := range 2 {
		cons, err := js.OrderedConsumer(sctx, natsStream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return loadgen.Result{}, err
		}
		var mopts []jetstream.PullMessagesOpt
		if pullMax > 0 {
			mopts = append(mopts, jetstream.PullMaxMessages(pullMax))
		}
		it, err := cons.Messages(mopts...)
		if err != nil {
			return loadgen.Result{}, err
		}
		w := &natsReader{it: it, left: records, batch: batch}
		cfg := loadgen.Config{RecordBytes: size, Duration: lf.duration}
		if pass == 0 {
			cfg.Duration = timeout // the warm pass reads everything
		}
		res, err = loadgen.Run(ctx, cfg, []loadgen.Worker{w})
		it.Stop()
		if err != nil {
			return res, err
		}
		if res.Errors > 0 {
			return res, errors.New(res.FirstError)
		}
	}
	return res, nil
}

// natsReader reads left messages, batch per operation.
type natsReader struct {
	it    jetstream.MessagesContext
	left  int
	batch int
}

func (*natsReader) Send(context.Context) error { return nil }

func (r *natsReader) Recv(ctx context.Context) (int, error) {
	if r.left <= 0 {
		return 0, loadgen.ErrDone
	}
	n := min(r.batch, r.left)
	for i := range n {
		if _, err := r.it.Next(jetstream.NextContext(ctx)); err != nil {
			return i, err
		}
	}
	r.left -= n
	return n, nil
}

// natsTopUp publishes n messages of size bytes, asynchronously, a
// thousand acks outstanding at most.
func natsTopUp(ctx context.Context, js jetstream.JetStream, n, size int, timeout time.Duration) error {
	data := make([]byte, size)
	t := time.NewTimer(timeout)
	defer t.Stop()
	for n > 0 {
		for range min(n, 1000) {
			if _, err := js.PublishAsync(natsSubject, data); err != nil {
				return err
			}
			n--
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-t.C:
			return fmt.Errorf("topping the stream up: acks not in after %s", timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
