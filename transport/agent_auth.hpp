#pragma once

// The agent API's request signature (docs/protocol.md, "The agent API:
// jobs and replication", Authentication). Shared by the agent, which signs
// every request, and the engine, which verifies them: one implementation,
// so the two cannot drift apart. Pure functions; a unit test pins the
// worked example in docs/protocol.md.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "transport/protocol.hpp"

namespace balctl::agent_auth {

/// Headers every agent API request carries.
constexpr const char* member_header = "X-Balctl-Member";
constexpr const char* timestamp_header = "X-Balctl-Timestamp";
constexpr const char* signature_header = "X-Balctl-Signature";

/// How far a request's timestamp may be from the engine's clock, either way.
constexpr std::int64_t max_skew_ms = 300'000;

using api_key = std::array<std::uint8_t, 32>;

/// HMAC-SHA256(heartbeat_key, "balctl agent api v1"): the heartbeat key
/// itself never signs HTTP.
api_key derive_api_key(const protocol::key& heartbeat_key);

/// Lowercase hex of SHA-256(data).
std::string sha256_hex(std::string_view data);

/// 64 lowercase hex characters:
/// HMAC-SHA256(api_key, METHOD "\n" TARGET "\n" TIMESTAMP "\n" hex(SHA-256(body))).
/// target: path and query exactly as sent; timestamp: the header's text.
std::string sign(const api_key& key, std::string_view method, std::string_view target,
                 std::string_view timestamp, std::string_view body);

enum class verdict {
  ok,
  signature_invalid, // not 64 hex characters, or does not match
  signature_stale,   // timestamp not decimal ms, or more than max_skew_ms from now_ms
};

/// The engine's check, after it found the member by X-Balctl-Member (no
/// member: `agent_unknown`). Compares in constant time. The signature is
/// checked before the timestamp, so a stale answer proves the sender holds
/// the key.
verdict verify(const protocol::key& heartbeat_key, std::string_view method,
               std::string_view target, std::string_view timestamp, std::string_view body,
               std::string_view signature, std::int64_t now_ms);

/// The API error code for a verdict that is not ok:
/// "agent_signature_invalid" | "agent_signature_stale".
const char* to_code(verdict v);

} // namespace balctl::agent_auth
