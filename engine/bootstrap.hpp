#pragma once

// Start-up: turns the config and the stored state into registry slots and
// pool runtimes. Config-declared pools are written to the store (the config
// is their source of truth until the admin API adds pools at run time).
//
// Restart grace (DESIGN.md principle 4): a member that was healthy, suspect
// or recovering when the engine stopped counts as heard at start-up, and
// cannot be declared down before start + grace (restart_grace_s, or the
// pool's failover delay when 0). So a restart never causes a failover, and
// nobody turns suspect just because the engine itself was away.

#include <memory>
#include <stdexcept>
#include <vector>

#include "adapters/store/store.hpp"
#include "config/config.hpp"
#include "engine/registry.hpp"
#include "engine/runtime.hpp"

namespace balctl {

struct engine_parts {
  std::shared_ptr<registry> reg;
  std::vector<std::shared_ptr<pool_runtime>> pools;
  /// The DNS provider credentials the admin API added (secrets included,
  /// for their executors); each pool's runtime has its own without them.
  std::vector<dns_provider_config> dns_providers;
};

/// The config file contradicts what the admin API stored (a member id
/// taken by an API-created member). The message names the config key.
class bootstrap_conflict : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A pool's runtime without members (they are added after).
std::shared_ptr<pool_runtime> make_pool_runtime(const engine_config& cfg,
                                                const pool_config& pc);

/// Config pools, then the pools the admin API created (from the store).
/// Throws store_error when the store fails, bootstrap_conflict when the
/// config takes a member id of an API-created member.
engine_parts bootstrap(const engine_config& cfg, store& st, std::int64_t now_ms);

} // namespace balctl
