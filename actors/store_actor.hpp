#pragma once

// Store actor: the only caller of the store adapter. Runs detached (its own
// thread) because store calls block (SQLite on disk, Redis on the network);
// everyone else stays non-blocking and talks to it by message. (close_atom)
// stops it after the writes queued before it.
//
// When the store is unavailable (Redis down or not answering: the adapter
// throws store_unavailable), the engine goes on: the writes it can owe are
// kept here, in order, and written when the store is back (write-behind):
// decisions and DNS journal entries get provisional ids meanwhile, mapped
// to their real ids when written; member checkpoints and active members are
// kept newest-only; activity lines and the other owed writes are bounded by
// max_owed (beyond it the oldest activity lines go first, then the oldest
// writes, each counted). Calls that answer an operator (admin API writes)
// are not owed: they fail at once with the reason.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "actors/messages.hpp"
#include "adapters/store/store.hpp"
#include "engine/metrics.hpp"

namespace balctl {

struct store_actor_options {
  /// Owed writes and activity lines kept while the store is unavailable
  /// (member checkpoints and active members not counted: one each at most).
  std::size_t max_owed = 100'000;
  /// How often an unavailable store is tried again.
  std::int64_t retry_ms = 500;
  /// How often the store's connection is looked at while nothing is
  /// written (0 = never).
  std::int64_t health_ms = 1000;
};

caf::behavior store_actor(caf::event_based_actor* self, std::shared_ptr<store> st,
                          engine_metrics* metrics, store_actor_options o);

} // namespace balctl
