#pragma once

// Member actor: a thin wrapper around member_fsm. It owns one lazy deadline
// timer (DESIGN.md principle 1): ingest never messages it for a steady-state
// heartbeat; the timer fires at the next deadline, reads last_seen from the
// member's slot and either re-arms for the remainder or reports a transition
// to its pool. When ingest hears a member that is not healthy, the pool
// forwards a heard_atom so recovery is noticed at once.

#include <memory>

#include "actors/messages.hpp"
#include "engine/clock.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"

namespace balctl {

struct member_actor_state {
  std::shared_ptr<member_runtime> rt;
  caf::actor pool;
  const clock* clk = nullptr;
  engine_metrics* metrics = nullptr;
  std::int64_t armed_ms = 0; // deadline of the pending timer, 0 = none
  static inline const char* name = "member";
};

caf::behavior member_actor(caf::stateful_actor<member_actor_state>* self,
                           std::shared_ptr<member_runtime> rt, caf::actor pool,
                           const clock* clk, engine_metrics* metrics,
                           std::shared_ptr<pool_runtime> pool_rt);

} // namespace balctl
