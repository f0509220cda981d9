#!/bin/sh
# loghoused postremove (deb postrm: remove|purge|upgrade|...; rpm %postun:
# 0 on removal, 1 on upgrade). After removal systemd forgets the unit; a
# deb purge also deletes the certificates postinstall made. The data in
# /var/lib/loghouse and the loghouse user stay: delete them by hand.
set -eu

case "${1:-}" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
	fi
	;;
esac
if [ "${1:-}" = purge ]; then
	rm -rf /etc/loghouse/tls
fi
