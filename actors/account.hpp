#pragma once

// One protected account's replication (engine/replication), supervised by
// its pool's protection actor: schedule and retry timers, the source's
// manifest and chunks, the jobs' outcomes. It asks the protection actor to
// queue jobs and stores its state after every step.

#include <memory>
#include <string>

#include "actors/messages.hpp"
#include "actors/protection.hpp"
#include "engine/replication.hpp"

namespace balctl {

struct account_actor_state {
  std::string pool;
  protected_account account;
  std::unique_ptr<replication> repl;
  protection_deps deps;
  caf::actor protection;
  std::int64_t armed_ms = 0;
  // The replication's history counters as last added to deps.metrics.
  std::uint64_t counted_ok = 0, counted_failed = 0, counted_skipped = 0;
  static inline const char* name = "account";
};

caf::behavior account_actor(caf::stateful_actor<account_actor_state>* self, std::string pool,
                            protected_account a, replication_state s, protection_deps deps,
                            caf::actor protection);

/// The replication view of an account as JSON text (the API's
/// "replication" object): phase, health, run, progress, last sync.
std::string replication_view_json(const replication& r, const protected_account& a,
                                  std::int64_t now_ms);

} // namespace balctl
