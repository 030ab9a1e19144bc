#include "actors/pool.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "actors/crash.hpp"
#include "actors/member.hpp"
#include "engine/features.hpp"
#include "engine/log.hpp"

namespace balctl {

namespace {

using self_ptr = caf::stateful_actor<pool_actor_state>*;

bool is_silent(member_state s) {
  return s == member_state::suspect || s == member_state::down;
}

void spawn_member(self_ptr self, std::size_t pos) {
  auto& st = self->state;
  // Monitored rather than linked (see supervisor.cpp): the pool restarts a
  // member that died. A member does not watch its pool: the pool's exit
  // hook stops its members, one attachable per pool instead of per member.
  // Counted before the actor runs (its token takes the count over): the
  // supervisor restarts a crashed pool only once this reaches 0.
  st.rt->live_members.fetch_add(1);
  auto a = self->spawn(member_actor, st.rt->members[pos], caf::actor{self},
                       st.deps.clk, st.deps.metrics, st.rt);
  self->monitor(a);
  (*st.actors)[pos] = std::move(a);
}

// Arms the pool's one CAF timer at the earliest of the policy's deadline
// and the members' deadlines, unless an earlier one is already pending.
void arm(self_ptr self) {
  auto& st = self->state;
  auto next = st.policy->next_deadline_ms();
  if (auto m = st.deadlines.next_ms(); m && (!next || *m < *next)) {
    next = m;
  }
  if (!next || (st.armed_ms != 0 && st.armed_ms <= *next)) {
    return;
  }
  st.armed_ms = *next;
  auto delay_ms = std::max<std::int64_t>(0, *next - st.deps.clk->now_ms());
  self->delayed_send(self, std::chrono::milliseconds(delay_ms),
                     deadline_atom_v, *next);
}

// Records the decision, then (for DNS moves) hands it to the executor. The
// active member is persisted with the decision so a restart resumes from it.
void act_on(self_ptr self, pool_decision d) {
  auto& st = self->state;
  st.deps.metrics->decisions.fetch_add(1);
  if (moves_dns(d.kind)) {
    st.deps.metrics->failovers.fetch_add(1);
    st.rt->active = d.to;
  } else if (d.kind != decision_kind::hold_released) {
    st.deps.metrics->holds.fetch_add(1);
  }
  auto level = moves_dns(d.kind) || d.kind == decision_kind::hold_released
                 ? log::level::info
                 : log::level::warn;
  log::write(level, "pool_decision",
             {{"pool", d.pool},
              {"kind", to_string(d.kind)},
              {"from", std::to_string(d.from)},
              {"to", std::to_string(d.to)},
              {"failover_hostname", st.rt->config.failover_hostname},
              {"reason", d.reason}});
  auto dns = st.deps.dns;
  auto store = st.deps.store;
  self->request(store, caf::infinite, record_atom_v, d)
    .then(
      [=](std::int64_t id) {
        if (!moves_dns(d.kind)) {
          return;
        }
        self->send(store, active_atom_v, d.pool, d.to);
        self->request(dns, caf::infinite, execute_atom_v, id, d)
          .then(
            [=](bool done) {
              self->send(store, mark_atom_v, id,
                         std::string(done ? "done" : "failed"));
            },
            [=](caf::error& err) {
              // Stays pending in the store: the next start resumes it.
              log::error("dns_change_failed",
                         {{"decision", std::to_string(id)},
                          {"pool", d.pool},
                          {"error", self->system().render(err)}});
            });
      },
      [=](caf::error& err) {
        // Refusing to move DNS because the disk failed would keep the
        // outage; act, and say loudly that the decision is not durable.
        log::error("decision_not_persisted",
                   {{"pool", d.pool},
                    {"kind", to_string(d.kind)},
                    {"error", self->system().render(err)}});
        if (moves_dns(d.kind)) {
          self->send(dns, execute_atom_v, std::int64_t{0}, d);
        }
      });
}

// Takes the members whose deadline has come. A healthy member heard since
// its timer was armed cannot have changed state (member_fsm::
// healthy_until_ms): re-armed here for the remainder, no message. Any other
// member's actor is woken to evaluate; its report re-arms it.
void wake_due_members(self_ptr self, std::int64_t now_ms) {
  auto& st = self->state;
  st.due.clear();
  st.deadlines.pop_due(now_ms, st.due);
  // The same object every member_fsm of this pool holds (bootstrap hands
  // each one rt->detection), so this re-arm agrees with the fsm's own rule.
  const auto& params = *st.rt->detection;
  for (auto pos : st.due) {
    const auto& slot = *st.rt->members[pos]->slot;
    if (slot.state.load(std::memory_order_acquire) == member_state::healthy) {
      auto last_seen = slot.last_seen_ms.load(std::memory_order_acquire);
      auto until = member_fsm::healthy_until_ms(params, last_seen);
      if (last_seen != 0 && until > now_ms) {
        st.deadlines.arm(pos, until);
        st.deps.metrics->deadlines_rearmed.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
    }
    st.deps.metrics->member_wakes.fetch_add(1, std::memory_order_relaxed);
    self->send((*st.actors)[pos], deadline_atom_v);
  }
  st.due.clear();
}

void act_on_all(self_ptr self, std::vector<pool_decision> ds) {
  for (auto& d : ds) {
    act_on(self, std::move(d));
  }
  arm(self);
}

pool_view make_view(self_ptr self) {
  auto& st = self->state;
  pool_view v;
  v.name = st.rt->config.name;
  v.active = st.policy->active();
  v.primary = st.policy->primary();
  v.holding = st.policy->holding();
  auto f = compute_features(st.rt->config.preset, st.cpanel_members);
  v.protection = f.protection;
  v.managed_dns = f.managed_dns;
  for (const auto& m : st.rt->members) {
    member_view mv;
    mv.id = m->slot->id;
    mv.name = m->display_name();
    mv.hostname = m->slot->hostname;
    mv.state = m->slot->state.load();
    mv.state_since_ms = m->slot->state_since_ms.load();
    mv.last_seen_ms = m->slot->last_seen_ms.load();
    mv.damped = m->damped.load(std::memory_order_relaxed);
    mv.has_status = m->status != nullptr;
    if (m->status) {
      mv.status = *m->status;
    }
    v.members.push_back(std::move(mv));
  }
  return v;
}

} // namespace

void actor_notifier::heard(member_id m) {
  caf::anon_send(pool_, heard_atom_v, m);
}

void actor_notifier::status_changed(member_id m, member_status s) {
  caf::anon_send(pool_, status_atom_v, m, std::move(s));
}

caf::behavior pool_actor(self_ptr self, std::shared_ptr<pool_runtime> rt,
                         pool_deps deps) {
  auto& st = self->state;
  st.rt = std::move(rt);
  st.deps = std::move(deps);
  auto* metrics = st.deps.metrics;
  metrics->live_pools.fetch_add(1);
  st.actors = std::make_shared<std::vector<caf::actor>>(st.rt->members.size());
  // Runs when the pool ends, for any reason, after its state is gone: its
  // members end with it (the supervisor restarts the lot from the runtime).
  // The exit messages go out on the worker that runs this hook (host), as
  // CAF's own down messages do: sent without it, a million of them are
  // spread over every worker's queue at once, and on two cores the workers
  // then spend minutes stealing from each other instead of running them.
  auto pool_addr = self->address();
  self->attach_functor([metrics, actors = st.actors, pool_addr](
                         const caf::error& reason, caf::execution_unit* host) {
    metrics->live_pools.fetch_sub(1);
    // A member ignores an exit message with reason normal.
    caf::error why = reason == caf::exit_reason::normal
                       ? caf::make_error(caf::exit_reason::user_shutdown)
                       : reason;
    for (const auto& a : *actors) {
      if (a) {
        a->enqueue(nullptr, caf::make_message_id(),
                   caf::make_message(caf::exit_msg{pool_addr, why}), host);
      }
    }
  });
  std::vector<member_id> order;
  for (const auto& m : st.rt->members) {
    order.push_back(m->slot->id);
  }
  st.deadlines.resize(order.size());
  std::optional<member_id> active;
  if (st.rt->active != 0) {
    active = st.rt->active;
  }
  st.policy = std::make_unique<pool_policy>(st.rt->config.name, st.rt->policy,
                                            order, active);
  for (const auto& m : st.rt->members) {
    st.policy->restore_state(m->slot->id, m->fsm.state(),
                             m->fsm.state_since_ms());
  }
  st.rt->active = st.policy->active();
  st.cpanel_members = 0;
  for (const auto& m : st.rt->members) {
    st.cpanel_members += m->status && m->status->cpanel.present ? 1 : 0;
  }
  self->send(st.deps.supervisor, population_atom_v, st.rt->config.name,
             static_cast<std::uint64_t>(st.policy->heard_population()));
  // A member that crashes is restarted from its runtime; the pool keeps
  // running. The supervisor going down ends the pool.
  self->set_exception_handler([=](std::exception_ptr& e) {
    return crash_to_error("pool", self->state.rt->config.name, e);
  });
  self->monitor(st.deps.supervisor);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.source == st.deps.supervisor.address()) {
      self->quit(msg.reason);
      return;
    }
    // A linear search: crashes are rare, and a map from address to member
    // would cost every member memory all the time.
    auto& actors = *st.actors;
    auto i = std::find_if(actors.begin(), actors.end(), [&](const auto& a) {
      return a.address() == msg.source;
    });
    if (i == actors.end()) {
      return; // a member already replaced
    }
    auto pos = static_cast<std::size_t>(i - actors.begin());
    auto id = st.rt->members[pos]->slot->id;
    st.deps.metrics->actor_restarts.fetch_add(1);
    log::error("actor_crashed", {{"kind", "member"},
                                 {"pool", st.rt->config.name},
                                 {"member", std::to_string(id)},
                                 {"reason", self->system().render(msg.reason)},
                                 {"action", "restarted from last state"}});
    // The new actor evaluates at once and reports its deadline.
    spawn_member(self, pos);
  });
  auto notifier = std::make_shared<actor_notifier>(caf::actor{self});
  for (std::size_t pos = 0; pos < st.rt->members.size(); ++pos) {
    st.rt->members[pos]->slot->set_notifier(notifier);
    spawn_member(self, pos);
  }
  log::info("pool_started", {{"pool", st.rt->config.name},
                             {"members", std::to_string(st.rt->members.size())},
                             {"active", std::to_string(st.policy->active())}});
  // A (re)started pool decides on what it restored: an active member that is
  // already down is failed over now, not at the next transition.
  act_on_all(self, st.policy->on_tick(st.deps.clk->now_ms()));
  return {
    [=](report_atom, const member_report_msg& t) {
      auto& st = self->state;
      auto pos = st.policy->position_of(t.member);
      if (!pos) {
        return;
      }
      if (t.has_next) {
        st.deadlines.arm(*pos, t.next_ms);
      }
      // from == to: no transition this time, only the member's state.
      if (t.from == t.to) {
        if (st.policy->state_of(t.member) == t.to) {
          arm(self);
          return;
        }
        // The member's state machine moved without the pool hearing of it
        // (its actor crashed between the step and the report): catch up
        // now, or a down active member would never be failed over.
        log::warn("member_state_reconciled",
                  {{"pool", st.rt->config.name},
                   {"member", std::to_string(t.member)},
                   {"pool_saw", to_string(st.policy->state_of(t.member))},
                   {"member_is", to_string(t.to)}});
      }
      auto now = st.deps.clk->now_ms();
      // The pool's own record of the member, not t.from: a transition lost
      // with a crashed actor must not leave the fleet guard out of step.
      auto before = st.policy->state_of(t.member);
      // Fleet-wide silence accounting lives in the supervisor; tell it first
      // so a fleet hold can precede this pool's own decision.
      if (is_silent(t.to) && !is_silent(before)) {
        self->send(st.deps.supervisor, silence_atom_v, t.member, true, t.at_ms);
      } else if (!is_silent(t.to) && is_silent(before)) {
        self->send(st.deps.supervisor, silence_atom_v, t.member, false, t.at_ms);
      }
      auto heard_before = st.policy->heard_population();
      // Member states reach the store through the supervisor's periodic
      // checkpoint (and the one at shutdown), in one transaction each; a
      // write per transition would queue a million single-row transactions
      // behind the decisions when a fleet starts. Restart grace covers the
      // states newer than the last checkpoint.
      act_on_all(self, st.policy->on_member_state(t.member, t.from, t.to, now));
      if (st.policy->heard_population() != heard_before) {
        self->send(st.deps.supervisor, population_atom_v, st.rt->config.name,
                   static_cast<std::uint64_t>(st.policy->heard_population()));
      }
    },
    [=](heard_atom, member_id m) {
      auto& st = self->state;
      if (auto pos = st.policy->position_of(m)) {
        self->send((*st.actors)[*pos], heard_atom_v);
      }
    },
    [=](status_atom, member_id m, member_status& s) {
      auto& st = self->state;
      auto pos = st.policy->position_of(m);
      if (!pos) {
        return;
      }
      auto& rt = *st.rt->members[*pos];
      if (!rt.status) {
        rt.status = std::make_unique<member_status>();
      }
      // Adjust the count by this member's change instead of recounting the
      // pool on every status body.
      auto before = compute_features(st.rt->config.preset, st.cpanel_members);
      st.cpanel_members -= rt.status->cpanel.present ? 1 : 0;
      *rt.status = std::move(s);
      const auto& cur = *rt.status;
      st.cpanel_members += cur.cpanel.present ? 1 : 0;
      auto after = compute_features(st.rt->config.preset, st.cpanel_members);
      log::debug("member_status", {{"pool", st.rt->config.name},
                                   {"member", std::to_string(m)},
                                   {"hostname", cur.hostname},
                                   {"agent_version", cur.agent_version}});
      if (before.protection != after.protection ||
          before.managed_dns != after.managed_dns) {
        log::info("pool_features", {{"pool", st.rt->config.name},
                                    {"cpanel_members",
                                     std::to_string(st.cpanel_members)},
                                    {"protection", after.protection ? "on" : "off"},
                                    {"managed_dns", after.managed_dns ? "on" : "off"}});
      }
    },
    [=](fleet_hold_atom, bool hold) {
      auto& st = self->state;
      act_on_all(self, st.policy->on_fleet_hold(hold, st.deps.clk->now_ms()));
    },
    [=](deadline_atom, std::int64_t deadline_ms) {
      auto& st = self->state;
      if (deadline_ms != st.armed_ms) {
        return;
      }
      st.armed_ms = 0;
      auto now = st.deps.clk->now_ms();
      wake_due_members(self, now);
      auto policy_next = st.policy->next_deadline_ms();
      if (policy_next && *policy_next <= now) {
        act_on_all(self, st.policy->on_tick(now));
      } else {
        arm(self);
      }
    },
    [=](failback_atom) -> std::string {
      auto& st = self->state;
      std::string why;
      auto ds = st.policy->request_failback(st.deps.clk->now_ms(), &why);
      if (ds.empty()) {
        return why;
      }
      act_on_all(self, std::move(ds));
      return {};
    },
    [=](caf::get_atom) -> pool_view { return make_view(self); },
    [=](crash_atom) {
      // Fault injection for the supervision tests.
      throw std::runtime_error("injected crash");
    },
  };
}

} // namespace balctl
