// Package sdnotify tells systemd how the agent is doing, through the
// sd_notify(3) protocol, so that a unit with Type=notify is "started" only
// once the node serves clients, shows progress in `systemctl status`, and
// is restarted if the process stops answering its watchdog.
//
// # Protocol
//
// systemd passes the notification socket in NOTIFY_SOCKET: a file-system
// path ("/run/systemd/notify") or, with a leading '@', a name in the
// abstract socket namespace (the '@' stands for the leading NUL byte).
// Each call sends one datagram on a unixgram socket dialled for that call,
// holding newline-separated KEY=VALUE assignments:
//
//	Ready      READY=1                                 start-up is complete; also ends a reload
//	Status     STATUS=<text>                           free text for `systemctl status`
//	Reloading  RELOADING=1 MONOTONIC_USEC=<µs>         a reload (SIGHUP) began; READY=1 ends it
//	Stopping   STOPPING=1                              shutdown began
//	Watchdog   WATCHDOG=1                              keep-alive, every half WatchdogSec
//
// MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds, which systemd 253 and
// later require with RELOADING=1 for Type=notify-reload; older versions and
// Type=notify ignore it. A STATUS text has its newlines replaced by spaces,
// so it cannot inject other assignments. A dialled socket is not kept: the
// service manager may re-execute and re-create its socket at any time.
//
// With Type=notify, systemd accepts messages only from the main process by
// default (NotifyAccess=main); every goroutine of the agent qualifies.
//
// # Watchdog
//
// When the unit sets WatchdogSec, systemd passes WATCHDOG_USEC (the period)
// and WATCHDOG_PID (the process meant; another process's value disables
// the watchdog here, as sd_watchdog_enabled(3) does). Watchdog sends
// WATCHDOG=1 at once and then every half period, as sd_watchdog_enabled(3)
// recommends, until its context ends. A ping that cannot be sent is logged
// once, not on every tick, and the loop goes on.
//
// # Without systemd
//
// With NOTIFY_SOCKET unset or empty every method is a no-op that returns
// nil, and so is every method of a nil *Notifier: code can hold one
// unconditionally. New reads the environment once and leaves it as it is;
// a malformed NOTIFY_SOCKET, WATCHDOG_USEC or WATCHDOG_PID is an error
// (ErrBadSocket, ErrBadWatchdog), so that a broken unit fails at start
// rather than timing out.
//
// The protocol is small enough that this package speaks it directly over
// net and golang.org/x/sys/unix (for CLOCK_MONOTONIC) instead of adding
// github.com/coreos/go-systemd to the module graph; go-systemd's daemon
// package also re-reads the environment on every call, where a Notifier
// captures it once.
package sdnotify
