#pragma once

// The admin API's jobs and replication routes (docs/openapi.yaml), under
// /v1/pools/{pool}/:
//   GET  protection                       the Protection dashboard
//   POST accounts/{id}/replicate          Replicate now (202)
//   GET  accounts/{id}/replication        one account's replication
//   GET  jobs                             the pool's jobs
//   GET  jobs/{id}   POST jobs/{id}/cancel
//   GET  members/{m}/jobs                 POST members/{m}/jobs {"command", "timeout_s"}
//   GET  monitoring   PATCH monitoring    the Monitoring tab's presets
//   GET  members/{m}/alerts   PATCH ...   a member's own alert settings
// and the agents' own routes under /v1/agent/ (docs/protocol.md, "The
// agent API"), signed with the member's key instead of a token.

#include <string>
#include <vector>

#include "api/dns_routes.hpp"
#include "engine/clock.hpp"

namespace balctl::api {

bool route_protection(const route_context& ctx, http::request& req, http::responder& respond,
                      const std::vector<std::string>& seg);

/// /v1/agent/...: checks the X-Balctl-* signature, then hands the call to
/// the member's pool.
void route_agent(control& engine, const clock& clk, http::request& req,
                 http::responder& respond);

} // namespace balctl::api
