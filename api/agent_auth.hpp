#pragma once

// The agent API's request signatures (docs/protocol.md, "The agent API"):
// an HMAC-SHA256 under a key derived from the member's heartbeat key, over
// the method, the request target, the timestamp and the body's SHA-256.

#include <cstdint>
#include <optional>
#include <string>

#include "transport/protocol.hpp"

namespace balctl::api {

/// HMAC-SHA256(heartbeat_key, "balctl agent api v1").
protocol::key agent_api_key(const protocol::key& heartbeat_key);

/// 64 lowercase hex characters: HMAC-SHA256(api_key, METHOD "\n" TARGET
/// "\n" TIMESTAMP "\n" hex(SHA-256(body))).
std::string agent_signature(const protocol::key& api_key, const std::string& method,
                            const std::string& target, const std::string& timestamp,
                            const std::string& body);

enum class agent_auth_result { ok, malformed, unknown, invalid, stale };

/// Checks the X-Balctl-* headers' values against member's key (nullopt:
/// unknown member); now_ms is the engine's clock, 300 s either side.
agent_auth_result check_agent_signature(const std::optional<protocol::key>& heartbeat_key,
                                        const std::string& method, const std::string& target,
                                        const std::string& timestamp,
                                        const std::string& signature, const std::string& body,
                                        std::int64_t now_ms);

} // namespace balctl::api
