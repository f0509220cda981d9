// Package consul connects a Loghouse node to Consul: it registers the node
// as an instance of the service, keeps its health and leader tag current
// and the registration itself alive, finds servers to join in the catalog,
// and resolves servers for clients through Consul's DNS interface.
//
// # Registration
//
// A Registrar registers, with the local Consul agent (PUT
// /v1/agent/service/register, replacing earlier checks):
//
//	ID       SERVICE-NODE (Registration.ServiceID)
//	Name     loghouse (Registration.ServiceName)
//	Address  the advertise address; Port the RPC port (gRPC and raft)
//	Tags     Registration.Tags, plus "leader" while SetLeader(true)
//	Meta     node_name, version, raft_role (leader or follower),
//	         serf_addr (gossip host:port, for joiners)
//	Check    one TTL check, ID service:SERVICE-NODE
//
// Consul's node metadata belongs to the Consul agent's own configuration
// (node_meta), which a service cannot set; the node's facts are in the
// service meta instead.
//
// The leader tag makes leader.loghouse.service.consul resolve the leader.
// SetLeader registers the instance again at once with or without it (and
// raft_role to match); the agent calls it from its raft leadership
// observer.
//
// # Health check: a TTL check the node feeds
//
// Loghouse's port requires a client certificate from the cluster's CA on
// every connection, the gRPC health service included. Consul's own active
// checks cannot pass that: its gRPC check (GRPC with GRPCUseTLS) and HTTP
// check take a server name and TLSSkipVerify, but consul/api's
// AgentServiceCheck has no client certificate fields (read in v1.34.5);
// the only certificate Consul can present is the Consul agent's own, with
// enable_agent_tls_for_checks, and that would pass only if the Consul
// agent's certificate were issued by Loghouse's CA (or Loghouse trusted
// Consul's CA for all clients): coupling the two PKIs, and granting the
// Consul agent a Loghouse identity. A TCP check would pass against a node
// that accepts connections but cannot serve, and a script check needs
// enable_script_checks, which operators rightly keep off.
//
// So the check is a TTL check, and the node feeds it: every CheckTTL/3
// (default 15s/3) the Registrar calls Registration.Health and sets the
// check passing or critical (PUT /v1/agent/check/update/ID) with the
// health's note as output. The agent passes GRPCHealth: a probe that dials
// the node's own advertised RPC address with the node's certificate,
// verifies the server's, and asks grpc.health.v1 about the Log service;
// that is SERVING while the node leads or follows a known leader. So the
// check proves what a client needs — the port answers, mutual TLS
// succeeds with the current certificates, and the node can serve — from
// the node's side. If the node hangs or dies, reports stop and Consul
// marks the check critical when the TTL runs out: a crash is noticed
// within CheckTTL, not on the next probe interval. Consul's DNS leaves
// critical instances out, and JoinAddrs prefers passing ones.
//
// # Staying registered
//
// NewRegistrar returns at once; registration runs in the background and
// never holds up the agent's start. A failed registration is logged and
// retried with jittered back-off from RetryMin doubling to RetryMax, until
// Close: Consul may come up at any time. The instance is registered again
// as soon as there is reason to think Consul lost it: a health report that
// Consul refuses (a restarted Consul without state answers 404 for the
// check), and every SyncInterval the Registrar reads the agent's services
// (GET /v1/agent/services) and registers again if its instance is missing
// or differs (tags, meta, address, port). Every request to Consul is
// bounded by RequestTimeout. Close stops that loop and deregisters the
// instance (PUT /v1/agent/service/deregister/ID); a 404 counts as done.
//
// # Consul address, ACL token, TLS
//
// NewClient starts from consul/api's environment (CONSUL_HTTP_ADDR,
// CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL,
// CONSUL_CACERT, …) and lets the configuration override it; the address
// defaults to 127.0.0.1:8500. The token goes in X-Consul-Token on every
// request. The policy it needs: write on the service (register, report
// health, deregister) and read on the nodes (the health endpoint filters
// out instances on nodes the token cannot read), e.g.
//
//	service "loghouse" { policy = "write" }
//	node_prefix "" { policy = "read" }
//
// # Joining through the catalog
//
// Client.JoinAddrs lists the instances of the service (GET
// /v1/health/service/NAME) and returns the serf_addr of the passing ones
// other than the caller; when none passes it returns every registered
// one, because servers that have not formed a cluster yet have no leader
// and so report critical, and must still find each other to form one.
// Client.RetryJoin is the join loop around it, with back-off.
//
// # DNS for clients
//
// A Resolver asks Consul's DNS interface (default 127.0.0.1:8600) for the
// SRV records of loghouse.service.consul (or TAG.loghouse.service.consul)
// with the standard library's resolver, dialling that server only, then
// resolves each target to addresses: host:port lists of the instances
// Consul deems healthy. Resolver.Leader asks for the leader tag.
//
// The package consultest is a Consul agent double, HTTP and DNS, for
// tests here and in the agent.
package consul
