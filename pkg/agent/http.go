package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"google.golang.org/protobuf/encoding/protojson"

	loghousev1 "github.com/loghouse/loghouse/pkg/api/v1"
	"github.com/loghouse/loghouse/pkg/membership"
	"github.com/loghouse/loghouse/pkg/telemetry"
)

// startHTTP serves, in plain HTTP on the HTTP port (nothing secret is
// there, and Prometheus, Consul and Nomad checks need no certificates):
//
//	/metrics     Prometheus text format (pkg/telemetry)
//	/v1/status   this node's Status as JSON (the same fields as the RPC)
//	/v1/health   200 while the node serves (leader, or follower knowing
//	             the leader), 503 otherwise; for load balancers and
//	             Consul or Nomad HTTP checks
//	/debug/pprof/  Go's profiler, only with enable_debug
func (a *Agent) startHTTP() error {
	tel, err := telemetry.Setup()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(a.cfg.BindAddr, strconv.Itoa(a.cfg.Ports.HTTP))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent: listen on %s (HTTP): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.Handler())
	mux.HandleFunc("GET /v1/status", a.serveStatus)
	mux.HandleFunc("GET /v1/health", a.serveHealth)
	if a.cfg.EnableDebug {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.httpLn = ln
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("HTTP server stopped", "error", err)
		}
	}()
	return nil
}

// HTTPAddr is the address the HTTP port listens on.
func (a *Agent) HTTPAddr() string { return a.httpLn.Addr().String() }

func (a *Agent) serveStatus(w http.ResponseWriter, r *http.Request) {
	st, err := a.server.Status(r.Context(), &loghousev1.StatusRequest{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b, err := protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true}.Marshal(st)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

func (a *Agent) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if a.server.Serving() {
		_, _ = w.Write([]byte("serving\n"))
		return
	}
	http.Error(w, "not serving: no leader is known", http.StatusServiceUnavailable)
}

// gaugeLoop sets the gauges that describe the node, every second.
func (a *Agent) gaugeLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		a.setGauges()
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
	}
}

func (a *Agent) setGauges() {
	committed, _ := a.node.FSM.Committed()
	metrics.SetPrecisionGauge(telemetry.Key("log", "committed_offset"), float64(committed))
	metrics.SetPrecisionGauge(telemetry.Key("log", "first_offset"), float64(a.node.Log.FirstOffset()))
	st := a.node.Log.Stats()
	metrics.SetGauge(telemetry.Key("log", "segments"), float32(st.Segments))
	metrics.SetPrecisionGauge(telemetry.Key("log", "bytes"), float64(st.Bytes))
	leader := float32(0)
	if a.node.IsLeader() {
		leader = 1
	}
	metrics.SetGauge(telemetry.Key("raft", "is_leader"), leader)
	counts := map[string]int{membership.StatusAlive: 0, membership.StatusLeaving: 0, membership.StatusLeft: 0, membership.StatusFailed: 0}
	for _, m := range a.members.Members() {
		counts[m.Status]++
	}
	for status, n := range counts {
		metrics.SetGaugeWithLabels(telemetry.Key("members"), float32(n), []metrics.Label{{Name: "status", Value: status}})
	}
}

// stopHTTP closes the HTTP server.
func (a *Agent) stopHTTP(ctx context.Context) error {
	if a.http == nil {
		return nil
	}
	return a.http.Shutdown(ctx)
}
