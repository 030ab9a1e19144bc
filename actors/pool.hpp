#pragma once

// Pool actor: owns the pool's failover policy (engine/pool_policy) and its
// member actors. Member transitions come in; decisions go out, each one
// recorded in the store before the DNS executor is asked to act on it.
// Members are monitored by their pool: a crashed member is restarted here from
// its runtime; a crashed pool takes its members down and the supervisor
// restarts the lot from the pool's runtime.

#include <memory>
#include <unordered_map>

#include "actors/messages.hpp"
#include "engine/clock.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"

namespace balctl {

struct pool_deps {
  caf::actor supervisor;
  caf::actor store;
  caf::actor dns;
  const clock* clk = nullptr;
  engine_metrics* metrics = nullptr;
};

struct pool_member {
  caf::actor actor;
  member_runtime* rt = nullptr; // owned by the pool_runtime
};

struct pool_actor_state {
  std::shared_ptr<pool_runtime> rt;
  pool_deps deps;
  std::unique_ptr<pool_policy> policy;
  std::unordered_map<member_id, pool_member> members;
  std::size_t cpanel_members = 0;
  std::int64_t armed_ms = 0;
  static inline const char* name = "pool";
};

caf::behavior pool_actor(caf::stateful_actor<pool_actor_state>* self,
                         std::shared_ptr<pool_runtime> rt, pool_deps deps);

/// Routes the ingest path's rare notifications (heard while not healthy, a
/// new status body) to a pool actor. One per pool, shared by its slots.
class actor_notifier final : public member_notifier {
public:
  explicit actor_notifier(caf::actor pool) : pool_(std::move(pool)) {}
  void heard(member_id m) override;
  void status_changed(member_id m, member_status s) override;

private:
  caf::actor pool_;
};

} // namespace balctl
