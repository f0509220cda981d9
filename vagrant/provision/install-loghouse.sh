#!/bin/sh
# install-loghouse.sh [-no-start] DEB
#
# Installs the loghoused package DEB (a .deb that `make package` built)
# and, unless -no-start, enables the service and starts it. systemctl
# start returns once the agent is ready (READY=1: it serves clients,
# which needs a raft leader) or fails after the unit's TimeoutStartSec,
# so a single server is serving when this script returns.
#
# -no-start only installs: a cluster member must be configured before its
# first start (configure-loghouse.sh does that and starts it), or it
# forms a cluster of its own with the package's single-server config.
#
# Idempotent: installing again is the package's upgrade path. It keeps the
# certificates, and configuration files edited since (--force-confold),
# and leaves a running agent running; restart it with
# `systemctl restart loghoused` when it suits the cluster.
#
# The Vagrant testbed (vagrant/Vagrantfile) and the container test
# (packaging/install_test.go) both run this script.
set -eu

usage() {
	echo "usage: install-loghouse.sh [-no-start] DEB" >&2
	exit 2
}

start=true
while [ $# -gt 0 ]; do
	case $1 in
	-no-start)
		start=false
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
[ $# -eq 1 ] || usage
deb=$1
if [ ! -f "$deb" ]; then
	echo "install-loghouse.sh: $deb: no such file; run \`make package\` in the repository first" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! dpkg --force-confold -i "$deb"; then
	# Missing dependencies leave the package unpacked but not
	# configured: let apt fetch them and finish the installation.
	echo "install-loghouse.sh: dpkg -i failed; letting apt-get install what is missing" >&2
	apt-get install -y -f -o Dpkg::Options::=--force-confold
fi

if [ "$start" = true ]; then
	systemctl enable loghoused.service
	systemctl start loghoused.service
	echo "install-loghouse.sh: loghoused is $(systemctl is-active loghoused.service):" \
		"$(systemctl show --property=StatusText --value loghoused.service)"
fi
