#pragma once

// Store actor: the only caller of the store adapter. Runs detached (its own
// thread) because SQLite calls block on disk; everyone else stays
// non-blocking and talks to it by message. (close_atom) stops it after the
// writes queued before it.

#include <memory>

#include "actors/messages.hpp"
#include "adapters/store/store.hpp"
#include "engine/metrics.hpp"

namespace balctl {

caf::behavior store_actor(caf::event_based_actor* self,
                          std::shared_ptr<store> st, engine_metrics* metrics);

} // namespace balctl
