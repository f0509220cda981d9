# Loghouse on Nomad: three servers on distinct hosts.
#
# Each Nomad client that may run a server needs:
#   - the loghoused package installed (/usr/bin/loghoused), see packaging/;
#   - a host volume for the data, in the client's config:
#       host_volume "loghouse-data" { path = "/var/lib/loghouse" read_only = false }
#   - the node's TLS files in /etc/loghouse/tls (loghoused tls cert create
#     -server -name <node name> -ip <node address>), named after the Nomad
#     node name, plus the CA.
# The gossip key comes from the Nomad variable nomad/jobs/loghouse (key
# "encrypt"): nomad var put nomad/jobs/loghouse encrypt="$(loghoused keygen)".
#
# Servers find each other through Consul: retry_join lists the addresses of
# every registered "loghouse" instance (healthy or not: none is healthy
# before the cluster forms), the template re-renders as instances register
# and the agent joins the new addresses on the SIGHUP that follows, and
# bootstrap_expect = 3 forms the cluster once.
# Run with: nomad job run nomad/loghouse.nomad.hcl

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "servers" {
  type    = number
  default = 3
}

job "loghouse" {
  datacenters = var.datacenters
  type        = "service"

  # One server at a time; the next only once this one is healthy again, so a
  # rolling update never costs the quorum.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "15s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
    auto_revert       = true
    stagger           = "30s"
  }

  group "loghouse" {
    count = var.servers

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    # Servers keep their data: never reschedule one elsewhere on its own,
    # which would start an empty replica under a new address.
    reschedule {
      attempts  = 0
      unlimited = false
    }

    restart {
      attempts = 10
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    network {
      port "rpc" {
        static = 8400
      }
      port "serf" {
        static = 8401
      }
      port "http" {
        static = 8402
      }
    }

    volume "data" {
      type      = "host"
      source    = "loghouse-data"
      read_only = false
    }

    # Clients find the cluster at loghouse.service.consul (SRV gives the RPC
    # port). The check uses the plain-HTTP health endpoint, which needs no
    # client certificate (the RPC port requires one).
    service {
      name     = "loghouse"
      port     = "rpc"
      provider = "consul"
      tags     = ["rpc"]
      meta {
        serf_port = "${NOMAD_PORT_serf}"
      }

      check {
        name     = "loghouse serving"
        type     = "http"
        port     = "http"
        path     = "/v1/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    service {
      name     = "loghouse-metrics"
      port     = "http"
      provider = "consul"
      tags     = ["metrics", "prometheus"]
    }

    task "loghoused" {
      driver = "exec"

      config {
        command = "/usr/bin/loghoused"
        args    = ["agent", "-config=${NOMAD_TASK_DIR}/config.hcl"]
      }

      # A graceful stop: the agent hands leadership off and stops serving in
      # order. It does not leave the cluster (leave_on_terminate is off), so a
      # restarted allocation is the same voter.
      kill_signal  = "SIGTERM"
      kill_timeout = "45s"

      volume_mount {
        volume      = "data"
        destination = "/var/lib/loghouse"
      }

      template {
        destination   = "${NOMAD_SECRETS_DIR}/gossip.env"
        env           = true
        change_mode   = "restart"
        data          = <<-EOT
        {{ with nomadVar "nomad/jobs/loghouse" }}LOGHOUSE_ENCRYPT={{ .encrypt }}{{ end }}
        EOT
      }

      template {
        destination   = "${NOMAD_TASK_DIR}/config.hcl"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
        node_name        = "{{ env "node.unique.name" }}"
        data_dir         = "/var/lib/loghouse"
        bind_addr        = "0.0.0.0"
        advertise_addr   = "{{ env "NOMAD_IP_rpc" }}"
        bootstrap_expect = 3
        retry_join       = [{{ range $i, $s := service "loghouse|any" }}{{ if $i }}, {{ end }}"{{ $s.Address }}:8401"{{ end }}]
        retry_interval   = "10s"

        ports {
          rpc  = {{ env "NOMAD_PORT_rpc" }}
          serf = {{ env "NOMAD_PORT_serf" }}
          http = {{ env "NOMAD_PORT_http" }}
        }

        tls {
          ca_file   = "/etc/loghouse/tls/loghouse-agent-ca.pem"
          cert_file = "/etc/loghouse/tls/server-{{ env "node.unique.name" }}.pem"
          key_file  = "/etc/loghouse/tls/server-{{ env "node.unique.name" }}-key.pem"
        }

        log {
          json = true
        }
        EOT
      }

      # Sized from the benchmarks (README): a server saturates about two
      # cores at peak produce; memory is mostly the page cache, which Nomad
      # does not count.
      resources {
        cpu    = 2000
        memory = 512
      }
    }
  }
}
