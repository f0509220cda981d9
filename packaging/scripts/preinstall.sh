#!/bin/sh
# loghoused preinstall (deb preinst: install|upgrade; rpm %pre: 1|2):
# the system user and group the agent runs as, before the files they own
# are unpacked.
set -eu

if ! getent group loghouse >/dev/null; then
	groupadd --system loghouse
fi
if ! getent passwd loghouse >/dev/null; then
	nologin=$(command -v nologin || echo /usr/sbin/nologin)
	useradd --system --gid loghouse --home-dir /var/lib/loghouse --no-create-home \
		--shell "$nologin" --comment "Loghouse agent" loghouse
fi
