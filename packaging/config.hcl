# Loghouse agent configuration, as the loghoused package installs it: one
# server on this host that forms a cluster of its own, reachable on
# 127.0.0.1 only. The package's postinstall made the certificates below
# (and a "root" client certificate) on first install, under a CA of its
# own in /etc/loghouse/tls.
#
# Every setting, with its default, is in
# /usr/share/doc/loghoused/config.hcl.example. After editing, run
# `systemctl restart loghoused` (or `systemctl reload loghoused` for the
# log level, the TLS files and the ACL policy).
#
# To make this server part of a larger cluster: set bind_addr (and
# advertise_addr) to an address the others reach, bootstrap_expect and
# retry_join the same on every server, and give every server a certificate
# from one CA.

# node_name defaults to the host name, which the server certificate names.
data_dir         = "/var/lib/loghouse"
bind_addr        = "127.0.0.1"
bootstrap_expect = 1

tls {
  ca_file   = "/etc/loghouse/tls/loghouse-agent-ca.pem"
  cert_file = "/etc/loghouse/tls/server.pem"
  key_file  = "/etc/loghouse/tls/server-key.pem"
}

# Identities are client certificate common names; "root" may do
# everything, anyone else nothing, until policy.csv says otherwise.
acl {
  model_file  = "/etc/loghouse/model.conf"
  policy_file = "/etc/loghouse/policy.csv"
}
