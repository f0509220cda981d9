// Package consultest is an in-process double of a Consul agent for tests:
// the HTTP endpoints Loghouse uses and a DNS interface, on loopback.
//
// It is stricter than Consul, so that a wrong registration fails a test
// rather than a deployment. A service registration or check update is
// decoded with unknown fields refused and validated as Consul would
// (names, ports, meta keys, check types and durations); anything it
// refuses is recorded, and the test fails at cleanup unless it took the
// rejections with TakeRejections. An endpoint or query parameter it does
// not implement is refused the same way.
//
// Checks run: a TTL check turns critical when its TTL passes without an
// update; gRPC and TCP checks are run on their interval against their
// target, as Consul runs them (a gRPC check with GRPCUseTLS presents no
// client certificate, as Consul's does unless enable_agent_tls_for_checks
// gives it the agent's own). A node check, serfHealth, always passes.
//
// Endpoints:
//
//	PUT /v1/agent/service/register        ?replace-existing-checks
//	PUT /v1/agent/service/deregister/ID
//	PUT /v1/agent/check/update/CHECK_ID   {"Status", "Output"} (TTL checks)
//	GET /v1/agent/services
//	GET /v1/health/service/NAME           ?passing ?tag (repeatable) ?dc
//
// With Options.Token set, every request must carry it in X-Consul-Token,
// or gets 403 as from Consul's ACLs.
//
// DNS (UDP and TCP on DNSAddr) answers, with TTL 0, SRV and A questions
// for NAME.service[.DC].consul, TAG.NAME.service[.DC].consul and
// _NAME._TAG.service[.DC].consul (_tcp: any tag) from the instances whose
// checks are not critical (only passing ones with Options.OnlyPassing),
// and A questions for the SRV targets, HEXIP.addr.DC.consul; NXDOMAIN
// when no instance qualifies, as Consul does.
//
// Restart forgets every service and check, as a Consul agent in -dev mode
// does when it restarts; SetDown makes the HTTP API drop every connection;
// SetFault makes some endpoints answer with an error.
//
// The double validates names and meta with its own code, not the
// consul package's, so that a mistake there is not mirrored here.
package consultest
