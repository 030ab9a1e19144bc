#pragma once

// Spawns the actor tree for a bootstrapped engine: store actor (detached),
// DNS executor, supervisor → pools → members. Used by balctld and by the
// actor tests, so both run the same wiring.

#include <memory>

#include "actors/messages.hpp"
#include "engine/bootstrap.hpp"
#include "engine/clock.hpp"
#include "engine/metrics.hpp"

namespace balctl {

struct engine_handles {
  caf::actor store;
  caf::actor dns;
  caf::actor supervisor;
};

/// store_detached: false in tests that run on CAF's deterministic test
/// scheduler, which cannot drive detached actors.
engine_handles spawn_engine(caf::actor_system& sys, const engine_config& cfg,
                            engine_parts& parts, std::shared_ptr<store> st,
                            const clock* clk, engine_metrics* metrics,
                            bool store_detached = true);

/// Asks the DNS executor to finish decisions that were recorded but not
/// confirmed before the last stop (DESIGN.md principle 4); each one is marked
/// through the store actor once the executor confirms it. Read `pending`
/// from the store before spawn_engine: afterwards only the store actor may
/// touch the store.
void resume_pending_decisions(caf::actor_system& sys, const engine_handles& h,
                              const std::vector<decision_record>& pending);

void configure_actor_system(caf::actor_system_config& cfg);

} // namespace balctl
