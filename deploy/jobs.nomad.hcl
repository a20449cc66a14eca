# jobs on every Nomad client node: a `system` job runs one server per eligible node,
# and places it on nodes that join later.
#
# Each node needs the `jobs` console script at /usr/local/bin/jobs, and in
# /etc/jobs the CA (ca.crt) and a server certificate for the node's name
# (`jobs pki issue-server NODE --san NODE-IP`, installed as server.crt/server.key).
# Run with: nomad job run deploy/jobs.nomad.hcl
job "jobs" {
  type = "system"

  group "jobs" {
    network {
      port "grpc" {
        static = 50051
      }
      port "health" {
        static = 50052
      }
    }

    task "serve" {
      # raw_exec, not exec: the server makes its own cgroups and namespaces for
      # its jobs, and runs them as other users. The exec driver would confine it
      # in a chroot and a cgroup of its own. (raw_exec must be enabled on the
      # clients: plugin "raw_exec" { config { enabled = true } }.)
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/jobs"
        args = [
          "serve",
          "--name", "${node.unique.name}",
          "--label", "dc=${node.datacenter}",
          "--listen", "0.0.0.0:${NOMAD_PORT_grpc}",
          "--advertise", "${NOMAD_IP_grpc}:${NOMAD_PORT_grpc}",
          "--ca", "/etc/jobs/ca.crt",
          "--cert", "/etc/jobs/server.crt",
          "--key", "/etc/jobs/server.key",
          "--state-dir", "/var/lib/jobs/state",
          # Consul's agent checks the node's address, not loopback: the
          # plaintext port only says SERVING or NOT_SERVING, so it is exposed on
          # the node's address (firewall it to the node itself if need be).
          "--health-listen", "${NOMAD_IP_health}:${NOMAD_PORT_health}",
          "--health-any-address",
        ]
      }

      env {
        JOBS_HOME = "/var/lib/jobs"
        # Registration for `jobs hosts --discover`: PREFIX/NAME on a 10 s lease.
        JOBS_REGISTER = "etcd://etcd.service.consul:2379/jobs/"
      }

      # Nomad sends this, waits kill_timeout, then SIGKILLs. The server stops
      # each job with its grace (10 s by default) before it exits: give it more.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      service {
        name     = "jobs"
        port     = "grpc"
        provider = "consul"

        # grpc.health.v1 on the plaintext port: NOT_SERVING from the moment
        # the server begins to stop, so Consul drops it before it is gone.
        check {
          type         = "grpc"
          port         = "health"
          grpc_use_tls = false
          interval     = "10s"
          timeout      = "2s"
        }
      }

      resources {
        # The server itself; its jobs have their own limits (cgroups).
        cpu    = 200
        memory = 256
      }
    }
  }
}
