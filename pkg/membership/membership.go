package membership

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Tag names a member advertises.
const (
	TagRole    = "role"     // RoleServer for a Loghouse server
	TagRPCAddr = "rpc_addr" // host:port of gRPC and raft
	TagExpect  = "expect"   // its bootstrap_expect, if set
	RoleServer = "server"
)

// Member statuses, as Members reports them.
const (
	StatusAlive   = "alive"
	StatusLeaving = "leaving"
	StatusLeft    = "left"
	StatusFailed  = "failed"
)

// Member is one node of the gossip pool.
type Member struct {
	Name    string            // node name: the raft server ID
	Addr    string            // gossip host:port
	RPCAddr string            // from TagRPCAddr
	Role    string            // from TagRole
	Expect  int               // from TagExpect; 0 if absent
	Status  string            // Status*
	Tags    map[string]string // every tag
}

// IsServer reports whether m is a Loghouse server with an RPC address.
func (m Member) IsServer() bool { return m.Role == RoleServer && m.RPCAddr != "" }

// Config configures a Membership.
type Config struct {
	// NodeName is the node's unique name. Required.
	NodeName string
	// BindAddr and BindPort are where gossip listens (TCP and UDP). Port 0
	// picks a free port (tests).
	BindAddr string
	BindPort int
	// AdvertiseAddr is the address others reach this node's gossip at.
	// Default: BindAddr. The port is the bound port.
	AdvertiseAddr string
	// RPCAddr is advertised in TagRPCAddr. Required.
	RPCAddr string
	// BootstrapExpect is advertised in TagExpect when positive.
	BootstrapExpect int
	// EncryptKey encrypts gossip (16, 24 or 32 bytes). Nil: plain text.
	EncryptKey []byte
	// DataDir, if set, keeps Serf's snapshot in DataDir/serf so a
	// restarted node rejoins the members it knew.
	DataDir string
	// RetryJoin are gossip addresses (host:port) to join. Join is retried
	// with back-off until one of them answers.
	RetryJoin []string
	// RetryInterval is the longest wait between join attempts; the wait
	// doubles from RetryInitial up to it. Default: 30s.
	RetryInterval time.Duration
	// RetryInitial is the first wait. Default: 1s (or RetryInterval if
	// that is shorter).
	RetryInitial time.Duration
	// RetryMax is the number of join attempts before giving up (reported
	// on Fatal). Zero: forever.
	RetryMax int
	// ReconnectTimeout is how long a failed member is kept before Serf
	// reaps it. Default: 72h.
	ReconnectTimeout time.Duration
	// Local uses memberlist's local-network timings (fast failure
	// detection, for tests and single-host clusters) instead of the LAN
	// ones.
	Local bool
	// Logger is the parent logger.
	Logger hclog.Logger
}

// Membership is a node's view of the gossip pool. It never stops handling
// events while it runs, whatever it sees happen to itself (a node that
// left and rejoins keeps working).
type Membership struct {
	cfg    Config
	logger hclog.Logger
	serf   *serf.Serf
	events chan serf.Event

	changed chan struct{} // has room for one pending notification
	fatal   chan error

	mu     sync.Mutex
	reaped map[string]bool // members reaped since the last TakeReaped

	stop chan struct{}
	wg   sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// New starts gossip and, if RetryJoin is set, the join loop.
func New(cfg Config) (*Membership, error) {
	if cfg.NodeName == "" || cfg.RPCAddr == "" {
		return nil, errors.New("membership: NodeName and RPCAddr are required")
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 30 * time.Second
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = min(time.Second, cfg.RetryInterval)
	}
	if cfg.ReconnectTimeout == 0 {
		cfg.ReconnectTimeout = 72 * time.Hour
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	m := &Membership{
		cfg:     cfg,
		logger:  logger,
		events:  make(chan serf.Event, 256),
		changed: make(chan struct{}, 1),
		fatal:   make(chan error, 1),
		reaped:  map[string]bool{},
		stop:    make(chan struct{}),
	}

	sc := serf.DefaultConfig()
	sc.Init()
	sc.NodeName = cfg.NodeName
	sc.Tags = map[string]string{TagRole: RoleServer, TagRPCAddr: cfg.RPCAddr}
	if cfg.BootstrapExpect > 0 {
		sc.Tags[TagExpect] = strconv.Itoa(cfg.BootstrapExpect)
	}
	sc.EventCh = m.events
	sc.ReconnectTimeout = cfg.ReconnectTimeout
	sc.EnableNameConflictResolution = true
	sc.RejoinAfterLeave = true
	// Serf and memberlist log through the standard library's logger; route
	// it to hclog with levels inferred from their "[WARN]" prefixes.
	std := logger.Named("serf").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	sc.Logger = std
	if cfg.DataDir != "" {
		dir := filepath.Join(cfg.DataDir, "serf")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("membership: %w", err)
		}
		sc.SnapshotPath = filepath.Join(dir, "local.snapshot")
	}
	if cfg.Local {
		sc.MemberlistConfig = memberlist.DefaultLocalConfig()
		sc.ReapInterval = time.Second
		sc.ReconnectInterval = time.Second
	} else {
		sc.MemberlistConfig = memberlist.DefaultLANConfig()
	}
	ml := sc.MemberlistConfig
	ml.Name = cfg.NodeName
	ml.BindAddr = cfg.BindAddr
	ml.BindPort = cfg.BindPort
	ml.AdvertiseAddr = cfg.AdvertiseAddr
	if ml.AdvertiseAddr == "" {
		ml.AdvertiseAddr = cfg.BindAddr
	}
	ml.AdvertisePort = cfg.BindPort
	ml.SecretKey = cfg.EncryptKey
	ml.Logger = std
	ml.LogOutput = nil

	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort)), err)
	}
	m.serf = s
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.eventLoop()
	}()
	if len(cfg.RetryJoin) > 0 {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.retryJoin()
		}()
	}
	return m, nil
}

