package consul

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// DefaultAddress is the Consul agent's HTTP API when neither the
// configuration nor CONSUL_HTTP_ADDR names one.
const DefaultAddress = "127.0.0.1:8500"

// ClientConfig says how to reach the local Consul agent's HTTP API. Empty
// fields fall back to consul/api's environment variables (CONSUL_HTTP_ADDR,
// CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL,
// CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY,
// CONSUL_TLS_SERVER_NAME, CONSUL_HTTP_SSL_VERIFY), then to the defaults.
type ClientConfig struct {
	// Address is host:port, or a URL with a scheme (http://, https://,
	// unix://). Default: CONSUL_HTTP_ADDR, else DefaultAddress.
	Address string
	// Token is the ACL token sent (as X-Consul-Token) with every request.
	// Default: CONSUL_HTTP_TOKEN.
	Token string
	// TokenFile holds the ACL token; it wins over Token, as in the consul
	// command. Default: CONSUL_HTTP_TOKEN_FILE.
	TokenFile string
	// Datacenter is sent with queries. Empty: the agent's own.
	Datacenter string
	// TLS configures HTTPS to the agent.
	TLS ClientTLS
	// Logger receives consul/api's warnings about its environment
	// variables. Default: discard.
	Logger hclog.Logger
}

// ClientTLS configures HTTPS to the Consul agent.
type ClientTLS struct {
	// Enabled uses https. An https:// Address or CONSUL_HTTP_SSL=true
	// enable it too.
	Enabled bool
	// CAFile verifies the agent's certificate. Empty: the system roots
	// (or CONSUL_CACERT).
	CAFile string
	// CertFile and KeyFile are a client certificate, for an agent with
	// verify_incoming. Both or neither.
	CertFile string
	KeyFile  string
	// ServerName is the name the agent's certificate is verified for.
	// Empty: the host of Address.
	ServerName string
	// InsecureSkipVerify skips verification of the agent's certificate.
	InsecureSkipVerify bool
}

// Client is a handle on the local Consul agent's HTTP API. It is safe for
// concurrent use.
type Client struct {
	api        *api.Client
	datacenter string
	transport  interface{ CloseIdleConnections() }
}

// NewClient makes a Client. It does not contact Consul, so it succeeds
// while Consul is down; it fails only on a bad configuration (an
// unreadable token file or TLS file).
func NewClient(cfg ClientConfig) (*Client, error) {
	if (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == "") {
		return nil, fmt.Errorf("%w: tls cert_file and key_file go together", ErrInvalidConfig)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	// Environment first, then what the configuration sets.
	c := api.DefaultConfigWithLogger(logger.Named("consul-api"))
	if os.Getenv(api.HTTPAddrEnvName) == "" {
		c.Address = DefaultAddress
	}
	if cfg.Address != "" {
		c.Address = cfg.Address
	}
	if cfg.Token != "" {
		c.Token = cfg.Token
	}
	if cfg.TokenFile != "" {
		c.TokenFile = cfg.TokenFile
	}
	if cfg.Datacenter != "" {
		c.Datacenter = cfg.Datacenter
	}
	t := cfg.TLS
	if t.Enabled && !strings.Contains(c.Address, "://") {
		c.Scheme = "https"
	}
	if t.CAFile != "" {
		c.TLSConfig.CAFile = t.CAFile
	}
	if t.CertFile != "" {
		c.TLSConfig.CertFile, c.TLSConfig.KeyFile = t.CertFile, t.KeyFile
	}
	if t.ServerName != "" {
		c.TLSConfig.Address = t.ServerName
	}
	if t.InsecureSkipVerify {
		c.TLSConfig.InsecureSkipVerify = true
	}
	transport := c.Transport
	cl, err := api.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Client{api: cl, datacenter: c.Datacenter, transport: transport}, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}
