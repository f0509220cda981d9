package sdnotify

import (
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The environment systemd sets for a service.
const (
	// EnvSocket is the notification socket: a path, or "@name".
	EnvSocket = "NOTIFY_SOCKET"
	// EnvWatchdogUsec is WatchdogSec in microseconds.
	EnvWatchdogUsec = "WATCHDOG_USEC"
	// EnvWatchdogPID is the process the watchdog is meant for.
	EnvWatchdogPID = "WATCHDOG_PID"
)

// Notifier sends state changes to the service manager. The zero value and
// a nil *Notifier send nothing. It is safe for concurrent use.
type Notifier struct {
	addr     *net.UnixAddr // nil: not started by systemd, send nothing
	watchdog time.Duration // WatchdogSec; 0: no watchdog
}

// New reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. Without
// NOTIFY_SOCKET the Notifier sends nothing.
func New() (*Notifier, error) {
	n := &Notifier{}
	sock := os.Getenv(EnvSocket)
	if sock == "" {
		return n, nil
	}
	if !strings.HasPrefix(sock, "/") && !strings.HasPrefix(sock, "@") || sock == "@" {
		return nil, fmt.Errorf("%w: %q", ErrBadSocket, sock)
	}
	// net turns a leading '@' into the NUL byte of an abstract name.
	n.addr = &net.UnixAddr{Name: sock, Net: "unixgram"}
	var err error
	if n.watchdog, err = watchdogFromEnv(); err != nil {
		return nil, err
	}
	return n, nil
}

// watchdogFromEnv returns WatchdogSec, or 0 when systemd set no watchdog
// or set it for another process.
func watchdogFromEnv() (time.Duration, error) {
	usec := os.Getenv(EnvWatchdogUsec)
	if usec == "" {
		return 0, nil
	}
	u, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || u <= 0 || u > math.MaxInt64/int64(time.Microsecond) {
		return 0, fmt.Errorf("%w: %s=%q", ErrBadWatchdog, EnvWatchdogUsec, usec)
	}
	if pid := os.Getenv(EnvWatchdogPID); pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p <= 0 {
			return 0, fmt.Errorf("%w: %s=%q", ErrBadWatchdog, EnvWatchdogPID, pid)
		}
		if p != os.Getpid() {
			return 0, nil // meant for another process (we were forked or exec'd)
		}
	}
	return time.Duration(u) * time.Microsecond, nil
}

// Enabled reports whether the process runs under a service manager that
// listens (NOTIFY_SOCKET was set).
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Ready says start-up (or a reload) is complete: the node serves clients.
func (n *Notifier) Ready() error { return n.send("READY=1") }

// Status sets the free-form status line `systemctl status` shows.
// Newlines in s become spaces.
func (n *Notifier) Status(s string) error {
	return n.send("STATUS=" + strings.NewReplacer("\r", " ", "\n", " ").Replace(s))
}

// Reloading says a reload began; call Ready when it is over, whether or not
// it succeeded. It sends the current CLOCK_MONOTONIC time too, as systemd
// requires for Type=notify-reload.
func (n *Notifier) Reloading() error {
	if !n.Enabled() {
		return nil
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sdnotify: read CLOCK_MONOTONIC: %w", err)
	}
	return n.send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10))
}

// Stopping says shutdown began.
func (n *Notifier) Stopping() error { return n.send("STOPPING=1") }

// send writes state as one datagram to the notification socket.
func (n *Notifier) send(state string) error {
	if !n.Enabled() {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: dial %s: %w", n.addr.Name, err)
	}
	_, err = conn.Write([]byte(state))
	if cerr := conn.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		first, _, _ := strings.Cut(state, "\n")
		return fmt.Errorf("sdnotify: send %s to %s: %w", first, n.addr.Name, err)
	}
	return nil
}
