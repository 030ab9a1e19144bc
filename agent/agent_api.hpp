#pragma once

// The agent's side of the agent API (docs/protocol.md, "The agent API:
// jobs and replication"): every request to the engine signed with the
// member's API key (transport/agent_auth.hpp). Blocking: called from the
// job threads (agent/job_loop.hpp), never from the heartbeat loop.

#include <atomic>
#include <string>

#include "cli/client.hpp"
#include "engine/types.hpp"
#include "transport/agent_auth.hpp"

namespace balctl::agent {

class agent_api {
public:
  /// api_base: the engine's admin URL from enrolment (no trailing slash
  /// needed). ca_file "" = the system trust store. transport must be
  /// usable from several threads at once (curl_transport_impl is).
  agent_api(std::string api_base, member_id member, const protocol::key& heartbeat_key,
            std::string ca_file, cli::http_transport& transport);

  /// method and target (path and query, e.g. "/v1/agent/jobs"); body
  /// empty = none. Adds the X-Balctl-* headers.
  cli::http_reply call(const std::string& method, const std::string& target,
                       const std::string& body = {},
                       const std::atomic<bool>* abort = nullptr) const;

  /// A request to a URL the engine handed out (presigned chunk URLs): its
  /// own authorisation, so no X-Balctl-* header.
  cli::http_reply fetch(const std::string& method, const std::string& url,
                        const std::string* body = nullptr,
                        const std::atomic<bool>* abort = nullptr) const;

  const std::string& api_base() const { return base_; }

private:
  std::string base_;
  member_id member_;
  agent_auth::api_key key_;
  std::string ca_file_;
  cli::http_transport& transport_;
};

/// "message (code)" from the API's error body, else the body's start.
std::string api_error_text(const std::string& body);

/// What went wrong with a reply, for a log line: "HTTP 503: ..." or the
/// transport's error.
std::string describe(const cli::http_reply& r);

} // namespace balctl::agent
