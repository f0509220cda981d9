#!/bin/sh
# loghoused preremove (deb prerm: remove|upgrade|deconfigure|failed-upgrade;
# rpm %preun: 0 on removal, 1 on upgrade): on removal, stop and disable the
# service. An upgrade leaves it running; restart it when it suits the
# cluster (one server at a time).
set -eu

case "${1:-}" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl --no-reload disable loghoused.service
		systemctl stop loghoused.service
	fi
	;;
esac
