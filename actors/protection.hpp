#pragma once

// Protection of one pool (the seed's Protection tab and the members' Cron &
// Jobs tabs): the members' remote job queues (engine/jobs) and one account
// actor per protected account (actors/account), which runs its
// replication. The pool actor spawns it, links to it, and tells it which
// accounts the pool protects and when one was cut. Agents reach it through
// the admin API's agent routes (docs/protocol.md, "The agent API").
//
// Everything it changes is written to the store as records (kind "job",
// "replication"); a restart reads them back, so a transfer in flight goes
// on where it was (its jobs stay out with the agents).

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "engine/clock.hpp"
#include "engine/alerts.hpp"
#include "engine/jobs.hpp"
#include "engine/metrics.hpp"
#include "engine/replication.hpp"

namespace balctl {

struct protection_deps {
  caf::actor store;
  const clock* clk = nullptr;
  /// A presigned URL for method (PUT | GET | DELETE) on an object-store key
  /// (adapters/objstore); "" when the engine has no object store.
  std::function<std::string(const std::string& method, const std::string& key)> presign;
  /// Removes chunks the engine no longer needs (called off the actors'
  /// threads by the caller's choice; may be empty).
  std::function<void(std::vector<std::string> keys)> remove_chunks;
  std::int64_t chunk_size = 8 << 20;
  std::size_t activity_keep = 1000;
  /// Whether member m reports cPanel now (replication needs pkgacct and
  /// restorepkg on both sides).
  std::function<bool(member_id)> has_cpanel;
  /// Jobs queued and out with agents now, for the pool's Fleet Status
  /// (written here, read by the pool actor).
  std::shared_ptr<std::atomic<std::uint64_t>> running_jobs, queued_jobs;
  /// Hands an alert to the notifiers (adapters/notify); empty: alerts are
  /// only logged.
  std::function<void(const alert_message&)> notify;
  /// Replication counters for /metrics (may be null).
  engine_metrics* metrics = nullptr;
};

struct protection_state {
  std::string pool;
  protection_deps deps;
  job_book jobs;
  std::map<std::string, protected_account> accounts;
  std::map<std::string, caf::actor> account_actors;
  // Every account actor spawned, for the exit hook that stops them when the
  // protection actor ends (its state is gone by then).
  std::shared_ptr<std::vector<caf::actor>> children =
    std::make_shared<std::vector<caf::actor>>();
  std::map<std::string, replication_state> loaded; // read at start, by account
  std::int64_t armed_ms = 0;
  std::unique_ptr<alert_rules> alerts;
  static inline const char* name = "protection";
};

caf::behavior protection_actor(caf::stateful_actor<protection_state>* self, std::string pool,
                               protection_deps deps);

/// One line of a pool's activity log, written by Protection's actors.
void protection_note(caf::event_based_actor* self, const protection_deps& deps,
                     const std::string& pool, activity_kind kind, member_id m,
                     std::string message);

} // namespace balctl
