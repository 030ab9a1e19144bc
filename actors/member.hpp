#pragma once

// Member actor: a thin wrapper around member_fsm. Ingest never messages it
// for a steady-state heartbeat (DESIGN.md principle 1). It evaluates its
// state machine when its pool wakes it, for a deadline or because ingest
// heard the member while it was not healthy, and reports the transition it
// took and its next deadline to the pool.
//
// The member's lazy timer lives in its pool (engine/deadline_queue), not in
// CAF's clock: a CAF timer costs about 250 bytes a member, and the pool
// re-arms a healthy member that was heard meanwhile without waking it, so
// the steady state costs no message at all.
//
// The actor keeps nothing outside its state: no monitor on the pool, no
// attached functor (each about 40 bytes a member). The pool stops its
// members when it ends, and the state's destructor keeps the pool's live
// member count.

#include <atomic>
#include <memory>

#include "actors/messages.hpp"
#include "engine/clock.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"

namespace balctl {

/// Keeps a member actor counted in pool_runtime::live_members for as long
/// as the actor's state lives (CAF destroys it when the actor terminates,
/// for any reason). The pool counts the actor when it spawns it, so a
/// crashed pool's supervisor never sees 0 while a member it spawned has yet
/// to start; the token takes that count over and gives it back.
class live_member_token {
public:
  live_member_token() = default;
  live_member_token(const live_member_token&) = delete;
  live_member_token& operator=(const live_member_token&) = delete;
  ~live_member_token();
  /// Takes over one count already added to the pool's live_members and to
  /// the node's (engine_metrics::live_members); gives both back when the
  /// token is destroyed. Once.
  void adopt(pool_runtime* pool);

private:
  pool_runtime* pool_ = nullptr;
};

struct member_actor_state {
  std::shared_ptr<member_runtime> rt;
  std::shared_ptr<pool_runtime> pool_rt; // the pool's settings and name
  caf::actor pool;
  const clock* clk = nullptr;
  engine_metrics* metrics = nullptr;
  live_member_token live; // last: released before pool_rt
  static inline const char* name = "member";
};

caf::behavior member_actor(caf::stateful_actor<member_actor_state>* self,
                           std::shared_ptr<member_runtime> rt, caf::actor pool,
                           const clock* clk, engine_metrics* metrics,
                           std::shared_ptr<pool_runtime> pool_rt);

} // namespace balctl
