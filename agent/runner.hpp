#pragma once

// `balctl-agent run`: one libuv loop that heartbeats, detects stacks and
// metrics off the loop (uv_queue_work), and keeps the TLS stream when the
// transport needs it (agent/transport_policy.hpp). Runs until SIGTERM or
// SIGINT.

#include <cstdint>
#include <optional>
#include <string>

#include "agent/detect.hpp"
#include "agent/state_file.hpp"
#include "agent/transport_policy.hpp"

namespace balctl::agent {

struct runner_options {
  std::string state_file = default_state_file;
  /// BALCTL_HOSTNAME: the hostname the status body carries ("" = the
  /// enrolled one from the state file).
  std::string hostname_override;
  std::optional<transport_mode> transport; // overrides the state file
  std::string ca_file;                     // overrides the state file
  std::string tls_server_name;             // overrides the state file
  int interval_s = 0;          // 0 = what the engine said at enrolment
  int detect_interval_s = 30;  // stacks and metrics are read this often
  int status_interval_s = 60;  // the full status body at least this often
  int udp_reprobe_s = 300;     // auto on TLS: try UDP again this often
  std::int64_t backoff_base_ms = 1000;  // TLS reconnect and resolve retries
  std::int64_t backoff_max_ms = 60'000;
  std::int64_t connect_timeout_ms = 10'000; // TCP connect + TLS handshake
  detect_options detect;
  /// The job loop (agent/job_loop.hpp): -1 = poll as often as the engine
  /// says (poll_s), > 0 = this often, 0 = no jobs.
  int jobs_interval_s = -1;
  int jobs_max_running = 2;
};

/// Runs the agent. Returns the process exit code: 0 after a signal, 1 when
/// it cannot start (state file, sequence reservation, TLS set-up), with the
/// reason logged.
int run_agent(const runner_options& opts);

} // namespace balctl::agent
