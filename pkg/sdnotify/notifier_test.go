package sdnotify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/loghouse/loghouse/pkg/sdnotify"
)

// deadline bounds every wait for a datagram or a goroutine.
const deadline = 10 * time.Second

// fakeSystemd is the service manager's end of the notification socket.
type fakeSystemd struct {
	t    *testing.T
	conn *net.UnixConn
}

// socketPath is a socket path short enough for sockaddr_un (108 bytes),
// which t.TempDir's long names can exceed.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "notify")
}

// abstractName is a fresh name in the abstract socket namespace.
func abstractName() string {
	return fmt.Sprintf("@loghouse-sdnotify-test-%d-%d", os.Getpid(), rand.Uint64())
}

// listen binds name (a path or "@name") and points NOTIFY_SOCKET at it.
func listen(t *testing.T, name string) *fakeSystemd {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(sdnotify.EnvSocket, name)
	return &fakeSystemd{t: t, conn: conn}
}

// next returns the next datagram.
func (s *fakeSystemd) next() string {
	s.t.Helper()
	if err := s.conn.SetReadDeadline(time.Now().Add(deadline)); err != nil {
		s.t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := s.conn.Read(buf)
	if err != nil {
		s.t.Fatalf("no datagram within %s: %v", deadline, err)
	}
	return string(buf[:n])
}

// unsetenv unsets key for the rest of the test.
func unsetenv(t *testing.T, key string) {
	t.Helper()
	t.Setenv(key, "") // restores the old value at the end of the test
	os.Unsetenv(key)
}

func newNotifier(t *testing.T) *sdnotify.Notifier {
	t.Helper()
	n, err := sdnotify.New()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func monotonicUsec(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

func TestMessages(t *testing.T) {
	sockets := []struct {
		name string
		addr func(*testing.T) string
	}{
		{"path", socketPath},
		{"abstract", func(*testing.T) string { return abstractName() }},
	}
	cases := []struct {
		name string
		call func(*sdnotify.Notifier) error
		want string
	}{
		{"ready", (*sdnotify.Notifier).Ready, "READY=1"},
		{"stopping", (*sdnotify.Notifier).Stopping, "STOPPING=1"},
		{"status", func(n *sdnotify.Notifier) error { return n.Status("follower of node1") }, "STATUS=follower of node1"},
		{"status newlines", func(n *sdnotify.Notifier) error { return n.Status("a\nREADY=1\r\nb") }, "STATUS=a READY=1  b"},
		{"status empty", func(n *sdnotify.Notifier) error { return n.Status("") }, "STATUS="},
	}
	for _, sock := range sockets {
		t.Run(sock.name, func(t *testing.T) {
			unsetenv(t, sdnotify.EnvWatchdogUsec)
			sd := listen(t, sock.addr(t))
			n := newNotifier(t)
			if !n.Enabled() {
				t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if err := tc.call(n); err != nil {
						t.Fatal(err)
					}
					if got := sd.next(); got != tc.want {
						t.Errorf("datagram %q, want %q", got, tc.want)
					}
				})
			}
			t.Run("reloading", func(t *testing.T) {
				before := monotonicUsec(t)
				if err := n.Reloading(); err != nil {
					t.Fatal(err)
				}
				after := monotonicUsec(t)
				got := sd.next()
				rest, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
				if !ok {
					t.Fatalf("datagram %q, want RELOADING=1\\nMONOTONIC_USEC=<µs>", got)
				}
				usec, err := strconv.ParseInt(rest, 10, 64)
				if err != nil || usec < before || usec > after {
					t.Errorf("MONOTONIC_USEC=%q, want a number in [%d, %d]", rest, before, after)
				}
			})
		})
	}
}

func TestWithoutSystemd(t *testing.T) {
	unsetenv(t, sdnotify.EnvSocket)
	// A watchdog without a socket to ping is no watchdog.
	t.Setenv(sdnotify.EnvWatchdogUsec, "1000")
	t.Setenv(sdnotify.EnvWatchdogPID, strconv.Itoa(os.Getpid()))
	for name, n := range map[string]*sdnotify.Notifier{"New": newNotifier(t), "nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			if n.Enabled() {
				t.Error("Enabled() = true without NOTIFY_SOCKET")
			}
			if d := n.WatchdogInterval(); d != 0 {
				t.Errorf("WatchdogInterval() = %s, want 0", d)
			}
			for call, err := range map[string]error{"Ready": n.Ready(), "Status": n.Status("x"), "Reloading": n.Reloading(), "Stopping": n.Stopping()} {
				if err != nil {
					t.Errorf("%s: %v", call, err)
				}
			}
			done := make(chan struct{})
			go func() {
				n.Watchdog(context.Background(), nil)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(deadline):
				t.Fatal("Watchdog without a watchdog did not return")
			}
		})
	}
}

