package consultest

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Options configure an Agent.
type Options struct {
	// Token, if set, is the only ACL token accepted (X-Consul-Token).
	Token string
	// TLS, if set, makes the HTTP API serve HTTPS with this config.
	TLS *tls.Config
	// NodeName is the Consul node's name. Default: "consul-test".
	NodeName string
	// Datacenter is the agent's datacenter. Default: "dc1".
	Datacenter string
	// OnlyPassing makes DNS offer only instances whose checks all pass
	// (Consul's dns_config.only_passing); otherwise warning ones too.
	OnlyPassing bool
}

// ServiceDefinition is a service registration as the double accepts it:
// the fields of Consul's registration payload that the double implements.
// Any other field in a request is refused.
type ServiceDefinition struct {
	Kind              string `json:",omitempty"`
	ID                string
	Name              string
	Tags              []string
	Port              int
	Address           string
	Meta              map[string]string
	EnableTagOverride bool
	Weights           *api.AgentWeights
	Check             *CheckDefinition
	Checks            []*CheckDefinition
}

// CheckDefinition is a check as the double accepts it: TTL, TCP and gRPC
// checks. Any other field (HTTP, ScriptArgs, …) is refused.
type CheckDefinition struct {
	CheckID                        string
	Name                           string
	Notes                          string
	Status                         string
	TTL                            string
	Interval                       string
	Timeout                        string
	TCP                            string
	GRPC                           string
	GRPCUseTLS                     bool
	TLSServerName                  string
	TLSSkipVerify                  bool
	DeregisterCriticalServiceAfter string
}

// Request is one HTTP request the double received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Token  string // X-Consul-Token
}

// Agent is the double. Its methods are safe for concurrent use.
type Agent struct {
	t    testing.TB
	opts Options
	http *httptest.Server
	dns  *dnsServer

	mu         sync.Mutex
	down       bool
	faults     map[string]int // path prefix → status code to answer
	index      uint64
	services   map[string]*ServiceDefinition // by ID
	checks     map[string]*check             // by check ID
	requests   []Request
	rejections []string

	wg sync.WaitGroup // check runners
}

// New starts a double on loopback; it stops at the test's cleanup, which
// also fails the test if the double refused requests that the test did
// not take with TakeRejections.
func New(t testing.TB, opts Options) *Agent {
	t.Helper()
	if opts.NodeName == "" {
		opts.NodeName = "consul-test"
	}
	if opts.Datacenter == "" {
		opts.Datacenter = "dc1"
	}
	a := &Agent{t: t, opts: opts, services: map[string]*ServiceDefinition{}, checks: map[string]*check{}}
	a.http = httptest.NewUnstartedServer(http.HandlerFunc(a.serveHTTP))
	a.http.Config.ErrorLog = log.New(logWriter{t}, "consultest: http: ", 0)
	if opts.TLS != nil {
		a.http.TLS = opts.TLS
		a.http.StartTLS()
	} else {
		a.http.Start()
	}
	d, err := startDNS(a)
	if err != nil {
		a.http.Close()
		t.Fatalf("consultest: %v", err)
	}
	a.dns = d
	t.Cleanup(func() {
		a.http.Close()
		a.dns.close()
		a.mu.Lock()
		a.forgetLocked()
		rej := a.rejections
		a.mu.Unlock()
		a.wg.Wait()
		if len(rej) > 0 {
			t.Errorf("consultest: the Consul double refused %d requests:\n%s", len(rej), strings.Join(rej, "\n"))
		}
	})
	return a
}

// logWriter sends the HTTP server's log to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// Addr is the HTTP API's host:port.
func (a *Agent) Addr() string { return a.http.Listener.Addr().String() }

// URL is the HTTP API's URL (http:// or https://).
func (a *Agent) URL() string { return a.http.URL }

// DNSAddr is the DNS interface's host:port (UDP and TCP).
func (a *Agent) DNSAddr() string { return a.dns.addr }

// NodeName is the Consul node's name.
func (a *Agent) NodeName() string { return a.opts.NodeName }

