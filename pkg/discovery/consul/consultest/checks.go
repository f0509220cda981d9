package consultest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// defaultCheckTimeout is Consul's default timeout for TCP and gRPC checks.
const defaultCheckTimeout = 10 * time.Second

// check is a registered check and its state. Its fields are guarded by
// Agent.mu.
type check struct {
	def       CheckDefinition
	serviceID string
	service   string
	kind      string        // "ttl", "tcp" or "grpc", as Consul reports Type
	ttl       time.Duration // TTL checks
	deadline  time.Time     // TTL checks: critical after this
	status    string
	output    string
	done      chan struct{} // closed to stop a runner
}

func newCheck(def CheckDefinition, serviceID, service string, now time.Time) *check {
	c := &check{def: def, serviceID: serviceID, service: service, status: def.Status, done: make(chan struct{})}
	if c.status == "" {
		c.status = api.HealthCritical // Consul's initial status
	}
	switch {
	case def.TTL != "":
		c.kind = "ttl"
		c.ttl, _ = time.ParseDuration(def.TTL) // validated
		c.deadline = now.Add(c.ttl)
	case def.TCP != "":
		c.kind = "tcp"
	default:
		c.kind = "grpc"
	}
	return c
}

// expire turns a TTL check whose TTL has passed critical.
func (c *check) expire(now time.Time) {
	if c.ttl > 0 && now.After(c.deadline) && c.status != api.HealthCritical {
		c.status, c.output = api.HealthCritical, "TTL expired"
	}
}

// stop stops the check's runner, if any; it may be called more than once.
func (c *check) stop() {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
}

// startLocked starts the runner of an active (TCP or gRPC) check.
func (a *Agent) startLocked(c *check) {
	if c.kind == "ttl" {
		return
	}
	interval, _ := time.ParseDuration(c.def.Interval) // validated
	timeout := defaultCheckTimeout
	if c.def.Timeout != "" {
		timeout, _ = time.ParseDuration(c.def.Timeout)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		// rctx ends when the check is stopped, ending a probe under way.
		rctx, rcancel := context.WithCancel(context.Background())
		defer rcancel()
		go func() {
			select {
			case <-c.done:
			case <-rctx.Done():
			}
			rcancel()
		}()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			ctx, cancel := context.WithTimeout(rctx, timeout)
			status, output := runCheck(ctx, c.def)
			cancel()
			a.mu.Lock()
			select {
			case <-c.done:
				a.mu.Unlock()
				return
			default:
			}
			c.status, c.output = status, output
			a.index++
			a.mu.Unlock()
			select {
			case <-c.done:
				return
			case <-t.C:
			}
		}
	}()
}

// runCheck runs a TCP or gRPC check once, as Consul does.
func runCheck(ctx context.Context, def CheckDefinition) (status, output string) {
	if def.TCP != "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", def.TCP)
		if err != nil {
			return api.HealthCritical, fmt.Sprintf("TCP connect %s: Failed: %v", def.TCP, err)
		}
		_ = conn.Close() // a probe; nothing was sent
		return api.HealthPassing, fmt.Sprintf("TCP connect %s: Success", def.TCP)
	}
	target, service, _ := strings.Cut(def.GRPC, "/")
	creds := insecure.NewCredentials()
	if def.GRPCUseTLS {
		// What Consul's gRPC check has: server name and verification
		// settings, and no client certificate (unless the agent's own,
		// with enable_agent_tls_for_checks).
		creds = credentials.NewTLS(&tls.Config{ServerName: def.TLSServerName, InsecureSkipVerify: def.TLSSkipVerify})
	}
	cc, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return api.HealthCritical, fmt.Sprintf("gRPC %s: %v", def.GRPC, err)
	}
	defer func() { _ = cc.Close() }() // a probe connection
	res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return api.HealthCritical, fmt.Sprintf("gRPC %s: %v", def.GRPC, err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return api.HealthCritical, fmt.Sprintf("gRPC %s: %s", def.GRPC, res.GetStatus())
	}
	return api.HealthPassing, fmt.Sprintf("gRPC %s: SERVING", def.GRPC)
}
