package membership

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/serf/serf"
)

var testKey = bytes.Repeat([]byte{7}, 32)

func start(t *testing.T, name string, key []byte, join ...string) *Membership {
	t.Helper()
	m, err := New(Config{
		NodeName:         name,
		BindAddr:         "127.0.0.1",
		RPCAddr:          "127.0.0.1:1" + name[len(name)-1:],
		BootstrapExpect:  3,
		EncryptKey:       key,
		DataDir:          t.TempDir(),
		RetryJoin:        join,
		RetryInterval:    200 * time.Millisecond,
		ReconnectTimeout: 2 * time.Second,
		Local:            true,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// waitFor polls until cond holds or 15s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statusOf(m *Membership, name string) string {
	for _, mem := range m.Members() {
		if mem.Name == name {
			return mem.Status
		}
	}
	return ""
}

func statuses(m *Membership) string {
	var b strings.Builder
	for _, mem := range m.Members() {
		fmt.Fprintf(&b, "%s=%s ", mem.Name, mem.Status)
	}
	return b.String()
}

func TestJoinFailLeaveReap(t *testing.T) {
	n1 := start(t, "n1", testKey)
	// n2 and n3 retry until n1 answers; n3 is started before it can.
	n2 := start(t, "n2", testKey, n1.Addr())
	n3 := start(t, "n3", testKey, n2.Addr())
	waitFor(t, "three alive members", func() bool {
		return statuses(n1) == "n1=alive n2=alive n3=alive "
	})
	mem := n1.Members()[1]
	if mem.RPCAddr != "127.0.0.1:12" || mem.Role != RoleServer || mem.Expect != 3 || !mem.IsServer() {
		t.Fatalf("n2 as n1 sees it: %+v", mem)
	}
	<-n1.Changed() // at least one change was signalled

	// A crash: n3 stops without leaving. It is failed, then reaped.
	if err := n3.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n3 failed", func() bool { return statusOf(n1, "n3") == StatusFailed })
	waitFor(t, "n3 reaped", func() bool { return statusOf(n1, "n3") == "" })
	// The reap event reaches the event loop a moment after Serf drops
	// the member from its list.
	var reaped []string
	waitFor(t, "the reap to be recorded", func() bool {
		reaped = append(reaped, n1.TakeReaped()...)
		return len(reaped) > 0
	})
	if len(reaped) != 1 || reaped[0] != "n3" {
		t.Fatalf("reaped %v, want [n3]", reaped)
	}
	if got := n1.TakeReaped(); len(got) != 0 {
		t.Fatalf("reaped again %v", got)
	}
	n1.PutReaped("n3")
	if got := n1.TakeReaped(); len(got) != 1 {
		t.Fatalf("PutReaped lost it: %v", got)
	}

	// A graceful leave: n2 is left, not failed.
	if err := n2.Leave(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 left", func() bool { return statusOf(n1, "n2") == StatusLeft })
}

func TestEventsAboutItselfDoNotStopTheLoop(t *testing.T) {
	n1 := start(t, "n1", testKey)
	n2 := start(t, "n2", testKey, n1.Addr())
	waitFor(t, "n2 joined", func() bool { return statusOf(n1, "n2") == StatusAlive })
	// A node can see itself fail or leave (a pause, a partition, a false
	// suspicion it then refutes). proglog's handler returned there.
	self := n2.serf.LocalMember()
	for _, typ := range []serf.EventType{serf.EventMemberFailed, serf.EventMemberLeave, serf.EventMemberReap} {
		n2.events <- serf.MemberEvent{Type: typ, Members: []serf.Member{self}}
	}
	waitFor(t, "the loop handled the events", func() bool {
		got := n2.TakeReaped()
		return len(got) == 1 && got[0] == "n2"
	})
	// It still follows real changes.
	start(t, "n3", testKey, n1.Addr())
	waitFor(t, "n2 sees n3", func() bool { return statusOf(n2, "n3") == StatusAlive })
	waitFor(t, "n3's join is handled", func() bool {
		select {
		case <-n2.Changed():
			return true
		default:
			return false
		}
	})
}

func TestWrongKeyCannotJoin(t *testing.T) {
	n1 := start(t, "n1", testKey)
	other := bytes.Repeat([]byte{8}, 32)
	m, err := New(Config{NodeName: "x9", BindAddr: "127.0.0.1", RPCAddr: "127.0.0.1:19", EncryptKey: other, Local: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Shutdown() }()
	if _, err := m.Join(n1.Addr()); err == nil {
		t.Fatal("a node with another gossip key joined")
	}
	if statusOf(n1, "x9") != "" {
		t.Fatalf("n1 lists the intruder: %s", statuses(n1))
	}
}

func TestRetryMaxGivesUp(t *testing.T) {
	m, err := New(Config{
		NodeName: "lonely", BindAddr: "127.0.0.1", RPCAddr: "127.0.0.1:1",
		RetryJoin: []string{"127.0.0.1:1"}, RetryMax: 2, RetryInterval: 50 * time.Millisecond, Local: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Shutdown() }()
	select {
	case err := <-m.Fatal():
		if !strings.Contains(err.Error(), "gave up after 2 attempts") {
			t.Fatalf("fatal %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("retry_join never gave up")
	}
}
