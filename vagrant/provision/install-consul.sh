#!/bin/sh
# install-consul.sh [-secrets DIR] NODE IP [PEER_IP...]
#
# Installs Consul from HashiCorp's apt repository (apt.releases.hashicorp.com;
# the VM needs the Internet) and makes it the server NODE, at address IP,
# of a Consul cluster of 1 + (number of PEER_IPs) servers: bootstrap_expect
# the same on every server, retry_join the peers, the gossip key from
# DIR/consul-gossip.key (default DIR: /vagrant/.cluster, which
# make-cluster-secrets.sh filled), the HTTP API, DNS and UI on 127.0.0.1
# only. The configuration is checked with `consul validate` before it
# replaces /etc/consul.d/consul.hcl, and Consul is started without waiting
# for the other servers.
#
# Idempotent: Consul is installed once, and a running agent whose
# configuration did not change is left alone.
#
# Only the Vagrant testbed runs this script: the container test has no
# Internet and no Consul.
set -eu

usage() {
	echo "usage: install-consul.sh [-secrets DIR] NODE IP [PEER_IP...]" >&2
	exit 2
}

die() {
	echo "install-consul.sh: $*" >&2
	exit 1
}

secrets=/vagrant/.cluster
while [ $# -gt 0 ]; do
	case $1 in
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
[ -s "$secrets/consul-gossip.key" ] || die "$secrets/consul-gossip.key is missing: make-cluster-secrets.sh makes it"

export DEBIAN_FRONTEND=noninteractive
if ! command -v consul >/dev/null; then
	apt-get update -q
	apt-get install -y -q ca-certificates curl gpg
	keyring=/usr/share/keyrings/hashicorp-archive-keyring.gpg
	armored=$(mktemp)
	curl -fsSL -o "$armored" https://apt.releases.hashicorp.com/gpg
	gpg --batch --yes --dearmor -o "$keyring" "$armored"
	rm -f "$armored"
	codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
	echo "deb [signed-by=$keyring] https://apt.releases.hashicorp.com $codename main" \
		>/etc/apt/sources.list.d/hashicorp.list
	apt-get update -q
	apt-get install -y -q -o Dpkg::Options::=--force-confold consul
fi

joins=""
for peer in "$@"; do
	joins="$joins${joins:+, }\"$peer\""
done
key=$(cat "$secrets/consul-gossip.key")

new=$(mktemp /etc/consul.d/.consul.hcl.XXXXXX)
trap 'rm -f "$new"' EXIT
cat >"$new" <<HCL
# Written by install-consul.sh (vagrant/provision/ in the Loghouse
# repository): Consul server $node of $(($# + 1)).
datacenter       = "dc1"
node_name        = "$node"
data_dir         = "/opt/consul"
server           = true
bootstrap_expect = $(($# + 1))
bind_addr        = "$ip"
advertise_addr   = "$ip"
client_addr      = "127.0.0.1"
retry_join       = [$joins]
encrypt          = "$key"

ui_config {
  enabled = true
}
HCL
chmod 0640 "$new"
chgrp consul "$new"
consul validate -config-format=hcl "$new" >/dev/null || die "the configuration does not validate (above)"

changed=false
if ! cmp -s "$new" /etc/consul.d/consul.hcl; then
	mv -f "$new" /etc/consul.d/consul.hcl
	changed=true
fi
systemctl enable consul.service
# A server waiting for the others is "activating" (Type=notify).
case $(systemctl show --property=ActiveState --value consul.service) in
active | activating | reloading)
	if [ "$changed" = true ]; then
		systemctl restart --no-block consul.service
	fi
	;;
*)
	systemctl start --no-block consul.service
	;;
esac
echo "install-consul.sh: Consul $(consul version | head -n 1) server $node at $ip, one of $(($# + 1))"
