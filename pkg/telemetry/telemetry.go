package telemetry

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServiceName prefixes every metric of ours (loghouse_...). Raft and Serf
// emit their own prefixes (raft_..., serf_..., memberlist_...).
const ServiceName = "loghouse"

// Telemetry is the process's metrics: the global go-metrics sink that
// hashicorp/raft, Serf, memberlist and our code emit to, exported in
// Prometheus' format, plus Go runtime and process collectors.
type Telemetry struct {
	registry *prometheus.Registry
}

var (
	setupOnce sync.Once
	setupTel  *Telemetry
	setupErr  error
)

// Setup installs the global go-metrics sink once per process and returns
// it; later calls return the same Telemetry. go-metrics is global because
// raft and Serf emit through its package-level functions; several agents
// in one process (tests) therefore share one set of metrics.
func Setup() (*Telemetry, error) {
	setupOnce.Do(func() { setupTel, setupErr = setup() })
	return setupTel, setupErr
}

func setup() (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	// A series nobody updates for this long (a raft peer that left, say)
	// disappears from the output.
	sink := NewSink(5 * time.Minute)
	if err := reg.Register(sink); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	conf := metrics.DefaultConfig(ServiceName)
	conf.EnableHostname = false
	conf.EnableHostnameLabel = false
	conf.EnableServiceLabel = false
	conf.EnableRuntimeMetrics = false // the Go collector covers them
	conf.ServiceName = ""             // names carry their own prefixes
	if _, err := metrics.NewGlobal(conf, sink); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	return &Telemetry{registry: reg}, nil
}

// Handler serves the metrics in Prometheus' text format.
func (t *Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Key builds a metric name under our prefix: Key("produce", "records") is
// loghouse_produce_records in Prometheus.
func Key(parts ...string) []string {
	return append([]string{ServiceName}, parts...)
}