// Restart forgets every service and check, as a Consul agent that
// restarts without state.
func (a *Agent) Restart() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forgetLocked()
}

// SetDown makes the HTTP API drop every connection without an answer
// (true), or answer again (false).
func (a *Agent) SetDown(down bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.down = down
}

// SetFault makes requests whose path starts with prefix fail with HTTP
// status code (as a Consul error would, not counted as a rejection); code
// 0 removes the fault.
func (a *Agent) SetFault(prefix string, code int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.faults == nil {
		a.faults = map[string]int{}
	}
	if code == 0 {
		delete(a.faults, prefix)
		return
	}
	a.faults[prefix] = code
}

// Service returns a copy of the registered service with id.
func (a *Agent) Service(id string) (ServiceDefinition, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.services[id]
	if !ok {
		return ServiceDefinition{}, false
	}
	return cloneService(s), true
}

// ServiceIDs lists the registered services' IDs, sorted.
func (a *Agent) ServiceIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.services))
	for id := range a.services {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// CheckStatus returns a check's current status (TTL expiry applied) and
// output.
func (a *Agent) CheckStatus(id string) (status, output string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.checks[id]
	if !ok {
		return "", "", false
	}
	c.expire(time.Now())
	return c.status, c.output, true
}

// Requests returns every request received so far.
func (a *Agent) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// TakeRejections returns the requests refused so far and forgets them,
// so that cleanup does not fail the test for them.
func (a *Agent) TakeRejections() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rejections
	a.rejections = nil
	return r
}

// forgetLocked drops every service and stops every check runner.
func (a *Agent) forgetLocked() {
	for id, c := range a.checks {
		c.stop()
		delete(a.checks, id)
	}
	clear(a.services)
	a.index++
}

// httpError is a refusal: a status code and Consul-like message. An
// answer (a well-formed request about an ID the agent does not know) is
// not recorded as a rejection.
type httpError struct {
	code   int
	msg    string
	answer bool
}

// notFound is the 404 Consul answers for an unknown ID.
func notFound(format string, args ...any) *httpError {
	return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf(format, args...), answer: true}
}

func refuse(code int, format string, args ...any) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func (a *Agent) serveHTTP(w http.ResponseWriter, req *http.Request) {
	a.mu.Lock()
	down := a.down
	token := req.Header.Get("X-Consul-Token")
	fault := 0
	if !down {
		a.requests = append(a.requests, Request{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(), Token: token})
		for prefix, code := range a.faults {
			if strings.HasPrefix(req.URL.Path, prefix) {
				fault = code
			}
		}
	}
	a.mu.Unlock()
	if fault != 0 {
		http.Error(w, "injected fault", fault)
		return
	}
	if down {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close() // the point: the client sees the connection drop
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var body []byte
	if req.Body != nil {
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(req.Body); err != nil {
			return
		}
		body = buf.Bytes()
	}
	resp, herr := a.route(req, token, body)
	if herr != nil {
		if !herr.answer {
			a.mu.Lock()
			a.rejections = append(a.rejections, fmt.Sprintf("%s %s: %d %s", req.Method, req.URL.RequestURI(), herr.code, herr.msg))
			a.mu.Unlock()
		}
		http.Error(w, herr.msg, herr.code)
		return
	}
	a.mu.Lock()
	idx := a.index
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(max(idx, 1), 10))
	w.Header().Set("X-Consul-LastContact", "0")
	w.Header().Set("X-Consul-KnownLeader", "true")
	if resp == nil {
		return
	}
	out, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(out) // the client's problem if it went away
}

