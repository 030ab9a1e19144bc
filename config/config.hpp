#pragma once

// balctld's configuration: schema, defaults and validation, every key in one
// place. The file is JSON; docs/config.md documents each key with its unit
// and default. Invalid values are rejected at start with the key path and the
// reason (e.g. "pools[2].failover_delay_s = 5: must be between 10 and 120").

#include <cstdint>
#include <string>
#include <vector>

#include "engine/types.hpp"
#include "transport/protocol.hpp"

namespace balctl {

struct member_config {
  member_id id = 0;               // required, > 0, unique across all pools
  std::string name;               // friendly name; defaults to hostname
  std::string hostname;           // required
  std::vector<std::string> allowed_ips; // IPv4/IPv6 literals; empty = any
  protocol::key key{};            // required: "key": 64 hex chars
};

struct pool_config {
  std::string name;               // required, unique, [A-Za-z0-9._-]{1,64}
  pool_preset preset = pool_preset::generic_linux; // "generic-linux" | "haproxy"
  int failover_delay_s = 30;      // 10..120
  std::string failover_hostname;  // optional FQDN whose A record follows the active member
  failback_policy failback = failback_policy::manual; // "manual" | "automatic"
  int failback_stable_s = 300;    // 10..86400; primary healthy this long before automatic fail-back
  double mass_silence_share = 0.5;     // (0,1]
  int mass_silence_min_members = 3;    // >= 1
  int mass_silence_window_s = 0;       // 0 = the failover delay; else 1..3600
  std::vector<member_config> members;  // first is the primary
};

struct engine_config {
  std::string udp_listen = "127.0.0.1:7946"; // host:port ([v6]:port)
  std::string store_path = "balctld.db";     // SQLite file; ":memory:" allowed
  std::string log_level = "info";            // debug|info|warn|error
  int max_clock_skew_s = 30;                 // 1..600: timestamp window ±
  int restart_grace_s = 0;                   // 0 = each pool's failover delay; else 1..3600
  int suspect_after_pct = 50;                // 10..90: suspect after this % of the failover delay
  int recovery_stable_s = 10;                // 0..3600: recovering → healthy
  int flap_threshold = 3;                    // 1..100 downs within flap_window_s → damped
  int flap_window_s = 600;                   // 10..86400
  int flap_hold_s = 300;                     // 0..86400 stability a damped member needs
  double fleet_silence_share = 0.3;          // (0,1]
  int fleet_silence_min_members = 10;        // >= 1
  int fleet_silence_window_s = 30;           // 1..3600
  int silence_release_settle_s = 5;          // 0..600: pool and fleet holds release after the silent count stays below threshold this long
  int snapshot_interval_s = 30;              // 1..3600: member last_seen/seq checkpoints
  std::vector<pool_config> pools;
};

struct config_result {
  engine_config config;
  std::vector<std::string> errors; // empty when valid
  bool ok() const { return errors.empty(); }
};

/// Parses and validates JSON text. Unknown keys are errors (typos must not
/// silently fall back to defaults).
config_result parse_config(const std::string& json_text);
/// Reads the file and parses it; a read failure is an error naming the path.
config_result load_config_file(const std::string& path);

} // namespace balctl
