#pragma once

// Enrolment: trade the one-time secret from the install command for the
// member's id and heartbeat key (POST <api-base>/v1/enroll, docs/openapi.yaml)
// and keep them in the state file. Retries what may pass (the engine is
// unreachable, busy or rate limiting) with back-off; stops at once on what
// will not (a refused secret, a certificate that does not verify).

#include <cstdint>
#include <functional>
#include <string>

#include "agent/state_file.hpp"
#include "cli/client.hpp"

namespace balctl::agent {

struct enroll_request {
  std::string secret;
  std::string hostname;
  std::string api_base;
  std::string ca_file;         // "" = the system trust store
  std::string transport = "auto";
  std::string tls_server_name;
  std::int64_t give_up_after_ms = 300'000; // total time spent retrying
};

struct enroll_outcome {
  bool ok = false;
  agent_state state;           // when ok
  std::string error;           // when not: a sentence for the operator
};

/// Waits ms (the real one sleeps; tests record).
using sleep_fn = std::function<void(std::int64_t ms)>;

/// Enrols through transport. Never logs or returns the secret or the key.
enroll_outcome enroll(const enroll_request& req, cli::http_transport& transport,
                      const sleep_fn& sleep);

/// host:port the agent should use for an endpoint the engine reported: an
/// unspecified host (0.0.0.0, ::, empty) becomes the API base's host.
std::string resolve_endpoint_host(const std::string& endpoint,
                                  const std::string& api_base);

/// The host of an http(s) URL ("" when it has none).
std::string url_host(const std::string& url);

} // namespace balctl::agent