// Addr is the gossip address this node advertises.
func (m *Membership) Addr() string {
	lm := m.serf.LocalMember()
	return net.JoinHostPort(lm.Addr.String(), strconv.Itoa(int(lm.Port)))
}

// Join joins the pool through any of addrs and returns how many answered.
func (m *Membership) Join(addrs ...string) (int, error) {
	n, err := m.serf.Join(addrs, true)
	if n > 0 {
		m.notify()
		return n, nil
	}
	if err != nil {
		return 0, fmt.Errorf("membership: join %v: %w", addrs, err)
	}
	return 0, fmt.Errorf("membership: join %v: nobody answered", addrs)
}

// retryJoin tries RetryJoin until one address answers, waiting between
// attempts with jittered, doubling back-off. It gives up after RetryMax
// attempts, if set, and reports that on Fatal.
func (m *Membership) retryJoin() {
	wait := m.cfg.RetryInitial
	for attempt := 1; ; attempt++ {
		n, err := m.Join(m.cfg.RetryJoin...)
		if err == nil {
			m.logger.Info("joined the cluster", "answered", n, "attempt", attempt)
			return
		}
		if m.cfg.RetryMax > 0 && attempt >= m.cfg.RetryMax {
			err = fmt.Errorf("membership: retry_join gave up after %d attempts: %w", attempt, err)
			m.logger.Error("cannot join the cluster", "error", err)
			m.fatal <- err
			return
		}
		m.logger.Warn("join failed; retrying", "attempt", attempt, "in", wait, "error", err)
		// Jitter of up to a quarter keeps restarted nodes from joining in
		// lockstep.
		d := wait + rand.N(wait/4+1)
		select {
		case <-m.stop:
			return
		case <-time.After(d):
		}
		wait = min(2*wait, m.cfg.RetryInterval)
	}
}

// eventLoop turns Serf's events into change notifications and remembers
// reaped members. It ends only on Shutdown.
func (m *Membership) eventLoop() {
	for {
		select {
		case <-m.stop:
			return
		case e := <-m.events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			for _, mem := range me.Members {
				m.logger.Info("member event", "event", me.Type.String(), "member", mem.Name, "addr", net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port))))
				if me.Type == serf.EventMemberReap {
					m.mu.Lock()
					m.reaped[mem.Name] = true
					m.mu.Unlock()
				}
				if me.Type == serf.EventMemberJoin {
					m.mu.Lock()
					delete(m.reaped, mem.Name)
					m.mu.Unlock()
				}
			}
			m.notify()
		}
	}
}

func (m *Membership) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Changed yields a value after membership changed (coalesced: one pending
// notification stands for any number of changes).
func (m *Membership) Changed() <-chan struct{} { return m.changed }

// Fatal yields an error if the node gave up joining (RetryMax).
func (m *Membership) Fatal() <-chan error { return m.fatal }

// TakeReaped returns the members reaped since the last call and forgets
// them; PutReaped gives back those not yet handled.
func (m *Membership) TakeReaped() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.reaped))
	for n := range m.reaped {
		out = append(out, n)
	}
	clear(m.reaped)
	sort.Strings(out)
	return out
}

// PutReaped records names as reaped again (their removal failed).
func (m *Membership) PutReaped(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		m.reaped[n] = true
	}
}

// Members returns every member this node knows, sorted by name.
func (m *Membership) Members() []Member {
	sm := m.serf.Members()
	out := make([]Member, 0, len(sm))
	for _, s := range sm {
		mem := Member{
			Name:    s.Name,
			Addr:    net.JoinHostPort(s.Addr.String(), strconv.Itoa(int(s.Port))),
			RPCAddr: s.Tags[TagRPCAddr],
			Role:    s.Tags[TagRole],
			Status:  statusName(s.Status),
			Tags:    s.Tags,
		}
		if e, err := strconv.Atoi(s.Tags[TagExpect]); err == nil {
			mem.Expect = e
		}
		out = append(out, mem)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func statusName(s serf.MemberStatus) string {
	switch s {
	case serf.StatusAlive:
		return StatusAlive
	case serf.StatusLeaving:
		return StatusLeaving
	case serf.StatusLeft:
		return StatusLeft
	case serf.StatusFailed:
		return StatusFailed
	}
	return s.String()
}

// Leave tells the pool this node leaves for good (graceful), waiting for
// the message to spread.
func (m *Membership) Leave() error {
	if err := m.serf.Leave(); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossip without leaving (the others will see the node
// fail) and ends the loops. It is idempotent.
func (m *Membership) Shutdown() error {
	m.shutdownOnce.Do(func() {
		close(m.stop)
		if err := m.serf.Shutdown(); err != nil {
			m.shutdownErr = fmt.Errorf("membership: shutdown: %w", err)
		}
		m.wg.Wait()
	})
	return m.shutdownErr
}
