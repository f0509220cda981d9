package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/loghouse/loghouse/pkg/agent"
	"github.com/loghouse/loghouse/pkg/client"
	"github.com/loghouse/loghouse/pkg/config"
	"github.com/loghouse/loghouse/pkg/loadgen"
)

// benchJSON is what "bench ... -json" prints.
type benchJSON struct {
	benchDesc
	Result loadgen.Result `json:"result"`
}

// runBenchCmd runs "loghoused bench args..." in-process.
func runBenchCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = runBench(ctx, args, &out, &errOut)
	t.Logf("loghoused bench %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errOut.String())
	return out.String(), errOut.String(), err
}

func runBenchJSON(t *testing.T, args ...string) (benchJSON, error) {
	t.Helper()
	out, _, err := runBenchCmd(t, append(args, "-json", "-progress", "0")...)
	var got benchJSON
	if jerr := json.Unmarshal([]byte(out), &got); jerr != nil {
		t.Fatalf("bench -json printed %q: %v (command: %v)", out, jerr, err)
	}
	return got, err
}

// devAgent starts an in-process dev agent and points the client
// environment at it, as "eval $(loghoused agent -dev)" would.
func devAgent(t *testing.T) *agent.Agent {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.NodeName, cfg.Ports.RPC = t.TempDir(), "bench1", 0
	logger := hclog.New(&hclog.LoggerOptions{Name: "agent", Output: logWriter{t}, Level: hclog.Warn})
	a, err := agent.New(cfg, agent.Options{Dev: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Shutdown(); err != nil {
			t.Errorf("agent shutdown: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(a.DevExports()), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			t.Fatalf("dev exports line %q", line)
		}
		t.Setenv(k, v)
	}
	return a
}

func TestBenchUsage(t *testing.T) {
	for _, env := range []string{client.EnvAddr, client.EnvCACert, client.EnvClientCert, client.EnvClientKey} {
		t.Setenv(env, "")
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "bench produce|consume"},
		{"unknown subcommand", []string{"fetch"}, "bench produce|consume"},
		{"no producers", []string{"produce", "-producers", "0"}, "-producers must be positive"},
		{"no consumers", []string{"consume", "-consumers", "0"}, "-consumers must be positive"},
		{"negative conns", []string{"produce", "-conns", "-1"}, "-conns"},
		{"zero batch", []string{"produce", "-batch", "0"}, "-batch must be positive"},
		{"zero inflight", []string{"produce", "-stream", "-inflight", "0"}, "-inflight must be positive"},
		{"shared stream", []string{"produce", "-stream", "-shared"}, "-shared and -stream exclude each other"},
		{"negative size", []string{"produce", "-size", "-1"}, "-size"},
		{"negative rate", []string{"produce", "-rate", "-5"}, "-rate"},
		{"zero duration", []string{"produce", "-duration", "0s"}, "-duration must be positive"},
		{"negative warm-up", []string{"consume", "-warmup", "-1s"}, "-warmup"},
		{"an argument", []string{"produce", "x"}, "takes no arguments"},
		{"a bad flag", []string{"consume", "-follow"}, "not defined"},
		{"no cluster", []string{"produce"}, "set -addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runBenchCmd(t, tt.args...)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("bench %q = %v; want a usage error mentioning %q", tt.args, err, tt.want)
			}
		})
	}
	for _, args := range [][]string{{"help"}, {"produce", "-h"}, {"consume", "-h"}} {
		if _, _, err := runBenchCmd(t, args...); err != nil {
			t.Fatalf("bench %q = %v", args, err)
		}
	}
}

// checkResult checks what every successful run must satisfy.
func checkResult(t *testing.T, got benchJSON) {
	t.Helper()
	r := got.Result
	l := r.Latency
	if r.Records <= 0 || r.Ops <= 0 || r.Errors != 0 || r.RecordsPerSec <= 0 || r.MBPerSec <= 0 || r.ElapsedSec <= 0 {
		t.Fatalf("result %+v", r)
	}
	if l.Count != uint64(r.Ops) || !(l.MinMs <= l.P50Ms && l.P50Ms <= l.P90Ms && l.P90Ms <= l.P99Ms && l.P99Ms <= l.P999Ms && l.P999Ms <= l.MaxMs) || l.P50Ms <= 0 {
		t.Fatalf("latency %+v", l)
	}
}

