#pragma once

// The heartbeat datagram codec (docs/protocol.md). Pure functions over bytes:
// decode returns a view or a reason, never throws, never allocates on the
// steady-state path (no body).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/types.hpp"

namespace balctl::protocol {

/// "BLHB" in network byte order.
constexpr std::uint32_t magic = 0x424C4842;
constexpr std::uint8_t version = 1;
constexpr std::size_t header_size = 32;
constexpr std::size_t tag_size = 16; // HMAC-SHA256 truncated to 128 bits
constexpr std::size_t max_datagram_size = 1400;
constexpr std::size_t max_body_size = max_datagram_size - header_size - tag_size;
constexpr std::size_t key_size = 32;

enum flag : std::uint8_t {
  flag_body = 0x01,          // a JSON status body follows the header
  flag_ack_requested = 0x02, // the engine answers with an acknowledgement
};

/// Why a datagram was dropped. Every value has a counter.
enum class reject_reason : std::uint8_t {
  truncated,          // shorter than header + tag, or body_len past the end
  oversized,          // longer than max_datagram_size
  bad_magic,
  bad_version,
  length_mismatch,    // header says one body length, the datagram another
  bad_flags,          // unknown flag bits, or body flag and body_len disagree
  bad_tag,            // HMAC does not verify with the member's key
  unknown_member,
  replayed,           // sequence number not greater than the last accepted
  stale_timestamp,    // outside the allowed clock skew window
  source_not_allowed, // source IP not in the member's allowed list
  hostname_mismatch,  // status body hostname differs from the enrolled one
  malformed_body,     // status body is not the documented JSON
};
constexpr std::size_t reject_reason_count = 13;
const char* to_string(reject_reason r);

using key = std::array<std::uint8_t, key_size>;

struct header {
  std::uint8_t version = protocol::version;
  std::uint8_t flags = 0;
  std::uint16_t body_len = 0;
  member_id member = 0;
  std::uint64_t seq = 0;
  std::int64_t timestamp_ms = 0;
};

/// A structurally valid datagram; points into the caller's buffer.
struct datagram_view {
  header hdr;
  std::string_view body;            // empty when no body
  const std::uint8_t* data = nullptr; // whole datagram
  std::size_t size = 0;
};

struct decode_result {
  bool ok = false;
  reject_reason reason = reject_reason::truncated; // valid when !ok
  datagram_view view;                               // valid when ok
};

/// Checks structure only (sizes, magic, version, flags). The tag needs the
/// member's key: call verify_tag next.
decode_result decode(const std::uint8_t* data, std::size_t len);

/// Constant-time check of the truncated HMAC-SHA256 tag over
/// bytes [0, header_size + body_len).
bool verify_tag(const datagram_view& d, const key& k);

/// Writes a complete datagram into out. Returns its length, or 0 when cap is
/// too small or the body is longer than max_body_size.
std::size_t encode(std::uint8_t* out, std::size_t cap, const header& h,
                   std::string_view body, const key& k);

/// Stream framing (TLS): how long the frame starting at p is, from its first
/// 8 bytes. 0 when fewer than 8 bytes are there yet; frame_garbage when the
/// bytes cannot start a frame (bad magic or version, or a length past the
/// maximum): the stream cannot be resynchronised and must be closed.
constexpr std::size_t frame_garbage = static_cast<std::size_t>(-1);
std::size_t frame_size(const std::uint8_t* p, std::size_t have);

// The acknowledgement (docs/protocol.md, "Acknowledgement"): sent by the
// engine for a heartbeat with flag_ack_requested whose tag verified. It is
// exactly as long as a bodyless heartbeat, so it can never amplify.

/// "BLAK" in network byte order.
constexpr std::uint32_t ack_magic = 0x424C414B;
constexpr std::size_t ack_size = 48;

/// What happened to the acknowledged heartbeat. Only outcomes decided after
/// the tag verified have a code: before that, nothing is answered.
enum class ack_result : std::uint8_t {
  accepted = 0,
  stale_timestamp = 1, // engine_time_ms tells the agent how far off it is
  replayed = 2,        // seq carries the last sequence number accepted
  malformed_body = 3,
  hostname_mismatch = 4,
};
const char* to_string(ack_result r);

struct ack {
  ack_result result = ack_result::accepted;
  member_id member = 0;
  /// The acknowledged heartbeat's seq; for replayed, the engine's last
  /// accepted seq (the agent continues above it).
  std::uint64_t seq = 0;
  std::int64_t engine_time_ms = 0;
};

/// Writes an ack_size acknowledgement into out (at least ack_size bytes).
/// Returns ack_size, or 0 when HMAC fails.
std::size_t encode_ack(std::uint8_t* out, const ack& a, const key& k);
/// Decodes and verifies an acknowledgement for the member holding k.
std::optional<ack> decode_ack(const std::uint8_t* data, std::size_t len,
                              const key& k);

/// Parses a status body. On failure returns nullopt and sets *error to a
/// message naming the field.
std::optional<member_status> parse_status(std::string_view body,
                                          std::string* error);
std::string status_to_json(const member_status& s);

/// Hex (64 chars) <-> key. Returns false on bad input.
bool key_from_hex(std::string_view hex, key& out);
std::string key_to_hex(const key& k);

} // namespace balctl::protocol
