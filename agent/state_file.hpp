#pragma once

// What the agent keeps between runs: its member id and heartbeat key from
// enrolment, where to send heartbeats, and the sequence-number reservation.
// One JSON file, mode 0600 (the key authenticates every heartbeat), written
// atomically (temp file, fsync, rename, fsync of the directory) so a crash
// or a full disk never leaves half a file.
//
// Sequence numbers never go backwards across restarts, even when the clock
// does: the file records seq_reserved, a ceiling the agent may use up to.
// A run starts at max(seq_reserved, now_ms) and reserves the next block
// before using it, so a crash skips at most one block (harmless: the engine
// only needs seq to grow) and never reuses a number (which the engine would
// drop as replayed).

#include <cstdint>
#include <optional>
#include <string>

#include "transport/protocol.hpp"

namespace balctl::agent {

constexpr const char* default_state_file = "/var/lib/balctl-agent/state.json";

struct agent_state {
  member_id member = 0;
  std::string pool;
  std::string hostname;       // the enrolled hostname
  protocol::key key{};
  std::string api_base;
  std::string heartbeat_udp;  // host:port
  std::string heartbeat_tls;  // host:port; "" = the engine has no TLS listener
  int interval_s = 2;
  std::string transport = "auto"; // udp | tls | auto
  std::string ca_file;        // "" = the system trust store
  std::string tls_server_name; // "" = the heartbeat_tls host
  std::uint64_t seq_reserved = 0;
};

/// Reads and checks the state file. On failure returns nullopt with *error
/// naming the file and the problem (missing, not JSON, a bad field, or
/// readable by group/others: the key must stay the agent's own).
std::optional<agent_state> load_state(const std::string& path, std::string* error);

/// Writes the file atomically with mode 0600. Returns "" or an error.
std::string save_state(const std::string& path, const agent_state& s);

/// Hands out sequence numbers, saving a new reservation before the current
/// one runs out.
class seq_source {
public:
  /// block: numbers reserved per write of the state file.
  seq_source(std::string path, agent_state& state, std::uint64_t block = 4096);
  /// Starts at max(seq_reserved, now_ms) and reserves the first block.
  /// Returns "" or the save error (the agent must not send without it).
  std::string start(std::int64_t now_ms);
  /// The next sequence number, or nullopt when a reservation could not be
  /// saved (*error says why); the caller retries later.
  std::optional<std::uint64_t> next(std::string* error);
  /// The engine said it already accepted `last` (a replayed answer): the
  /// next number goes above it.
  std::string skip_past(std::uint64_t last);
  std::uint64_t peek() const { return next_; }

private:
  std::string reserve(std::uint64_t from);

  std::string path_;
  agent_state& state_;
  std::uint64_t block_;
  std::uint64_t next_ = 0;
};

} // namespace balctl::agent
