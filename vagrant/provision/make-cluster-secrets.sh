#!/bin/sh
# make-cluster-secrets.sh [-loghoused BIN] DIR NODE=IP...
#
# Makes, once, everything the servers of one cluster share, in DIR:
#
#   loghouse-agent-ca.pem, -key.pem   the cluster CA
#   server-NODE.pem, -key.pem         a server certificate per NODE, with
#                                     IP among its addresses
#   client-root.pem, -key.pem         the CLI's client certificate ("root"
#                                     may do everything under the package's
#                                     ACL policy)
#   gossip.key                        Loghouse's gossip encryption key
#   consul-gossip.key                 Consul's gossip encryption key
#
# BIN (default: loghoused on PATH) makes them; it must run where this
# script runs. The Vagrantfile runs the script on the host, before the
# first VM boots, and each VM gets DIR through the synced folder; the
# container test runs it in its first container.
#
# Idempotent: existing files are kept, so running it again only adds what
# is missing (a new node's certificate). Delete DIR to start over, then
# reprovision every node. Runs exclude each other through DIR.lock (vagrant
# may bring machines up in parallel).
set -eu

usage() {
	echo "usage: make-cluster-secrets.sh [-loghoused BIN] DIR NODE=IP..." >&2
	exit 2
}

die() {
	echo "make-cluster-secrets.sh: $*" >&2
	exit 1
}

bin=loghoused
while [ $# -gt 0 ]; do
	case $1 in
	-loghoused)
		[ $# -ge 2 ] || usage
		bin=$2
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
dir=$1
shift
for pair in "$@"; do
	case $pair in
	?*=?*) ;;
	*) usage ;;
	esac
done

# tool runs BIN, which is needed only when something is missing.
tool() {
	command -v "$bin" >/dev/null ||
		die "$bin: not found; build one for this machine (\`make build\` makes bin/loghoused) and pass it with -loghoused"
	"$bin" "$@"
}

umask 077
lock=$dir.lock
tries=0
until mkdir "$lock" 2>/dev/null; do
	tries=$((tries + 1))
	[ "$tries" -le 120 ] || die "$lock has been there for two minutes; remove it if no other run is going on"
	sleep 1
done
trap 'rmdir "$lock"' EXIT
mkdir -p "$dir"

ca="$dir/loghouse-agent-ca.pem"
cakey="$dir/loghouse-agent-ca-key.pem"
made=""
if [ ! -e "$ca" ]; then
	tool tls ca create -dir "$dir" >/dev/null
	made="$made CA"
fi
for pair in "$@"; do
	node=${pair%%=*}
	ip=${pair#*=}
	if [ ! -e "$dir/server-$node.pem" ]; then
		tool tls cert create -server -name "$node" -ip "$ip" -dir "$dir" -ca "$ca" -ca-key "$cakey" >/dev/null
		made="$made server-$node($ip)"
	fi
done
if [ ! -e "$dir/client-root.pem" ]; then
	tool tls cert create -client -name root -dir "$dir" -ca "$ca" -ca-key "$cakey" >/dev/null
	made="$made client-root"
fi
for key in gossip.key consul-gossip.key; do
	if [ ! -s "$dir/$key" ]; then
		tool keygen >"$dir/.$key.tmp"
		mv -f "$dir/.$key.tmp" "$dir/$key"
		made="$made $key"
	fi
done
if [ -n "$made" ]; then
	echo "make-cluster-secrets.sh: $dir: made$made"
else
	echo "make-cluster-secrets.sh: $dir: up to date"
fi
