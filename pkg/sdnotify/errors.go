package sdnotify

import "errors"

var (
	// ErrBadSocket means NOTIFY_SOCKET names neither a socket path
	// ("/...") nor an abstract socket ("@...").
	ErrBadSocket = errors.New("sdnotify: NOTIFY_SOCKET is neither an absolute path nor an abstract name (@...)")
	// ErrBadWatchdog means WATCHDOG_USEC or WATCHDOG_PID is not a
	// positive integer.
	ErrBadWatchdog = errors.New("sdnotify: malformed watchdog environment")
)