// route dispatches a request; resp is marshalled as JSON (nil: no body).
func (a *Agent) route(req *http.Request, token string, body []byte) (resp any, herr *httpError) {
	if a.opts.Token != "" && token != a.opts.Token {
		return nil, refuse(http.StatusForbidden, "ACL not found")
	}
	p := req.URL.Path
	q := req.URL.Query()
	type endpoint struct {
		method, prefix string
		exact          bool
		params         []string
		fn             func(rest string) (any, *httpError)
	}
	endpoints := []endpoint{
		{"PUT", "/v1/agent/service/register", true, []string{"replace-existing-checks", "dc"}, func(string) (any, *httpError) {
			return nil, a.register(body, q.Has("replace-existing-checks"))
		}},
		{"PUT", "/v1/agent/service/deregister/", false, []string{"dc"}, func(id string) (any, *httpError) {
			return nil, a.deregister(id)
		}},
		{"PUT", "/v1/agent/check/update/", false, []string{"dc"}, func(id string) (any, *httpError) {
			return nil, a.updateCheck(id, body)
		}},
		{"GET", "/v1/agent/services", true, []string{"dc"}, func(string) (any, *httpError) {
			return a.agentServices(), nil
		}},
		{"GET", "/v1/health/service/", false, []string{"dc", "passing", "tag"}, func(name string) (any, *httpError) {
			if dc := q.Get("dc"); dc != "" && dc != a.opts.Datacenter {
				return nil, refuse(http.StatusInternalServerError, "No path to datacenter")
			}
			return a.healthService(name, q["tag"], q.Has("passing")), nil
		}},
	}
	for _, e := range endpoints {
		var rest string
		if e.exact {
			if p != e.prefix {
				continue
			}
		} else {
			var ok bool
			if rest, ok = strings.CutPrefix(p, e.prefix); !ok || rest == "" || strings.Contains(rest, "/") {
				continue
			}
		}
		if req.Method != e.method {
			return nil, refuse(http.StatusMethodNotAllowed, "method %s not allowed", req.Method)
		}
		for k := range q {
			if !slices.Contains(e.params, k) {
				return nil, refuse(http.StatusBadRequest, "the double does not implement query parameter %q", k)
			}
		}
		if e.method == "GET" && len(body) > 0 {
			return nil, refuse(http.StatusBadRequest, "unexpected body")
		}
		return e.fn(rest)
	}
	return nil, refuse(http.StatusNotFound, "the double does not implement %s %s", req.Method, p)
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

func (a *Agent) register(body []byte, replace bool) *httpError {
	var def ServiceDefinition
	if err := decodeStrict(body, &def); err != nil {
		return refuse(http.StatusBadRequest, "Request decode failed: %v", err)
	}
	if def.ID == "" {
		def.ID = def.Name
	}
	if err := validateService(&def); err != nil {
		return refuse(http.StatusBadRequest, "Invalid service: %v", err)
	}
	var defs []*CheckDefinition
	if def.Check != nil {
		defs = append(defs, def.Check)
	}
	defs = append(defs, def.Checks...)
	for i, cd := range defs {
		if cd.CheckID == "" {
			cd.CheckID = "service:" + def.ID
			if len(defs) > 1 {
				cd.CheckID += ":" + strconv.Itoa(i+1)
			}
		}
		if cd.Name == "" {
			cd.Name = "Service '" + def.Name + "' check"
		}
		if err := validateCheck(cd); err != nil {
			return refuse(http.StatusBadRequest, "Invalid check %q: %v", cd.CheckID, err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, cd := range defs {
		if c, ok := a.checks[cd.CheckID]; ok && c.serviceID != def.ID {
			return refuse(http.StatusBadRequest, "Invalid check %q: belongs to service %q", cd.CheckID, c.serviceID)
		}
	}
	stored := cloneService(&def)
	a.services[def.ID] = &stored
	keep := map[string]bool{}
	now := time.Now()
	for _, cd := range defs {
		keep[cd.CheckID] = true
		c := newCheck(*cd, def.ID, def.Name, now)
		if old, ok := a.checks[cd.CheckID]; ok {
			// As Consul does, a check registered again keeps its state.
			old.expire(now)
			c.status, c.output = old.status, old.output
			old.stop()
		}
		a.checks[cd.CheckID] = c
		a.startLocked(c)
	}
	if replace {
		for id, c := range a.checks {
			if c.serviceID == def.ID && !keep[id] {
				c.stop()
				delete(a.checks, id)
			}
		}
	}
	a.index++
	return nil
}

func (a *Agent) deregister(id string) *httpError {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.services[id]; !ok {
		return notFound("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)
	}
	delete(a.services, id)
	for cid, c := range a.checks {
		if c.serviceID == id {
			c.stop()
			delete(a.checks, cid)
		}
	}
	a.index++
	return nil
}

func (a *Agent) updateCheck(id string, body []byte) *httpError {
	var u struct {
		Status string
		Output string
	}
	if err := decodeStrict(body, &u); err != nil {
		return refuse(http.StatusBadRequest, "Request decode failed: %v", err)
	}
	switch u.Status {
	case api.HealthPassing, api.HealthWarning, api.HealthCritical:
	default:
		return refuse(http.StatusBadRequest, "Invalid check status: %q", u.Status)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.checks[id]
	if !ok {
		return notFound("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id)
	}
	if c.ttl == 0 {
		return refuse(http.StatusInternalServerError, "CheckID %q does not have associated TTL", id)
	}
	c.status, c.output, c.deadline = u.Status, u.Output, time.Now().Add(c.ttl)
	a.index++
	return nil
}

func (a *Agent) agentServices() map[string]*api.AgentService {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]*api.AgentService{}
	for id, s := range a.services {
		out[id] = a.agentService(s)
	}
	return out
}

func (a *Agent) agentService(s *ServiceDefinition) *api.AgentService {
	w := api.AgentWeights{Passing: 1, Warning: 1}
	if s.Weights != nil {
		w = *s.Weights
	}
	c := cloneService(s)
	return &api.AgentService{
		ID: c.ID, Service: c.Name, Tags: c.Tags, Meta: c.Meta, Port: c.Port, Address: c.Address,
		Weights: w, EnableTagOverride: c.EnableTagOverride, Datacenter: a.opts.Datacenter,
	}
}

// instance is a service instance with its checks' state.
type instance struct {
	svc    *ServiceDefinition
	checks api.HealthChecks
}

// instancesLocked lists the instances of name carrying every tag in tags,
// sorted by ID, with a passing serfHealth node check first.
func (a *Agent) instancesLocked(name string, tags []string) []instance {
	now := time.Now()
	var out []instance
	for _, s := range a.services {
		if !strings.EqualFold(s.Name, name) {
			continue
		}
		hasAll := true
		for _, t := range tags {
			if !slices.ContainsFunc(s.Tags, func(x string) bool { return strings.EqualFold(x, t) }) {
				hasAll = false
			}
		}
		if !hasAll {
			continue
		}
		hc := api.HealthChecks{{
			Node: a.opts.NodeName, CheckID: "serfHealth", Name: "Serf Health Status",
			Status: api.HealthPassing, Output: "Agent alive and reachable", Type: "",
		}}
		for _, c := range a.checks {
			if c.serviceID != s.ID {
				continue
			}
			c.expire(now)
			hc = append(hc, &api.HealthCheck{
				Node: a.opts.NodeName, CheckID: c.def.CheckID, Name: c.def.Name, Status: c.status, Notes: c.def.Notes,
				Output: c.output, ServiceID: s.ID, ServiceName: s.Name, ServiceTags: slices.Clone(s.Tags), Type: c.kind,
			})
		}
		sort.Slice(hc[1:], func(i, j int) bool { return hc[1+i].CheckID < hc[1+j].CheckID })
		out = append(out, instance{svc: s, checks: hc})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].svc.ID < out[j].svc.ID })
	return out
}

func (a *Agent) healthService(name string, tags []string, passingOnly bool) []*api.ServiceEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []*api.ServiceEntry{}
	for _, in := range a.instancesLocked(name, tags) {
		if passingOnly && in.checks.AggregatedStatus() != api.HealthPassing {
			continue
		}
		out = append(out, &api.ServiceEntry{
			Node: &api.Node{
				Node: a.opts.NodeName, Address: "127.0.0.1", Datacenter: a.opts.Datacenter,
				TaggedAddresses: map[string]string{"lan": "127.0.0.1", "wan": "127.0.0.1"},
			},
			Service: a.agentService(in.svc),
			Checks:  in.checks,
		})
	}
	return out
}

// Consul's rules for meta (structs.ValidateServiceMetadata).
var metaKeyRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

func validateService(s *ServiceDefinition) error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if s.Kind != "" {
		add("Kind %q: the double registers typical services only", s.Kind)
	}
	if s.Name == "" {
		add("Missing service name")
	} else if !isDNSLabel(s.Name) {
		add("service name %q is not a valid DNS label; it would not be discoverable through DNS", s.Name)
	}
	if s.Port < 0 || s.Port > 65535 {
		add("port %d out of range", s.Port)
	}
	if s.Address != "" && net.ParseIP(s.Address) == nil && !isHostName(s.Address) {
		add("address %q is not an IP address or host name", s.Address)
	}
	for _, t := range s.Tags {
		if t == "" {
			add("an empty tag")
		}
	}
	if len(s.Meta) > 64 {
		add("%d meta pairs; at most 64", len(s.Meta))
	}
	for k, v := range s.Meta {
		switch {
		case !metaKeyRE.MatchString(k) || len(k) > 128:
			add("meta key %q: only letters, digits, '_' and '-', at most 128", k)
		case strings.HasPrefix(k, "consul-"):
			add("meta key %q: the prefix consul- is reserved", k)
		case len(v) > 512:
			add("meta value of %q longer than 512", k)
		}
	}
	if s.Weights != nil && (s.Weights.Passing < 1 || s.Weights.Warning < 0) {
		add("weights %+v: passing must be at least 1", *s.Weights)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func validateCheck(c *CheckDefinition) error {
	kinds := 0
	for _, set := range []bool{c.TTL != "", c.TCP != "", c.GRPC != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return fmt.Errorf("exactly one of TTL, TCP and GRPC must be set (the double implements these)")
	}
	switch c.Status {
	case "", api.HealthPassing, api.HealthWarning, api.HealthCritical:
	default:
		return fmt.Errorf("status %q", c.Status)
	}
	dur := func(name, v string, required bool) error {
		if v == "" {
			if required {
				return fmt.Errorf("%s is required", name)
			}
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s %q is not a positive duration", name, v)
		}
		return nil
	}
	if c.TTL != "" {
		if err := dur("TTL", c.TTL, true); err != nil {
			return err
		}
		if c.Interval != "" || c.Timeout != "" || c.GRPCUseTLS || c.TLSServerName != "" || c.TLSSkipVerify {
			return fmt.Errorf("a TTL check takes no Interval, Timeout or TLS settings")
		}
	} else {
		if err := dur("Interval", c.Interval, true); err != nil {
			return err
		}
		if err := dur("Timeout", c.Timeout, false); err != nil {
			return err
		}
		target := c.TCP
		if c.GRPC != "" {
			target, _, _ = strings.Cut(c.GRPC, "/")
		} else if c.GRPCUseTLS {
			return fmt.Errorf("GRPCUseTLS on a TCP check")
		}
		if _, _, err := net.SplitHostPort(target); err != nil {
			return fmt.Errorf("target %q is not host:port", target)
		}
	}
	return dur("DeregisterCriticalServiceAfter", c.DeregisterCriticalServiceAfter, false)
}

func cloneService(s *ServiceDefinition) ServiceDefinition {
	c := *s
	c.Tags = slices.Clone(s.Tags)
	if s.Meta != nil {
		c.Meta = make(map[string]string, len(s.Meta))
		for k, v := range s.Meta {
			c.Meta[k] = v
		}
	}
	if s.Weights != nil {
		w := *s.Weights
		c.Weights = &w
	}
	if s.Check != nil {
		cd := *s.Check
		c.Check = &cd
	}
	c.Checks = nil
	for _, cd := range s.Checks {
		x := *cd
		c.Checks = append(c.Checks, &x)
	}
	return c
}

// isDNSLabel and isHostName are Consul's name rules as the double applies
// them. They repeat the consul package's own checks on purpose: a double
// that called the validator it is there to check would agree with it even
// when both are wrong.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}
