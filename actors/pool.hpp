#pragma once

// Pool actor: owns the pool's failover policy (engine/pool_policy) and its
// member actors. Member transitions come in; decisions go out, each one
// recorded in the store before the DNS executor is asked to act on it.
// Members are monitored by their pool: a crashed member is restarted here from
// its runtime; a crashed pool takes its members down and the supervisor
// restarts the lot from the pool's runtime.
//
// The pool also holds its members' lazy deadline timers (engine/
// deadline_queue) behind one CAF timer of its own. When a member's deadline
// comes and the member is healthy and was heard since, the pool re-arms it
// for the remainder itself; otherwise it wakes the member actor, which
// evaluates and reports its next deadline back.

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/messages.hpp"
#include "actors/protection.hpp"
#include "engine/clock.hpp"
#include "engine/deadline_queue.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"

namespace balctl {

struct pool_deps {
  caf::actor supervisor;
  caf::actor store;
  caf::actor dns;
  const clock* clk = nullptr;
  engine_metrics* metrics = nullptr;
  // For members added and settings changed at run time.
  std::shared_ptr<registry> reg;
  std::shared_ptr<const engine_config> engine; // without pools
  // Protection (jobs, replication): what the pool's protection actor gets;
  // null: no protection actor (tests of the pool alone).
  std::shared_ptr<const protection_deps> protection;
};

/// The members of a pool that report cPanel now: written by the pool
/// actor, read by its protection and account actors.
class cpanel_set {
public:
  void set(member_id m, bool present) {
    std::lock_guard<std::mutex> g(mu_);
    if (present) {
      ids_.insert(m);
    } else {
      ids_.erase(m);
    }
  }
  bool has(member_id m) const {
    std::lock_guard<std::mutex> g(mu_);
    return ids_.count(m) != 0;
  }

private:
  mutable std::mutex mu_;
  std::unordered_set<member_id> ids_;
};

class actor_notifier;

struct pool_actor_state {
  std::shared_ptr<pool_runtime> rt;
  pool_deps deps;
  std::unique_ptr<pool_policy> policy;
  // Member actors in the runtime's order, shared with the exit hook that
  // stops them when the pool ends (the state is gone by then).
  std::shared_ptr<std::vector<caf::actor>> actors;
  deadline_queue deadlines; // the members' timers, by position
  std::vector<deadline_queue::position> due; // scratch for pop_due
  std::size_t cpanel_members = 0;
  std::int64_t armed_ms = 0; // the pool's one CAF timer, 0 = none
  bool lease_unconfirmed = false; // cluster: waiting for a renewal (logged once)
  std::shared_ptr<actor_notifier> notifier; // shared by the pool's slots
  // Activity log lines not yet handed to the store: sent in batches, so a
  // fleet starting up costs one store message per few hundred transitions.
  std::vector<activity_line> activity;
  bool activity_armed = false;
  // DNS moves handed to the executor and not yet confirmed (deleting the
  // pool waits for them unless forced).
  std::size_t in_flight = 0;
  // The member whose removal is being stored (one at a time), 0 = none.
  member_id removing = 0;
  // Store writes requested and not yet answered (a delete waits for them).
  std::size_t pending_writes = 0;
  // Hostnames of members being stored right now (added once on disk).
  std::unordered_set<std::string> adding;
  // Managed DNS (actors/pool_accounts): whether the policy held DNS moves
  // for the network at the last look (a release re-evaluates accounts),
  // and what providers showed at Refresh DNS, Import and cuts, by
  // "name/TYPE" (status found | missing | failed; created_ms = when).
  bool network_hold = false;
  std::unordered_map<std::string, dns_change_record> observed;
  // Accounts whose add, change or removal is being stored (one at a time
  // each), and those being removed: no cut is taken for them meanwhile.
  std::unordered_set<std::string> accounts_changing;
  std::unordered_set<std::string> accounts_deleting;
  std::int64_t refreshed_ms = 0;
  std::uint64_t reads_pending = 0;
  // Protection (actors/protection), linked to the pool; null without deps.
  caf::actor protection;
  std::shared_ptr<cpanel_set> cpanel = std::make_shared<cpanel_set>();
  std::shared_ptr<std::atomic<std::uint64_t>> running_jobs =
    std::make_shared<std::atomic<std::uint64_t>>(0);
  std::shared_ptr<std::atomic<std::uint64_t>> queued_jobs =
    std::make_shared<std::atomic<std::uint64_t>>(0);
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