func TestBadEnvironment(t *testing.T) {
	cases := []struct {
		name         string
		socket, usec string
		pid          string
		want         error
	}{
		{name: "relative socket", socket: "run/notify", want: sdnotify.ErrBadSocket},
		{name: "bare @", socket: "@", want: sdnotify.ErrBadSocket},
		{name: "usec not a number", socket: "/run/notify", usec: "30s", want: sdnotify.ErrBadWatchdog},
		{name: "usec zero", socket: "/run/notify", usec: "0", want: sdnotify.ErrBadWatchdog},
		{name: "usec negative", socket: "/run/notify", usec: "-1", want: sdnotify.ErrBadWatchdog},
		{name: "usec overflows", socket: "/run/notify", usec: "99999999999999999999", want: sdnotify.ErrBadWatchdog},
		{name: "usec overflows a Duration", socket: "/run/notify", usec: "9223372036854776", want: sdnotify.ErrBadWatchdog},
		{name: "pid not a number", socket: "/run/notify", usec: "1000000", pid: "self", want: sdnotify.ErrBadWatchdog},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(sdnotify.EnvSocket, tc.socket)
			t.Setenv(sdnotify.EnvWatchdogUsec, tc.usec)
			t.Setenv(sdnotify.EnvWatchdogPID, tc.pid)
			n, err := sdnotify.New()
			if !errors.Is(err, tc.want) {
				t.Fatalf("New() = %v, %v; want %v", n, err, tc.want)
			}
			if n != nil {
				t.Errorf("New() returned a Notifier with error %v", err)
			}
		})
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	cases := []struct {
		name, usec, pid string
		want            time.Duration
	}{
		{"none", "", "", 0},
		{"ours", "30000000", self, 30 * time.Second},
		{"no pid", "1500", "", 1500 * time.Microsecond},
		{"another process's", "30000000", strconv.Itoa(os.Getpid() + 1), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(sdnotify.EnvSocket, socketPath(t))
			t.Setenv(sdnotify.EnvWatchdogUsec, tc.usec)
			t.Setenv(sdnotify.EnvWatchdogPID, tc.pid)
			if got := newNotifier(t).WatchdogInterval(); got != tc.want {
				t.Errorf("WatchdogInterval() = %s, want %s", got, tc.want)
			}
		})
	}
}

// runWatchdog runs n.Watchdog until the returned stop is called; stop
// waits for it to return.
func runWatchdog(t *testing.T, n *sdnotify.Notifier, logger hclog.Logger) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Watchdog(ctx, logger)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(deadline):
				t.Errorf("Watchdog did not return within %s of its context ending", deadline)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestWatchdogPings(t *testing.T) {
	for _, name := range []string{"path", "abstract"} {
		t.Run(name, func(t *testing.T) {
			addr := abstractName()
			if name == "path" {
				addr = socketPath(t)
			}
			sd := listen(t, addr)
			// 20ms: a ping every 10ms. Only arrival is checked, not spacing.
			t.Setenv(sdnotify.EnvWatchdogUsec, "20000")
			t.Setenv(sdnotify.EnvWatchdogPID, strconv.Itoa(os.Getpid()))
			stop := runWatchdog(t, newNotifier(t), nil)
			for i := range 3 {
				if got := sd.next(); got != "WATCHDOG=1" {
					t.Fatalf("datagram %d: %q, want WATCHDOG=1", i, got)
				}
			}
			stop()
		})
	}
}

// syncBuffer is a log destination read after the writer stopped.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestSendFailure(t *testing.T) {
	// Nobody listens yet: sends fail with the socket error.
	path := socketPath(t)
	t.Setenv(sdnotify.EnvSocket, path)
	t.Setenv(sdnotify.EnvWatchdogUsec, "20000")
	t.Setenv(sdnotify.EnvWatchdogPID, strconv.Itoa(os.Getpid()))
	var logs syncBuffer
	n := newNotifier(t)
	if err := n.Ready(); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Ready() with no socket = %v, want ENOENT", err)
	}
	// The watchdog keeps trying, logging the failure once, and goes on
	// pinging once the socket is there.
	stop := runWatchdog(t, n, hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info}))
	waitFor(t, func() bool { return strings.Contains(logs.String(), "ping failed") })
	sd := listen(t, path)
	if got := sd.next(); got != "WATCHDOG=1" {
		t.Fatalf("datagram %q, want WATCHDOG=1", got)
	}
	stop()
	out := logs.String()
	if c := strings.Count(out, "ping failed"); c != 1 {
		t.Errorf("logged %d failures, want 1:\n%s", c, out)
	}
	if !strings.Contains(out, "works again") {
		t.Errorf("recovery not logged:\n%s", out)
	}
}

// waitFor polls cond until it holds, failing the test after deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("condition not met within %s", deadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
