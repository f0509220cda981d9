package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/loghouse/loghouse/pkg/tlsutil"
)

// Defaults for the zero fields of Config.
const (
	DefaultInitialBackoff  = 50 * time.Millisecond
	DefaultMaxBackoff      = 2 * time.Second
	DefaultMaxAttempts     = 16
	DefaultResolveInterval = 30 * time.Second
	DefaultConnectTimeout  = 5 * time.Second
)

// The environment variables ConfigFromEnv reads, which the loghoused
// command line reads too.
const (
	// EnvAddr holds the seeds: "host:port,host:port" or
	// "loghouse://host:port,host:port".
	EnvAddr = "LOGHOUSE_ADDR"
	// EnvCACert names the CA certificate file.
	EnvCACert = "LOGHOUSE_CACERT"
	// EnvClientCert names the client certificate file.
	EnvClientCert = "LOGHOUSE_CLIENT_CERT"
	// EnvClientKey names the client key file.
	EnvClientKey = "LOGHOUSE_CLIENT_KEY"
)

// TargetScheme is the scheme of a target string,
// "loghouse://host1:8400,host2:8400".
const TargetScheme = "loghouse"

// ErrInvalidConfig means a Config failed validation.
var ErrInvalidConfig = errors.New("client: invalid config")

// Config configures a Client. Zero durations and counts take the defaults
// above.
type Config struct {
	// Seeds are the RPC addresses (host:port) of any servers of the
	// cluster; the Client learns the others from them. An element may
	// also be a comma-separated list or a target
	// "loghouse://host1:8400,host2:8400" (see ParseSeeds), or a DNS SRV
	// name looked up on every resolution: "consul://loghouse" (the SRV
	// records of loghouse.service.consul, asked of the local Consul agent
	// at 127.0.0.1:8600; "consul://NAME?dns=HOST:PORT" asks another
	// server) or "srv://DNS-HOST:PORT/NAME". Required.
	Seeds []string
	// TLS is the client's mutual TLS configuration: its certificate, and
	// the CA and server name that servers are verified against.
	// TLSConfigFromFiles makes one. Required.
	TLS *tls.Config
	// Logger logs resolution and retries. Default: discard.
	Logger hclog.Logger

	// ReadFromLeader sends reads (Consume, ConsumeStream, Members) to the
	// leader only, instead of spreading them over the followers.
	ReadFromLeader bool

	// InitialBackoff is the wait before the first retry; each later wait
	// doubles, up to MaxBackoff. A wait is drawn at random from its upper
	// half. Default: 50ms.
	InitialBackoff time.Duration
	// MaxBackoff bounds the wait between attempts, and gRPC's back-off
	// between connection attempts to one server. Default: 2s.
	MaxBackoff time.Duration
	// MaxAttempts bounds the attempts of one call (a consumer stream: the
	// attempts to open a new stream without receiving anything in
	// between). The call's context bounds them too. Default: 16.
	MaxAttempts int
	// ResolveInterval is how often the Client asks the cluster for its
	// servers in the background; a negative value turns that off (the
	// Client still asks when a call meets an unavailable server). It also
	// bounds each background round. Default: 30s.
	ResolveInterval time.Duration
	// ConnectTimeout bounds a connection attempt to a server, and each
	// server's answer while resolving the cluster. Default: 5s.
	ConnectTimeout time.Duration

	// DialOptions are added to every connection's options (after the
	// Client's own, so they may override them).
	DialOptions []grpc.DialOption

	// dnsSeeds are the seeds found by DNS SRV lookups (srv:// and
	// consul:// seeds), looked up again on every resolution.
	dnsSeeds []dnsSeed
}