// TestBenchAgainstDevAgent runs the bench commands, with tiny durations,
// against a dev agent: unary and streaming produce, the open loop, the
// text output with its progress line, both consume modes, and a failing
// run.
func TestBenchAgainstDevAgent(t *testing.T) {
	a := devAgent(t)
	short := []string{"-duration", "300ms", "-warmup", "100ms"}

	t.Run("produce unary", func(t *testing.T) {
		got, err := runBenchJSON(t, append([]string{"produce", "-producers", "3", "-conns", "2", "-batch", "4", "-size", "100"}, short...)...)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, got)
		if got.Command != "produce" || got.Target != a.Addr() || got.Clients != 3 || got.Conns != 2 || got.Stream || got.Result.Records != 4*got.Result.Ops || got.Result.RecordBytes != 100 {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("produce stream", func(t *testing.T) {
		got, err := runBenchJSON(t, append([]string{"produce", "-producers", "2", "-stream", "-inflight", "4", "-batch", "16"}, short...)...)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, got)
		if !got.Stream || got.Inflight != 4 || got.Conns != 2 || got.Result.Records != 16*got.Result.Ops {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("produce shared", func(t *testing.T) {
		got, err := runBenchJSON(t, append([]string{"produce", "-producers", "8", "-shared", "-batch", "2"}, short...)...)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, got)
		if !got.Shared || got.Stream || got.Conns != 1 || got.Result.Records != 2*got.Result.Ops {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("produce open loop", func(t *testing.T) {
		// 400 records/s in requests of 2 over 500ms: about 100
		// requests, the rate met, not exceeded.
		got, err := runBenchJSON(t, "produce", "-producers", "2", "-batch", "2", "-rate", "400", "-duration", "500ms", "-warmup", "100ms")
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, got)
		if got.Rate != 400 || got.Result.Ops < 90 || got.Result.Ops > 110 || got.Result.RecordsPerSec > 450 {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("produce text", func(t *testing.T) {
		out, stderr, err := runBenchCmd(t, append([]string{"produce", "-stream", "-progress", "50ms"}, short...)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"produce: 1 producer, 1 record of 256 B per request, ProduceStream, 8 in flight, closed loop", "records/s", "MB/s", "latency: p50 ", " p99.9 ", "errors:  0"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if !strings.Contains(stderr, "warming up") || !strings.Contains(stderr, "measuring") {
			t.Errorf("no progress lines on stderr: %q", stderr)
		}
	})

	// Everything produced so far is committed: each consumer reads all
	// of it, and the run ends when they have.
	var committed uint64
	t.Run("consume stream", func(t *testing.T) {
		prof := filepath.Join(t.TempDir(), "cpu.pprof")
		got, err := runBenchJSON(t, "consume", "-consumers", "2", "-duration", "30s", "-max-records", "100", "-cpuprofile", prof)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, got)
		committed = got.RecordsPerClient
		if !got.Stream || committed == 0 || got.Result.Records != 2*int64(committed) || got.Result.ElapsedSec > 20 {
			t.Fatalf("%+v", got)
		}
		// A profile is gzipped protobuf.
		if b, err := os.ReadFile(prof); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("-cpuprofile wrote %d bytes (%v), want a gzipped profile", len(b), err)
		}
	})
	t.Run("consume unary", func(t *testing.T) {
		got, err := runBenchJSON(t, "consume", "-unary", "-n", "100", "-offset", "5", "-max-records", "7", "-duration", "30s")
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, got)
		// 100 records in responses of at most 7: 15 calls.
		if got.Stream || got.Result.Records != 100 || got.Result.Ops != 15 || got.Offset != 5 {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("profile not writable", func(t *testing.T) {
		_, _, err := runBenchCmd(t, "consume", "-n", "1", "-cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir"))
		if err == nil || !strings.Contains(err.Error(), "-cpuprofile") {
			t.Fatalf("consume with an unwritable profile = %v", err)
		}
	})
	t.Run("consume past the end", func(t *testing.T) {
		_, _, err := runBenchCmd(t, "consume", "-offset", "1000000000", "-duration", "1s")
		if err == nil || !strings.Contains(err.Error(), "OutOfRange") && !strings.Contains(err.Error(), "nothing to read") {
			t.Fatalf("consume beyond the log = %v", err)
		}
	})
	t.Run("produce refused", func(t *testing.T) {
		// A record over the server's 1 MiB limit: every producer stops at
		// its first error, and the command fails after reporting. The run
		// ends once both have stopped; the long duration only gives a slow
		// machine (2 MB over TLS under the race detector) time to answer.
		got, err := runBenchJSON(t, "produce", "-producers", "2", "-size", "2000000", "-duration", "30s", "-warmup", "0s")
		if err == nil || got.Result.Errors != 2 || !strings.Contains(got.Result.FirstError, "InvalidArgument") {
			t.Fatalf("%+v, %v", got.Result, err)
		}
	})
}
