package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/config"
	"github.com/loghouse/loghouse/pkg/tlsutil"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a test against loopback
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestHTTPEndpoints: /v1/health, /v1/status and /metrics on the HTTP port
// of a dev agent, after a produce and a consume.
func TestHTTPEndpoints(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir, cfg.NodeName, cfg.Ports.RPC = t.TempDir(), "dev1", 0
	a, err := New(cfg, Options{Dev: true, Logger: agLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Shutdown() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := tlsutil.NewStore(a.devClients)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+a.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(st.ClientConfig(tlsutil.ServerRole))))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cl := loghousev1.NewLogClient(cc)
	if _, err := cl.Produce(ctx, &loghousev1.ProduceRequest{Records: []*loghousev1.Record{{Value: []byte("a")}, {Value: []byte("b")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Consume(ctx, &loghousev1.ConsumeRequest{Start: &loghousev1.ConsumeRequest_Offset{Offset: 0}}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.HTTPAddr()

	if code, body := httpGet(t, base+"/v1/health"); code != http.StatusOK || body != "serving\n" {
		t.Fatalf("health: %d %q", code, body)
	}
	code, body := httpGet(t, base+"/v1/status")
	var status map[string]any
	if err := json.Unmarshal([]byte(body), &status); code != http.StatusOK || err != nil {
		t.Fatalf("status: %d %q %v", code, body, err)
	}
	if status["node_id"] != "dev1" || status["raft_state"] != "Leader" || status["committed_offset"] != "2" {
		t.Fatalf("status %v", status)
	}
	a.setGauges()
	code, body = httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`loghouse_rpc_calls{code="OK",method="Produce"}`,
		`loghouse_rpc_latency_ms{method="Consume",quantile="0.5"}`,
		"loghouse_produce_records ",
		"loghouse_consume_records ",
		"loghouse_commitlog_fsync_ms_count",
		"loghouse_log_committed_offset 2",
		"loghouse_raft_is_leader 1",
		`loghouse_members{status="alive"} 1`,
		"raft_commitTime",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
	if code, _ := httpGet(t, base+"/nope"); code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", code)
	}
	if code, _ := httpGet(t, base+"/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("the profiler is served without enable_debug: %d", code)
	}
}

// TestDebugEndpoint: enable_debug serves Go's profiler on the HTTP port.
func TestDebugEndpoint(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir, cfg.NodeName, cfg.Ports.RPC = t.TempDir(), "dev1", 0
	cfg.EnableDebug = true
	a, err := New(cfg, Options{Dev: true, Logger: agLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Shutdown() }()
	code, body := httpGet(t, "http://"+a.HTTPAddr()+"/debug/pprof/goroutine?debug=1")
	if code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("pprof: %d %.200q", code, body)
	}
}
