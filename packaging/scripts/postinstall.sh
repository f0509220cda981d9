#!/bin/sh
# loghoused postinstall (deb postinst: configure|abort-*; rpm %post: 1|2).
# Every step is idempotent:
#   - the data directory belongs to loghouse;
#   - on first install (no CA in /etc/loghouse/tls), a CA, a server
#     certificate for this host's name (the agent's default node_name)
#     linked as server.pem/server-key.pem, and a "root" client
#     certificate for the CLI; an existing CA is never touched;
#   - systemd, where it runs, reloads its units. The service is neither
#     enabled nor started: `systemctl enable --now loghoused`.
set -eu

tls=/etc/loghouse/tls

chown loghouse:loghouse /var/lib/loghouse
chmod 0750 /var/lib/loghouse

# make_tls writes the certificates into a temporary directory and moves
# them into place only when all of them were made, so a failure leaves no
# half-made set behind.
make_tls() {
	node=$(uname -n)
	tmp=$(mktemp -d "$tls/.new.XXXXXX") || return 1
	if ! {
		/usr/bin/loghoused tls ca create -dir "$tmp" >/dev/null &&
			/usr/bin/loghoused tls cert create -server -name "$node" -dir "$tmp" \
				-ca "$tmp/loghouse-agent-ca.pem" -ca-key "$tmp/loghouse-agent-ca-key.pem" >/dev/null &&
			/usr/bin/loghoused tls cert create -client -name root -dir "$tmp" \
				-ca "$tmp/loghouse-agent-ca.pem" -ca-key "$tmp/loghouse-agent-ca-key.pem" >/dev/null &&
			ln -s "server-$node.pem" "$tmp/server.pem" &&
			ln -s "server-$node-key.pem" "$tmp/server-key.pem" &&
			# The agent reads its key through its group; the CA key and
			# the root client key stay root's alone.
			chgrp loghouse "$tmp/server-$node-key.pem" &&
			chmod 0640 "$tmp/server-$node-key.pem"
	}; then
		rm -rf "$tmp"
		return 1
	fi
	# The CA certificate last: its presence means the set is complete.
	for f in "$tmp"/*; do
		case "$f" in */loghouse-agent-ca.pem) continue ;; esac
		mv -f "$f" "$tls/" || return 1
	done
	mv -f "$tmp/loghouse-agent-ca.pem" "$tls/" || return 1
	rmdir "$tmp" || return 1
	cat <<EOF
loghoused: made a CA, a server certificate for "$node" and a "root" client
certificate in $tls. Start the agent with:

    systemctl enable --now loghoused

and, as root, point the CLI at it with:

    export LOGHOUSE_ADDR=127.0.0.1:8400
    export LOGHOUSE_CACERT=$tls/loghouse-agent-ca.pem
    export LOGHOUSE_CLIENT_CERT=$tls/client-root.pem
    export LOGHOUSE_CLIENT_KEY=$tls/client-root-key.pem
EOF
}

if [ ! -e "$tls/loghouse-agent-ca.pem" ]; then
	if ! make_tls; then
		# Not fatal: the package stays installed and the agent says
		# which file it misses when it starts.
		echo "loghoused: could not make the certificates in $tls; make them with" \
			"\`loghoused tls ca create\` and \`loghoused tls cert create\` (see config.hcl)" >&2
	fi
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi
