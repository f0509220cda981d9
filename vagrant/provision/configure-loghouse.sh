#!/bin/sh
# configure-loghouse.sh [-consul] [-secrets DIR] NODE IP [PEER_IP...]
#
# Makes the loghoused that install-loghouse.sh installed the server NODE,
# at address IP, of a cluster of 1 + (number of PEER_IPs) servers:
#
#   - /etc/loghouse/tls: the cluster's CA certificate, NODE's server
#     certificate and key (linked as server.pem and server-key.pem, the
#     names the package's config uses) and the "root" client certificate
#     and key for the CLI, from DIR (default /vagrant/.cluster), which
#     make-cluster-secrets.sh filled. Certificates of another CA (the
#     package's own, made on first install) are removed first. The
#     cluster CA's key stays in DIR: servers do not sign.
#   - /etc/loghouse/config.hcl: node_name NODE; bind_addr IP; the same
#     bootstrap_expect on every server; retry_join the peers; the gossip
#     key from DIR/gossip.key; the package's ACL files. With -consul the
#     node also registers with the local Consul agent and joins the
#     servers in Consul's catalog. The file is checked with
#     `loghoused validate` before it replaces the old one.
#   - /etc/profile.d/loghouse-cli.sh: LOGHOUSE_* for root's login shells
#     (`sudo -i`), so the CLI finds the cluster.
#   - The service enabled and started without waiting (--no-block): the
#     first servers of a new cluster are ready only once bootstrap_expect
#     of them have met, so waiting here would wait for the next host.
#     smoke.sh waits for the cluster.
#
# Idempotent: files that would not change are left alone, and so is a
# running agent; one that runs with other files is restarted. Configure a
# server before its first start: the script refuses one whose data
# directory an agent with another configuration (a cluster of its own)
# has written to.
#
# The Vagrant testbed (vagrant/Vagrantfile) and the container test
# (packaging/install_test.go) both run this script.
set -eu

usage() {
	echo "usage: configure-loghouse.sh [-consul] [-secrets DIR] NODE IP [PEER_IP...]" >&2
	exit 2
}

die() {
	echo "configure-loghouse.sh: $*" >&2
	exit 1
}

consul=false
secrets=/vagrant/.cluster
while [ $# -gt 0 ]; do
	case $1 in
	-consul)
		consul=true
		shift
		;;
	-secrets)
		[ $# -ge 2 ] || usage
		secrets=$2
		shift 2
		;;
	--)
		shift
		break
		;;
	-*) usage ;;
	*) break ;;
	esac
done
[ $# -ge 2 ] || usage
node=$1
ip=$2
shift 2

etc=/etc/loghouse
tls=$etc/tls
command -v loghoused >/dev/null || die "loghoused is not installed: run install-loghouse.sh first"
getent group loghouse >/dev/null || die "no group loghouse: run install-loghouse.sh first"
for f in loghouse-agent-ca.pem "server-$node.pem" "server-$node-key.pem" client-root.pem client-root-key.pem gossip.key; do
	[ -s "$secrets/$f" ] || die "$secrets/$f is missing: make-cluster-secrets.sh makes it"
done

# A server that ran with another configuration (the package's, a cluster
# of its own) has raft state that would keep it out of this cluster.
if [ -n "$(find /var/lib/loghouse -mindepth 1 -maxdepth 1 | head -n 1)" ] &&
	! sed -n 1p "$etc/config.hcl" | grep -q '^# Written by configure-loghouse.sh'; then
	die "/var/lib/loghouse holds the state of an agent that ran with another configuration;" \
		"to make this host $node, stop loghoused and empty /var/lib/loghouse (its data is lost)"
fi

# changed is set when a file the agent reads was replaced.
changed=false

# put SRC DST MODE GROUP copies SRC to DST (owner root) unless DST already
# holds the same bytes, and sets the mode and group either way.
put() {
	if ! cmp -s "$1" "$2"; then
		install -m "$3" -o root -g "$4" "$1" "$2"
		changed=true
	fi
	chmod "$3" "$2"
	chown "root:$4" "$2"
}

# link NAME TARGET points the symbolic link NAME in $tls at TARGET.
link() {
	if [ "$(readlink "$tls/$1" || true)" != "$2" ]; then
		ln -sfn "$2" "$tls/$1"
		changed=true
	fi
}

if ! cmp -s "$secrets/loghouse-agent-ca.pem" "$tls/loghouse-agent-ca.pem"; then
	# Another CA's files (the package's own): none of them is of use in
	# this cluster.
	find "$tls" -mindepth 1 -maxdepth 1 -name '*.pem' -exec rm -f {} +
	changed=true
fi
put "$secrets/server-$node.pem" "$tls/server-$node.pem" 0644 root
put "$secrets/server-$node-key.pem" "$tls/server-$node-key.pem" 0640 loghouse
put "$secrets/client-root.pem" "$tls/client-root.pem" 0644 root
put "$secrets/client-root-key.pem" "$tls/client-root-key.pem" 0600 root
link server.pem "server-$node.pem"
link server-key.pem "server-$node-key.pem"
# The CA certificate last: the package's postinstall takes its presence
# to mean that the set is complete, and so does this script.
put "$secrets/loghouse-agent-ca.pem" "$tls/loghouse-agent-ca.pem" 0644 root

joins=""
addrs="$ip:8400"
for peer in "$@"; do
	joins="$joins${joins:+, }\"$peer\""
	addrs="$addrs,$peer:8400"
done
expect=$(($# + 1))
key=$(cat "$secrets/gossip.key")

new=$(mktemp "$etc/.config.hcl.XXXXXX")
mkdir -p /etc/profile.d
cli=$(mktemp /etc/profile.d/.loghouse-cli.sh.XXXXXX)
trap 'rm -f "$new" "$cli"' EXIT
cat >"$new" <<HCL
# Written by configure-loghouse.sh (vagrant/provision/ in the Loghouse
# repository): server $node of a cluster of $expect. Run the script again
# rather than editing this file; every setting, with its default, is in
# /usr/share/doc/loghoused/config.hcl.example.
node_name        = "$node"
data_dir         = "/var/lib/loghouse"
bind_addr        = "$ip"
bootstrap_expect = $expect
retry_join       = [$joins]
encrypt          = "$key"

tls {
  ca_file   = "$tls/loghouse-agent-ca.pem"
  cert_file = "$tls/server.pem"
  key_file  = "$tls/server-key.pem"
}

acl {
  model_file  = "$etc/model.conf"
  policy_file = "$etc/policy.csv"
}
HCL
if [ "$consul" = true ]; then
	cat >>"$new" <<HCL

# Register with the local Consul agent (service "loghouse", a "leader" tag
# on the leader) and join the servers registered in its catalog.
consul {
  enabled = true
  join    = true
}
HCL
fi
chmod 0640 "$new"
chgrp loghouse "$new"
loghoused validate "$new" >/dev/null || die "the configuration does not validate (above)"
if ! cmp -s "$new" "$etc/config.hcl"; then
	mv -f "$new" "$etc/config.hcl"
	changed=true
fi

cat >"$cli" <<SH
# Written by configure-loghouse.sh: points the loghoused CLI at the
# cluster, as root (the client key is root's alone).
export LOGHOUSE_ADDR=$addrs
export LOGHOUSE_CACERT=$tls/loghouse-agent-ca.pem
export LOGHOUSE_CLIENT_CERT=$tls/client-root.pem
export LOGHOUSE_CLIENT_KEY=$tls/client-root-key.pem
SH
if ! cmp -s "$cli" /etc/profile.d/loghouse-cli.sh; then
	chmod 0644 "$cli"
	mv -f "$cli" /etc/profile.d/loghouse-cli.sh
fi

systemctl enable loghoused.service
state=$(systemctl show --property=ActiveState --value loghoused.service)
case $state in
active | activating | reloading)
	if [ "$changed" = true ]; then
		systemctl restart --no-block loghoused.service
		what="restarted with the new files"
	else
		what="running, unchanged"
	fi
	;;
*)
	systemctl start --no-block loghoused.service
	what="starting"
	;;
esac
echo "configure-loghouse.sh: $node at $ip, one of $expect servers (consul: $consul); loghoused $what"