// withDefaults returns c with its zero fields set to the defaults and its
// seeds parsed into host:port addresses.
func (c Config) withDefaults() (Config, error) {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = DefaultInitialBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.ResolveInterval == 0 {
		c.ResolveInterval = DefaultResolveInterval
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	var problems []string
	var seeds []string
	for _, s := range c.Seeds {
		if d, ok, err := parseDNSSeed(s); ok {
			if err != nil {
				problems = append(problems, err.Error())
			} else {
				c.dnsSeeds = append(c.dnsSeeds, d)
			}
			continue
		}
		addrs, err := ParseSeeds(s)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		seeds = append(seeds, addrs...)
	}
	c.Seeds = dedup(seeds)
	if len(c.Seeds) == 0 && len(c.dnsSeeds) == 0 && len(problems) == 0 {
		problems = append(problems, "no seed addresses")
	}
	if c.TLS == nil {
		problems = append(problems, "TLS is required (the cluster speaks mutual TLS only)")
	}
	if c.InitialBackoff < 0 || c.MaxBackoff < 0 {
		problems = append(problems, fmt.Sprintf("back-offs must not be negative (initial %s, max %s)", c.InitialBackoff, c.MaxBackoff))
	}
	if c.InitialBackoff > c.MaxBackoff {
		problems = append(problems, fmt.Sprintf("InitialBackoff %s exceeds MaxBackoff %s", c.InitialBackoff, c.MaxBackoff))
	}
	if c.MaxAttempts < 0 {
		problems = append(problems, fmt.Sprintf("MaxAttempts %d must not be negative", c.MaxAttempts))
	}
	if c.ConnectTimeout < 0 {
		problems = append(problems, fmt.Sprintf("ConnectTimeout %s must not be negative", c.ConnectTimeout))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return c, nil
}

// ParseSeeds parses a seed list: comma-separated host:port addresses, or a
// target "loghouse://host1:8400,host2:8400" (also "loghouse:///…"). Blank
// elements are ignored. Errors wrap ErrInvalidConfig.
func ParseSeeds(s string) ([]string, error) {
	rest := strings.TrimSpace(s)
	if scheme, after, ok := strings.Cut(rest, "://"); ok {
		if scheme != TargetScheme {
			return nil, fmt.Errorf("%w: target %q: the scheme must be %q", ErrInvalidConfig, s, TargetScheme+"://")
		}
		rest = strings.TrimPrefix(after, "/")
	}
	var out []string
	for _, a := range strings.Split(rest, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%w: seed %q is not host:port", ErrInvalidConfig, a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no address in %q", ErrInvalidConfig, s)
	}
	return out, nil
}

// CheckSeed checks one element of Config.Seeds in any of its forms
// (host:port lists, loghouse://, consul://, srv://) without looking
// anything up. Errors wrap ErrInvalidConfig.
func CheckSeed(s string) error {
	if _, dns, err := parseDNSSeed(s); dns {
		return err
	}
	_, err := ParseSeeds(s)
	return err
}

// TLSConfigFromFiles loads a client certificate and key and the cluster CA
// from PEM files and returns a mutual TLS configuration that accepts only
// servers (certificates carrying tlsutil.ServerRole) of that CA.
func TLSConfigFromFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	store, err := tlsutil.NewStore(tlsutil.Files{CAFile: caFile, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return store.ClientConfig(tlsutil.ServerRole), nil
}

// ConfigFromEnv returns a Config with Seeds from LOGHOUSE_ADDR and TLS from
// the files LOGHOUSE_CACERT, LOGHOUSE_CLIENT_CERT and LOGHOUSE_CLIENT_KEY
// name. Other fields are left zero (the defaults).
func ConfigFromEnv() (Config, error) {
	var missing []string
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	addr, ca, cert, key := get(EnvAddr), get(EnvCACert), get(EnvClientCert), get(EnvClientKey)
	if len(missing) > 0 {
		return Config{}, fmt.Errorf("%w: %s not set", ErrInvalidConfig, strings.Join(missing, ", "))
	}
	seeds := []string{addr} // a DNS seed, looked up on every resolution
	if _, dns, err := parseDNSSeed(addr); dns && err != nil {
		return Config{}, fmt.Errorf("%s: %w", EnvAddr, err)
	} else if !dns {
		if seeds, err = ParseSeeds(addr); err != nil {
			return Config{}, fmt.Errorf("%s: %w", EnvAddr, err)
		}
	}
	tlsCfg, err := TLSConfigFromFiles(ca, cert, key)
	if err != nil {
		return Config{}, err
	}
	return Config{Seeds: seeds, TLS: tlsCfg}, nil
}

// dedup returns addrs without repeats, in first-seen order.
func dedup(addrs []string) []string {
	seen := make(map[string]bool, len(addrs))
	out := addrs[:0:0]
	for _, a := range addrs {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}
