#include "actors/supervisor.hpp"

#include <algorithm>
#include <chrono>

#include "actors/pool.hpp"
#include "engine/log.hpp"

namespace balctl {

namespace {

using self_ptr = caf::stateful_actor<supervisor_state>*;

void spawn_pool(self_ptr self, const std::shared_ptr<pool_runtime>& rt) {
  auto& st = self->state;
  pool_deps deps{caf::actor{self}, st.deps.store, st.deps.dns, st.deps.clk,
                 st.deps.metrics};
  // Monitored, not linked: CAF makes an exit with reason `kill` fatal for
  // every linked actor, so one killed pool would take the supervisor and
  // every other pool with it. A down message never does.
  auto a = self->spawn(pool_actor, rt, deps);
  self->monitor(a);
  st.pools[rt->config.name] = a;
  st.pool_by_addr[a.address()] = rt->config.name;
  if (st.fleet->tripped()) {
    self->send(a, fleet_hold_atom_v, true);
  }
}

// Restarts a crashed pool once its member actors are gone: they quit on the
// pool's down message, and until then an old member could still be running
// on the member_runtime the new pool is about to hand out.
void restart_pool(self_ptr self, const std::string& name) {
  auto& st = self->state;
  auto rt = st.runtimes.at(name);
  if (rt->live_members.load() > 0) {
    self->delayed_send(self, std::chrono::milliseconds(5), restart_atom_v, name);
    return;
  }
  spawn_pool(self, rt);
}

void update_fleet(self_ptr self) {
  auto& st = self->state;
  auto total = st.fleet->population();
  auto was = st.fleet->tripped();
  auto now = st.deps.clk->now_ms();
  auto is = st.fleet->update(now);
  auto next = st.fleet->next_deadline_ms();
  if (next && st.armed_ms != *next) {
    // A release is settling: look again when it is due.
    st.armed_ms = *next;
    self->delayed_send(self, std::chrono::milliseconds(std::max<std::int64_t>(0, *next - now)),
                       deadline_atom_v, *next);
  }
  if (is == was) {
    return;
  }
  if (!was) {
    log::error("fleet_silence_hold",
               {{"silent", std::to_string(st.fleet->silent_count())},
                {"population", std::to_string(total)},
                {"threshold", std::to_string(st.fleet->threshold())},
                {"reason", "a large share of the fleet went silent at once: "
                           "the engine's own network is suspect; failover "
                           "held in every pool"}});
  } else {
    log::info("fleet_silence_released",
              {{"silent", std::to_string(st.fleet->silent_count())},
               {"population", std::to_string(total)}});
  }
  for (const auto& p : st.pools) {
    self->send(p.second, fleet_hold_atom_v, !was);
  }
}

} // namespace

std::vector<member_state_record> snapshot_member_states(const registry& reg) {
  std::vector<member_state_record> out;
  for (const auto& s : reg.all()) {
    out.push_back(member_state_record{s->id, s->state.load(),
                                      s->state_since_ms.load(),
                                      s->last_seen_ms.load(),
                                      s->last_seq.load()});
  }
  return out;
}

caf::behavior supervisor_actor(self_ptr self,
                               std::vector<std::shared_ptr<pool_runtime>> pools,
                               supervisor_deps deps) {
  auto& st = self->state;
  st.deps = std::move(deps);
  st.fleet = std::make_unique<silence_guard>(st.deps.fleet_silence);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    auto i = st.pool_by_addr.find(msg.source);
    if (i == st.pool_by_addr.end()) {
      return;
    }
    auto name = i->second;
    st.pool_by_addr.erase(i);
    st.pools.erase(name);
    if (msg.reason == caf::exit_reason::normal ||
        msg.reason == caf::exit_reason::user_shutdown) {
      return;
    }
    st.deps.metrics->actor_restarts.fetch_add(1);
    log::error("actor_crashed", {{"kind", "pool"},
                                 {"pool", name},
                                 {"reason", self->system().render(msg.reason)},
                                 {"action", "restarted from last state"}});
    restart_pool(self, name);
  });
  for (auto& rt : pools) {
    st.runtimes[rt->config.name] = rt;
    spawn_pool(self, rt);
  }
  if (st.deps.checkpoint_interval_ms > 0) {
    self->delayed_send(self,
                       std::chrono::milliseconds(st.deps.checkpoint_interval_ms),
                       checkpoint_atom_v);
  }
  return {
    [=](silence_atom, member_id m, bool silent, std::int64_t at_ms) {
      auto& st = self->state;
      if (silent) {
        st.fleet->on_silent(m, at_ms);
      } else {
        st.fleet->on_heard(m);
      }
      update_fleet(self);
    },
    [=](restart_atom, const std::string& name) { restart_pool(self, name); },
    [=](deadline_atom, std::int64_t deadline_ms) {
      if (deadline_ms == self->state.armed_ms) {
        self->state.armed_ms = 0;
        update_fleet(self);
      }
    },
    [=](population_atom, const std::string& pool, std::uint64_t n) {
      // Kept as a running total: summing every pool on each message would
      // cost the fleet's pool count per member transition.
      auto& st = self->state;
      auto& known = st.population[pool];
      st.fleet->set_population(st.fleet->population() - known + n);
      known = n;
      update_fleet(self);
    },
    [=](pool_atom, const std::string& name) -> caf::result<caf::actor> {
      auto& st = self->state;
      auto i = st.pools.find(name);
      if (i == st.pools.end()) {
        return caf::make_error(caf::sec::invalid_argument, "no such pool", name);
      }
      return i->second;
    },
    [=](checkpoint_atom) {
      auto& st = self->state;
      self->send(st.deps.store, save_atom_v,
                 snapshot_member_states(*st.deps.reg));
      self->delayed_send(self,
                         std::chrono::milliseconds(st.deps.checkpoint_interval_ms),
                         checkpoint_atom_v);
    },
  };
}

} // namespace balctl
