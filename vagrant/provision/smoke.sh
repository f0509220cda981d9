#!/bin/sh
# smoke.sh [-voters N] [-wait SECONDS] [-addr ADDRS] [-consul] [RECORD...]
#
# Checks a Loghouse cluster with the loghoused CLI, as root:
#
#   1. `loghoused operator raft list-peers` shows a leader and N voters
#      (default 1);
#   2. `loghoused produce` appends the RECORDs (default: one naming this
#      host and the time) and `loghoused consume` reads them back from
#      the first offset produce printed;
#   3. `loghoused members` lists the gossip pool;
#   4. with -consul: Consul's catalog lists N instances of the service
#      "loghouse", one tagged "leader", and the CLI finds the cluster
#      through Consul's DNS (consul://loghouse).
#
# Steps 1 and 4 ask again every second until SECONDS (default 0: ask
# once, so a server that says it is ready must be) have passed since the
# script started. It prints each command's output after a "== command"
# line and ends with "smoke.sh: ok: ...", or exits non-zero saying what
# failed.
#
# The CLI reads LOGHOUSE_ADDR (or ADDRS), LOGHOUSE_CACERT,
# LOGHOUSE_CLIENT_CERT and LOGHOUSE_CLIENT_KEY; unset, they point at
# 127.0.0.1:8400 with the certificates in /etc/loghouse/tls, as the
# package installs them.
#
# The Vagrant testbed (vagrant/Vagrantfile) and the container test
# (packaging/install_test.go) both run this script.
set -eu

usage() {
	echo "usage: smoke.sh [-voters N] [-wait SECONDS] [-addr ADDRS] [-consul] [RECORD...]" >&2
	exit 2
}

die() {
	echo "smoke.sh: $*" >&2
	exit 1
}

voters=1
wait_secs=0
consul=false
while [ $# -gt 0 ]; do
	case $1 in
	-voters | -wait | -addr)
		[ $# -ge 2 ] || usage
		case $1 in
		-voters) voters=$2 ;;
		-wait) wait_secs=$2 ;;
		-addr) LOGHOUSE_ADDR=$2 ;;
		esac
		shift 2
		;;
	-consul)
		consul=true
		shift
		;;
	--)
		shift
		break
		;;
	-*) usage ;;
	*) break ;;
	esac
done
case $voters$wait_secs in
*[!0-9]*) usage ;;
esac
if [ $# -eq 0 ]; then
	set -- "smoke test from $(uname -n) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
fi

tls=/etc/loghouse/tls
: "${LOGHOUSE_ADDR:=127.0.0.1:8400}"
: "${LOGHOUSE_CACERT:=$tls/loghouse-agent-ca.pem}"
: "${LOGHOUSE_CLIENT_CERT:=$tls/client-root.pem}"
: "${LOGHOUSE_CLIENT_KEY:=$tls/client-root-key.pem}"
export LOGHOUSE_ADDR LOGHOUSE_CACERT LOGHOUSE_CLIENT_CERT LOGHOUSE_CLIENT_KEY

deadline=$(($(date +%s) + wait_secs))

# retry CHECK DESCRIPTION runs CHECK (a function that leaves what it saw in
# $out) until it succeeds or the deadline passes.
retry() {
	until "$1"; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			printf '%s\n' "$out" >&2
			die "$2: not within ${wait_secs}s (the last answer is above)"
		fi
		sleep 1
	done
}

# peers_ready: list-peers answers with one leader and $voters voters.
peers_ready() {
	out=$(loghoused operator raft list-peers -timeout 10s 2>&1) &&
		printf '%s\n' "$out" | awk -v want="$voters" '
			NR > 1 && $4 == "true" { v++ }
			NR > 1 && $3 == "leader" { l++ }
			END { exit !(v == want && l == 1) }'
}

retry peers_ready "a leader and $voters voters in $LOGHOUSE_ADDR"
echo "== loghoused operator raft list-peers"
printf '%s\n' "$out"
leader=$(printf '%s\n' "$out" | awk '$3 == "leader" { print $1 }')

echo "== loghoused produce $*"
offsets=$(loghoused produce -- "$@") || die "produce failed"
printf '%s\n' "$offsets"
first=$(printf '%s\n' "$offsets" | head -n 1)
last=$(printf '%s\n' "$offsets" | tail -n 1)
[ "$(printf '%s\n' "$offsets" | wc -l)" -eq $# ] || die "produce printed $(printf '%s\n' "$offsets" | wc -l) offsets for $# records"

echo "== loghoused consume -offset $first -n $#"
got=$(loghoused consume -offset "$first" -n $#) || die "consume failed"
printf '%s\n' "$got"
[ "$got" = "$(printf '%s\n' "$@")" ] || die "consume read back something else than was produced"

echo "== loghoused members"
loghoused members || die "members failed"

if [ "$consul" = true ]; then
	# consul_ready: the catalog holds $voters instances of loghouse and
	# one of them has the leader tag.
	consul_ready() {
		out=$(consul catalog nodes -service=loghouse 2>&1) &&
			[ "$(printf '%s\n' "$out" | awk 'NR > 1' | wc -l)" -eq "$voters" ] &&
			[ "$(consul catalog nodes -service=loghouse -filter='"leader" in ServiceTags' 2>/dev/null | awk 'NR > 1' | wc -l)" -eq 1 ]
	}
	retry consul_ready "$voters loghouse instances, one tagged leader, in Consul's catalog"
	echo "== consul members"
	consul members || die "consul members failed"
	echo "== consul catalog nodes -service=loghouse"
	printf '%s\n' "$out"

	# Consul's DNS answers with instances whose health check passes,
	# which the agents report every few seconds.
	servers_via_consul() {
		out=$(loghoused servers -addr consul://loghouse -timeout 10s 2>&1)
	}
	retry servers_via_consul "the cluster through Consul's DNS (consul://loghouse)"
	echo "== loghoused servers -addr consul://loghouse"
	printf '%s\n' "$out"
fi

echo "smoke.sh: ok: $# record(s) at offsets $first-$last read back; $voters voter(s), leader $leader"
