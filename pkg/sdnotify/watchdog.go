package sdnotify

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
)

// WatchdogInterval is the unit's WatchdogSec, or 0 when systemd runs no
// watchdog for this process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// Watchdog sends WATCHDOG=1 at once and then every half WatchdogSec until
// ctx ends. Without a watchdog it returns at once. A ping that fails is
// logged to logger (nil: nowhere), once per run of failures, and the loop
// goes on: the service manager may be re-executing. The caller owns the
// goroutine that runs it.
func (n *Notifier) Watchdog(ctx context.Context, logger hclog.Logger) {
	every := n.WatchdogInterval() / 2
	if every <= 0 {
		return
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		switch err := n.send("WATCHDOG=1"); {
		case err != nil && !failing:
			logger.Warn("systemd watchdog ping failed; retrying", "every", every, "error", err)
			failing = true
		case err == nil && failing:
			logger.Info("systemd watchdog ping works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
