#include "actors/pool.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "actors/crash.hpp"
#include "actors/dns_executor.hpp"
#include "actors/member.hpp"
#include "actors/pool_accounts.hpp"
#include "engine/features.hpp"
#include "engine/log.hpp"
#include "engine/secrets.hpp"

namespace balctl {

namespace {

using self_ptr = caf::stateful_actor<pool_actor_state>*;

void note(self_ptr self, activity_kind kind, member_id m, std::string message,
          member_state from = member_state::pending,
          member_state to = member_state::pending);

bool is_silent(member_state s) {
  return s == member_state::suspect || s == member_state::down;
}

constexpr std::size_t activity_batch = 512;
constexpr auto activity_flush_delay = std::chrono::milliseconds(200);
// How often a pool whose lease is not confirmed looks again (a renewal
// comes at least every second).
constexpr std::int64_t lease_recheck_ms = 100;

void flush_activity(self_ptr self) {
  auto& st = self->state;
  st.activity_armed = false;
  if (st.activity.empty()) {
    return;
  }
  auto keep = static_cast<std::uint64_t>(st.deps.engine->admin.activity_retention);
  self->send(st.deps.store, activity_atom_v, st.rt->config.name,
             std::move(st.activity), keep);
  st.activity.clear();
}

// One line in the pool's activity log (the admin API's /activity and a
// member's state history).
void note(self_ptr self, activity_kind kind, member_id m, std::string message,
          member_state from, member_state to) {
  auto& st = self->state;
  st.activity.push_back(activity_line{st.deps.clk->now_ms(), m, kind, from, to,
                                      std::move(message)});
  if (st.activity.size() >= activity_batch) {
    flush_activity(self);
  } else if (!st.activity_armed) {
    st.activity_armed = true;
    // With a flag: a handler that answers would send its answer to this
    // timer's sender, the pool itself.
    self->delayed_send(self, activity_flush_delay, activity_flush_atom_v, true);
  }
}

// Pools declared in the config file are changed there, not through the
// API: the next start would silently undo an API change.
std::optional<caf::error> refuse_if_config_pool(self_ptr self) {
  const auto& c = self->state.rt->config;
  if (c.from_api) {
    return std::nullopt;
  }
  return refuse("pool_managed_by_config", "",
                "pool '" + c.name + "' is declared in the config file; "
                "change it there and restart balctld");
}

void spawn_member(self_ptr self, std::size_t pos) {
  auto& st = self->state;
  // Monitored rather than linked (see supervisor.cpp): the pool restarts a
  // member that died. A member does not watch its pool: the pool's exit
  // hook stops its members, one attachable per pool instead of per member.
  // Counted before the actor runs (its token takes the count over): the
  // supervisor restarts a crashed pool only once this reaches 0.
  st.rt->live_members.fetch_add(1);
  st.deps.metrics->live_members.fetch_add(1);
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
  if (auto a = st.rt->accounts.next_deadline_ms(); a && (!next || *a < *next)) {
    next = a;
  }
  if (!next || (st.armed_ms != 0 && st.armed_ms <= *next)) {
    return;
  }
  st.armed_ms = *next;
  auto delay_ms = std::max<std::int64_t>(0, *next - st.deps.clk->now_ms());
  self->delayed_send(self, std::chrono::milliseconds(delay_ms),
                     deadline_atom_v, *next);
}

// The address a record takes while m holds it: its explicit public address
// of the family, else its first allowed IP of the family; "" when none.
std::string address_of(self_ptr self, member_id m, bool ipv6 = false) {
  auto& st = self->state;
  const auto& explicit_ = ipv6 ? st.rt->public_ipv6 : st.rt->public_ipv4;
  if (auto i = explicit_.find(m); i != explicit_.end()) {
    return i->second;
  }
  auto pos = st.policy->position_of(m);
  if (!pos) {
    return {};
  }
  for (const auto& ip : st.rt->members[*pos]->slot->allowed_ips) {
    auto text = ip.to_string();
    if ((text.find(':') != std::string::npos) == ipv6) {
      return text;
    }
  }
  return {};
}

// The DNS changes that make the failover record point at member `to`: one
// A record, when the pool has a provider, a failover hostname and sync on
// (the seed's Dynamic DNS card). Empty otherwise: the decision is recorded
// and DNS stays. Pool failover records go first (priority 0).
std::vector<dns_change_record> failover_changes(self_ptr self, member_id to,
                                                std::int64_t decision) {
  auto& st = self->state;
  const auto& c = st.rt->config;
  std::vector<dns_change_record> out;
  if (c.dns_provider.empty() || c.failover_hostname.empty() || !c.dns_sync) {
    return out;
  }
  auto address = address_of(self, to);
  if (address.empty()) {
    log::error("dns_no_address", {{"pool", c.name},
                                  {"member", std::to_string(to)},
                                  {"reason", "the member has no public_ipv4 and no "
                                             "IPv4 allowed IP; DNS not moved"}});
    note(self, activity_kind::dns_alert, to,
         "DNS not moved: member " + std::to_string(to) +
           " has no IPv4 address for " + c.failover_hostname);
    return out;
  }
  dns::record r;
  r.zone = c.dns_zone;
  r.name = c.failover_hostname;
  r.type = dns::record_type::a;
  r.content = address;
  r.ttl_s = c.dns_ttl_s;
  if (c.dns_only) {
    r.proxied = false;
  }
  out.push_back(make_dns_change(c.name, c.dns_provider, decision, 0, r));
  return out;
}

// Hands a decision's DNS changes to the router and marks the decision when
// they have ended.
void execute(self_ptr self, std::int64_t id, const pool_decision& d) {
  auto& st = self->state;
  auto store = st.deps.store;
  auto changes = failover_changes(self, d.to, id);
  for (auto& c : changes) {
    c.created_ms = d.at_ms; // the decision: its latency figure starts here
  }
  bool moves = !changes.empty();
  auto target = moves ? changes.front().content : std::string();
  auto host = st.rt->config.failover_hostname;
  ++st.in_flight;
  self->request(st.deps.dns, caf::infinite, execute_atom_v, id, d, std::move(changes))
    .then(
      [=](bool done) {
        --self->state.in_flight;
        if (id != 0) {
          self->send(store, mark_atom_v, id, std::string(done ? "done" : "failed"));
        }
        if (moves && done) {
          note(self, activity_kind::dns_change, d.to,
               host + " A " + target + " (member " + std::to_string(d.to) + ")");
        }
      },
      [=](caf::error& err) {
        --self->state.in_flight;
        // Stays pending in the store: the next start resumes it.
        log::error("dns_change_failed",
                   {{"decision", std::to_string(id)},
                    {"pool", d.pool},
                    {"error", self->system().render(err)}});
      });
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
  note(self, activity_kind::decision, d.to, std::string(to_string(d.kind)) + ": " + d.reason);
  if (st.protection && moves_dns(d.kind)) {
    // The failover e-mail and the pool's failover banner (Monitoring).
    self->send(st.protection, alert_atom_v,
               "Pool " + d.pool + ": " + to_string(d.kind) + " from member " +
                 std::to_string(d.from) + " to member " + std::to_string(d.to) +
                 (st.rt->config.failover_hostname.empty()
                    ? std::string()
                    : " (" + st.rt->config.failover_hostname + ")") +
                 ": " + d.reason);
  }
  auto store = st.deps.store;
  // Ahead of queued account cuts and activity: a decision moves the pool's
  // failover record first.
  self->request<caf::message_priority::high>(store, caf::infinite, record_atom_v, d)
    .then(
      [=](std::int64_t id) {
        if (!moves_dns(d.kind)) {
          return;
        }
        self->send(store, active_atom_v, d.pool, d.to);
        execute(self, id, d);
      },
      [=](caf::error& err) {
        if (is_fenced(err)) {
          // Another node owns the pool now: it decides, this one must not
          // touch DNS (it stops the pool when its lease renewal fails).
          log::warn("decision_fenced", {{"pool", d.pool}, {"kind", to_string(d.kind)}});
          return;
        }
        // Refusing to move DNS because the disk failed would keep the
        // outage; act, and say loudly that the decision is not durable.
        log::error("decision_not_persisted",
                   {{"pool", d.pool},
                    {"kind", to_string(d.kind)},
                    {"error", self->system().render(err)}});
        if (moves_dns(d.kind)) {
          execute(self, 0, d);
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
  const auto& params = *st.rt->detection; // this actor is its only writer
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

// Acts on the policy's decisions, then lets the protected accounts follow
// what changed (member `changed`, 0 = none; a hold released; fail-backs due).
void act_on_all(self_ptr self, std::vector<pool_decision> ds, member_id changed = 0) {
  for (auto& d : ds) {
    act_on(self, std::move(d));
  }
  accounts_step(self, changed, self->state.deps.clk->now_ms());
  arm(self);
}

member_info info_of(self_ptr self, std::size_t pos) {
  auto& st = self->state;
  const auto& m = *st.rt->members[pos];
  const auto& slot = *m.slot;
  member_info i;
  i.id = slot.id;
  i.name = m.display_name();
  i.hostname = slot.hostname;
  i.linux_family = to_string(m.family);
  for (const auto& ip : slot.allowed_ips) {
    i.allowed_ips.push_back(ip.to_string());
  }
  i.state = slot.state.load(std::memory_order_acquire);
  i.state_since_ms = slot.state_since_ms.load(std::memory_order_relaxed);
  i.last_seen_ms = slot.last_seen_ms.load(std::memory_order_relaxed);
  i.enrolled = m.enrolled;
  i.damped = m.damped.load(std::memory_order_relaxed);
  i.active = slot.id == st.policy->active();
  i.has_status = m.status != nullptr;
  if (m.status) {
    i.status = *m.status;
  }
  return i;
}

pool_summary summary_of(self_ptr self) {
  auto& st = self->state;
  const auto& c = st.rt->config;
  pool_summary s;
  s.id = c.name;
  s.name = c.label.empty() ? c.name : c.label;
  s.preset = to_string(c.preset);
  s.from_api = c.from_api;
  s.members = st.rt->members.size();
  for (const auto& m : st.rt->members) {
    s.agents_healthy +=
      m->slot->state.load(std::memory_order_relaxed) == member_state::healthy;
    s.enrolled += m->enrolled ? 1 : 0;
  }
  s.active = st.policy->active();
  s.holding = st.policy->holding();
  s.failover_delay_s = c.failover_delay_s;
  s.failover_hostname = c.failover_hostname;
  s.failback = to_string(c.failback);
  s.failback_stable_s = c.failback_stable_s;
  s.mass_silence_share = c.mass_silence_share;
  s.mass_silence_min_members = c.mass_silence_min_members;
  s.mass_silence_window_s = c.mass_silence_window_s;
  s.dns_provider = c.dns_provider;
  s.dns_zone = c.dns_zone;
  s.dns_ttl_s = c.dns_ttl_s;
  s.dns_sync = c.dns_sync;
  s.dns_only = c.dns_only;
  return s;
}

// Members offset.. (at most limit) in the pool's order.
member_page page_of(self_ptr self, std::uint64_t offset, std::uint64_t limit) {
  member_page page;
  page.total = self->state.rt->members.size();
  for (auto pos = offset; pos < page.total && pos - offset < limit; ++pos) {
    page.members.push_back(info_of(self, pos));
  }
  return page;
}

pool_overview overview_of(self_ptr self, std::uint64_t offset,
                          std::uint64_t limit, const std::string& latest) {
  auto& st = self->state;
  pool_overview o;
  o.pool = summary_of(self);
  for (const auto& m : st.rt->members) {
    o.last_check_in_ms = std::max(
      o.last_check_in_ms, m->slot->last_seen_ms.load(std::memory_order_relaxed));
    if (m->status && !latest.empty() &&
        version_older(m->status->agent_version, latest)) {
      ++o.outdated_agents;
    }
    if (m->status) {
      o.cron_jobs += m->status->jobs.cron;
      o.backups += m->status->jobs.backups;
    }
  }
  o.cpanel_members = st.cpanel_members;
  o.running_jobs = st.running_jobs->load(std::memory_order_relaxed);
  o.queued_jobs = st.queued_jobs->load(std::memory_order_relaxed);
  auto f = compute_features(st.rt->config.preset, st.cpanel_members);
  o.protection = f.protection;
  o.managed_dns = f.managed_dns;
  o.tiles = page_of(self, offset, limit);
  return o;
}

// The stored form of a member an operator adds: pending enrolment, with a
// key nobody holds, so no heartbeat verifies until the agent enrols.
member_config new_member_config(member_id id, const new_member& nm) {
  member_config mc;
  mc.id = id;
  mc.hostname = nm.hostname;
  mc.name = nm.name.empty() ? nm.hostname : nm.name;
  mc.allowed_ips = nm.allowed_ips;
  mc.linux_family = nm.linux_family;
  mc.enrolled = false;
  mc.key = secrets::random_key();
  return mc;
}

// Adds a member the store already holds: slot, runtime and actor, appended
// to the pool's order. Pending until its agent enrols and is heard.
member_info add_member(self_ptr self, const member_config& mc) {
  auto& st = self->state;
  auto now = st.deps.clk->now_ms();
  auto id = mc.id;
  auto member =
    make_member(mc, member_fsm(st.rt->detection, member_state::pending, now));
  auto& slot = *member.slot;
  slot.pool = st.rt->shared_name();
  member.rt->publish_state(now);
  slot.set_notifier(st.notifier);
  st.deps.reg->add(member.slot);
  st.rt->members.push_back(std::move(member.rt));
  auto pos = st.rt->members.size() - 1;
  st.policy->add_member(id, member_state::pending);
  st.deadlines.resize(st.rt->members.size());
  st.actors->emplace_back();
  spawn_member(self, pos);
  note(self, activity_kind::member_added, id,
       "server " + mc.name + " (" + mc.hostname + ") added; waiting for its "
       "agent to enrol");
  log::info("member_added", {{"pool", st.rt->config.name},
                             {"member", std::to_string(id)},
                             {"hostname", mc.hostname}});
  return info_of(self, pos);
}

caf::error store_failed(self_ptr self, const caf::error& e, const char* what) {
  return refuse("unavailable", "",
                std::string(what) + ": the store failed: " +
                  self->system().render(e));
}

// Writes the pool's current row; the caller's answer waits for the disk.
// Each write carries the whole current row, so the last one to land is the
// latest state however requests interleave.
void store_pool_row(self_ptr self, caf::typed_response_promise<pool_summary> rp) {
  auto& st = self->state;
  ++st.pending_writes;
  self->request(st.deps.store, caf::infinite, update_pool_atom_v, st.rt->config)
    .then(
      [=](bool) mutable {
        --self->state.pending_writes;
        rp.deliver(summary_of(self));
      },
      [=](caf::error& e) mutable {
        --self->state.pending_writes;
        rp.deliver(store_failed(self, e, "applied, but not stored (lost at restart)"));
      });
}

void remove_member(self_ptr self, std::size_t pos) {
  auto& st = self->state;
  auto& rt = *st.rt->members[pos];
  auto id = rt.slot->id;
  auto name = rt.display_name();
  auto now = st.deps.clk->now_ms();
  // Its actor goes first: erased from the vector, its down message finds
  // no member and restarts nothing.
  auto& actors = *st.actors;
  self->send_exit(actors[pos], caf::exit_reason::user_shutdown);
  actors.erase(actors.begin() + static_cast<std::ptrdiff_t>(pos));
  rt.slot->set_notifier(nullptr);
  st.deps.reg->remove(id);
  st.cpanel_members -= rt.status && rt.status->cpanel.present ? 1 : 0;
  st.cpanel->set(id, false);
  if (st.protection) {
    self->send(st.protection, remove_member_atom_v, id);
  }
  auto before = st.policy->state_of(id);
  if (is_silent(before)) {
    self->send(st.deps.supervisor, silence_atom_v, id, false, now);
  }
  auto was_active = st.policy->active();
  st.policy->remove_member(id);
  st.deadlines.erase(static_cast<deadline_queue::position>(pos));
  st.rt->members.erase(st.rt->members.begin() + static_cast<std::ptrdiff_t>(pos));
  self->send(st.deps.supervisor, population_atom_v, st.rt->config.name,
             static_cast<std::uint64_t>(st.policy->heard_population()));
  note(self, activity_kind::member_removed, id, "server " + name + " removed");
  log::info("member_removed", {{"pool", st.rt->config.name},
                               {"member", std::to_string(id)}});
  // The failover record must not keep pointing at a server that left the
  // pool: move it as a failover would (pool_policy picked the successor).
  auto now_active = st.policy->active();
  if (was_active == id && before == member_state::pending) {
    // Never heard from: it carried no traffic, there is nothing to move.
  } else if (st.rt->dns_orphaned_by != 0 && was_active == id) {
    // DNS already points at an earlier removed member; still waiting.
  } else if (was_active == id &&
      (now_active == 0 || st.policy->state_of(now_active) != member_state::healthy)) {
    // Forced: nobody healthy to move DNS to. Say so; the pool fails over
    // as soon as a member is healthy and the active one is not.
    log::error("active_member_removed", {{"pool", st.rt->config.name},
                                         {"member", std::to_string(id)},
                                         {"reason", "no healthy standby; DNS not moved"}});
    note(self, activity_kind::decision, id,
         "active member removed with no healthy standby: DNS not moved until "
         "a member is healthy");
    st.rt->dns_orphaned_by = id;
    // Stored as the pool's active member: a restarted pool (or balctld)
    // finds it is no member and keeps waiting for a healthy one.
    st.rt->active = id;
    self->send(st.deps.store, active_atom_v, st.rt->config.name, id);
  } else if (was_active == id && now_active != id) {
    pool_decision d{decision_kind::failover, st.rt->config.name, id,
                    now_active,
                    "the active member " + std::to_string(id) +
                      " was removed by an operator",
                    now};
    act_on_all(self, {std::move(d)});
  }
}

// "failover_delay_s 30 -> 60, failback manual -> automatic"
std::string settings_changes(const pool_config& a, const pool_config& b) {
  std::string out;
  auto add = [&](const char* key, const std::string& x, const std::string& y) {
    if (x != y) {
      out += (out.empty() ? "" : ", ") + std::string(key) + " " + x + " -> " + y;
    }
  };
  add("failover_delay_s", std::to_string(a.failover_delay_s),
      std::to_string(b.failover_delay_s));
  add("failover_hostname", a.failover_hostname, b.failover_hostname);
  add("failback", to_string(a.failback), to_string(b.failback));
  add("failback_stable_s", std::to_string(a.failback_stable_s),
      std::to_string(b.failback_stable_s));
  add("mass_silence_share", std::to_string(a.mass_silence_share),
      std::to_string(b.mass_silence_share));
  add("mass_silence_min_members", std::to_string(a.mass_silence_min_members),
      std::to_string(b.mass_silence_min_members));
  add("mass_silence_window_s", std::to_string(a.mass_silence_window_s),
      std::to_string(b.mass_silence_window_s));
  add("dns_provider", a.dns_provider, b.dns_provider);
  add("dns_zone", a.dns_zone, b.dns_zone);
  add("dns_ttl_s", std::to_string(a.dns_ttl_s), std::to_string(b.dns_ttl_s));
  add("dns_sync", a.dns_sync ? "true" : "false", b.dns_sync ? "true" : "false");
  add("dns_only", a.dns_only ? "true" : "false", b.dns_only ? "true" : "false");
  return out;
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

void pool_note(pool_self self, activity_kind kind, member_id m, std::string message) {
  note(self, kind, m, std::move(message));
}

std::string pool_member_address(pool_self self, member_id m, bool ipv6) {
  return address_of(self, m, ipv6);
}

void arm_pool(pool_self self) {
  arm(self);
}

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
  st.rt->node_live_members = &metrics->live_members;
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
  bool decided_before = st.rt->active != 0;
  if (st.rt->active != 0) {
    active = st.rt->active;
    if (std::find(order.begin(), order.end(), st.rt->active) == order.end()) {
      // The stored active member was removed with nobody healthy to take
      // over: DNS still points at it until a member turns healthy.
      st.rt->dns_orphaned_by = st.rt->active;
      active.reset();
    }
  }
  st.policy = std::make_unique<pool_policy>(st.rt->config.name, st.rt->policy,
                                            order, active);
  for (const auto& m : st.rt->members) {
    st.policy->restore_state(m->slot->id, m->fsm.state(),
                             m->fsm.state_since_ms());
  }
  if (st.rt->dns_orphaned_by == 0) {
    st.rt->active = st.policy->active();
  }
  st.cpanel_members = 0;
  for (const auto& m : st.rt->members) {
    bool cp = m->status && m->status->cpanel.present;
    st.cpanel_members += cp ? 1 : 0;
    st.cpanel->set(m->slot->id, cp);
  }
  if (st.deps.protection) {
    auto pd = *st.deps.protection;
    pd.has_cpanel = [cp = st.cpanel](member_id m) { return cp->has(m); };
    pd.running_jobs = st.running_jobs;
    pd.queued_jobs = st.queued_jobs;
    st.protection = self->spawn<caf::linked>(protection_actor, st.rt->config.name, std::move(pd));
    accounts_to_protection(self);
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
      flush_activity(self);
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
  // A pool that had decided before (a restart, a crash): its failover
  // record is made to point at the active member again. Read-compare-write
  // makes it one read when it does; when the engine stopped between a
  // decision and its DNS change, this is what finishes the change.
  if (decided_before && st.rt->dns_orphaned_by == 0 &&
      !failover_changes(self, st.rt->active, 0).empty()) {
    auto a = st.rt->active;
    execute(self, 0, pool_decision{decision_kind::failover, st.rt->config.name, a, a,
                                   "restart: the failover record follows the "
                                   "active member " + std::to_string(a),
                                   st.deps.clk->now_ms()});
  }
  st.notifier = std::make_shared<actor_notifier>(caf::actor{self});
  for (std::size_t pos = 0; pos < st.rt->members.size(); ++pos) {
    st.rt->members[pos]->slot->set_notifier(st.notifier);
    spawn_member(self, pos);
  }
  log::info("pool_started", {{"pool", st.rt->config.name},
                             {"members", std::to_string(st.rt->members.size())},
                             {"active", std::to_string(st.policy->active())}});
  // A (re)started pool decides on what it restored: an active member that is
  // already down is failed over now, not at the next transition.
  act_on_all(self, st.policy->on_tick(st.deps.clk->now_ms()));
  accounts_evaluate_all(self, st.deps.clk->now_ms());
  arm(self);
  caf::message_handler core{
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
      note(self, activity_kind::state_change, t.member, {}, before, t.to);
      // Only what alert_rules can act on: going silent, or healthy again
      // after silence (a fleet starting up, pending → healthy, costs nothing).
      if (st.protection && (is_silent(t.to) || (t.to == member_state::healthy &&
                                                before != member_state::pending))) {
        auto pos = st.policy->position_of(t.member);
        self->send(st.protection, alert_atom_v, t.member,
                   pos ? st.rt->members[*pos]->display_name() : std::to_string(t.member),
                   std::string(to_string(before)), std::string(to_string(t.to)));
      }
      auto heard_before = st.policy->heard_population();
      // Member states reach the store through the supervisor's periodic
      // checkpoint (and the one at shutdown), in one transaction each; a
      // write per transition would queue a million single-row transactions
      // behind the decisions when a fleet starts. Restart grace covers the
      // states newer than the last checkpoint.
      auto ds = st.policy->on_member_state(t.member, t.from, t.to, now);
      if (auto from = st.rt->dns_orphaned_by; from != 0) {
        // DNS still points at a removed server. A move the policy makes
        // now starts from there; else the first member healthy since
        // takes over. One DNS change either way.
        auto moved = std::find_if(ds.begin(), ds.end(), [](const pool_decision& d) {
          return moves_dns(d.kind);
        });
        if (moved != ds.end()) {
          moved->from = from;
          st.rt->dns_orphaned_by = 0;
        } else if (t.to == member_state::healthy) {
          st.rt->dns_orphaned_by = 0;
          st.policy->set_active(t.member);
          ds.push_back(pool_decision{
            decision_kind::failover, st.rt->config.name, from, t.member,
            "the removed active member " + std::to_string(from) +
              " still had DNS; " + std::to_string(t.member) +
              " is the first member healthy since",
            now});
        }
      }
      act_on_all(self, std::move(ds), t.member);
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
      st.cpanel->set(m, cur.cpanel.present);
      if (st.protection) {
        self->send(st.protection, alert_atom_v, m, rt.display_name(), cur);
      }
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
      if (now > st.rt->lease_until_ms.load(std::memory_order_acquire)) {
        // Cluster: the lease is not confirmed (this node was paused, or
        // cannot reach Redis) and may be another node's by now. Nothing is
        // evaluated, so nothing decided, until a renewal confirms it or
        // the pool is given up; looked at again shortly.
        if (!st.lease_unconfirmed) {
          st.lease_unconfirmed = true;
          log::warn("pool_lease_unconfirmed", {{"pool", st.rt->config.name}});
        }
        st.armed_ms = now + lease_recheck_ms;
        self->delayed_send(self, std::chrono::milliseconds(lease_recheck_ms), deadline_atom_v,
                           st.armed_ms);
        return;
      }
      if (st.lease_unconfirmed) {
        st.lease_unconfirmed = false;
        log::info("pool_lease_confirmed", {{"pool", st.rt->config.name}});
      }
      wake_due_members(self, now);
      auto policy_next = st.policy->next_deadline_ms();
      act_on_all(self, policy_next && *policy_next <= now ? st.policy->on_tick(now)
                                                         : std::vector<pool_decision>{});
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
    // Cut pool: an operator moves the failover record to member m (make it
    // the active member). Only to a healthy member unless forced; a cut to
    // the active member re-applies its record (read-compare-write: a
    // record in place costs a read).
    [=](cut_atom, member_id m, bool force) -> caf::result<pool_summary> {
      auto& st = self->state;
      auto pos = st.policy->position_of(m);
      if (!pos) {
        return refuse("member_not_found", "member",
                      "no member " + std::to_string(m) + " in pool '" +
                        st.rt->config.name + "'");
      }
      auto state = st.policy->state_of(m);
      if (state != member_state::healthy && !force) {
        return refuse("member_not_healthy", "member",
                      "member " + std::to_string(m) + " is " + to_string(state) +
                        "; cut over only to a healthy member, or force");
      }
      auto now = st.deps.clk->now_ms();
      auto from = st.policy->active();
      st.rt->dns_orphaned_by = 0;
      st.policy->set_active(m);
      auto kind = m == st.policy->primary() && from != m ? decision_kind::failback
                                                         : decision_kind::failover;
      act_on_all(self, {pool_decision{kind, st.rt->config.name, from, m,
                                      "operator cut the pool to member " +
                                        std::to_string(m) +
                                        (force && state != member_state::healthy
                                           ? " (forced, member " +
                                               std::string(to_string(state)) + ")"
                                           : std::string()),
                                      now}});
      return summary_of(self);
    },
    // -- admin API ---------------------------------------------------------
    [=](summary_atom) -> pool_summary { return summary_of(self); },
    [=](overview_atom, std::uint64_t offset, std::uint64_t limit,
        const std::string& latest_agent) -> pool_overview {
      return overview_of(self, offset, limit, latest_agent);
    },
    [=](members_atom, std::uint64_t offset, std::uint64_t limit) -> member_page {
      return page_of(self, offset, limit);
    },
    [=](member_atom, member_id m) -> caf::result<member_info> {
      auto pos = self->state.policy->position_of(m);
      if (!pos) {
        return refuse("member_not_found", "", "no member " + std::to_string(m) +
                                                " in pool '" +
                                                self->state.rt->config.name + "'");
      }
      return info_of(self, *pos);
    },
    [=](add_member_atom, member_id id, const new_member& nm)
      -> caf::result<member_info> {
      if (auto e = refuse_if_config_pool(self)) {
        return *e;
      }
      auto& st = self->state;
      auto taken = [&](const std::string& h) {
        if (st.adding.count(h) != 0) {
          return true;
        }
        for (const auto& m : st.rt->members) {
          if (m->slot->hostname == h) {
            return true;
          }
        }
        return false;
      };
      if (taken(nm.hostname)) {
        return refuse("hostname_exists", "hostname",
                      "a member of this pool already has hostname " + nm.hostname);
      }
      // Stored first: the member exists in memory only once it is on disk,
      // and the supervisor's enrollment row (which references it) follows.
      auto mc = new_member_config(id, nm);
      st.adding.insert(mc.hostname);
      ++st.pending_writes;
      auto rp = self->make_response_promise<member_info>();
      self->request(st.deps.store, caf::infinite, add_member_atom_v,
                    st.rt->config.name, mc)
        .then(
          [=](bool) mutable {
            self->state.adding.erase(mc.hostname);
            --self->state.pending_writes;
            rp.deliver(add_member(self, mc));
          },
          [=](caf::error& e) mutable {
            self->state.adding.erase(mc.hostname);
            --self->state.pending_writes;
            rp.deliver(store_failed(self, e, "member not added"));
          });
      return rp;
    },
    [=](remove_member_atom, member_id m, bool force) -> caf::result<bool> {
      if (auto e = refuse_if_config_pool(self)) {
        return *e;
      }
      auto& st = self->state;
      auto pos = st.policy->position_of(m);
      if (!pos) {
        return refuse("member_not_found", "", "no member " + std::to_string(m) +
                                                " in pool '" +
                                                st.rt->config.name + "'");
      }
      // Removing the active member moves DNS to a healthy standby; with
      // none, DNS would keep pointing at a server that left the pool (or
      // move to one that is not healthy). Only on purpose. (A member never
      // heard from carries no traffic yet.)
      // One removal of this pool at a time: two at once could each count
      // the other as the standby that takes over.
      if (st.removing != 0) {
        return refuse("pool_busy", "", "another member of this pool is being "
                                       "removed; retry in a moment");
      }
      if (auto e = accounts_block_removal(self, m)) {
        return *e;
      }
      if (m == st.policy->active() && !force &&
          st.policy->state_of(m) != member_state::pending) {
        bool standby = false;
        for (const auto& other : st.rt->members) {
          standby |= other->slot->id != m &&
                     st.policy->state_of(other->slot->id) == member_state::healthy;
        }
        if (!standby) {
          return refuse("active_member_no_standby", "force",
                        "member " + std::to_string(m) + " is the active member "
                        "and no healthy standby can take over; add or repair a "
                        "standby first, or force");
        }
      }
      // Gone from the disk first, then from memory.
      st.removing = m;
      ++st.pending_writes;
      auto rp = self->make_response_promise<bool>();
      self->request(st.deps.store, caf::infinite, remove_member_atom_v, m)
        .then(
          [=](bool) mutable {
            auto& st = self->state;
            st.removing = 0;
            --st.pending_writes;
            if (auto p = st.policy->position_of(m)) {
              remove_member(self, *p);
            }
            rp.deliver(true);
          },
          [=](caf::error& e) mutable {
            self->state.removing = 0;
            --self->state.pending_writes;
            rp.deliver(store_failed(self, e, "member not removed"));
          });
      return rp;
    },
    [=](enrolled_atom, member_id m, const std::string& source) {
      auto& st = self->state;
      if (auto pos = st.policy->position_of(m)) {
        st.rt->members[*pos]->enrolled = true;
        note(self, activity_kind::enrolled, m, "agent enrolled from " + source);
      }
    },
    [=](rename_atom, const std::string& label) -> caf::result<pool_summary> {
      if (auto e = refuse_if_config_pool(self)) {
        return *e;
      }
      auto& st = self->state;
      auto old = st.rt->config.label.empty() ? st.rt->config.name
                                             : st.rt->config.label;
      // Only this actor reads the label.
      st.rt->config.label = label;
      note(self, activity_kind::pool_renamed, 0, "renamed from '" + old + "' to '" + label + "'");
      auto rp = self->make_response_promise<pool_summary>();
      store_pool_row(self, rp);
      return rp;
    },
    [=](settings_atom, const std::string& patch) -> caf::result<pool_summary> {
      if (auto e = refuse_if_config_pool(self)) {
        return *e;
      }
      auto& st = self->state;
      // Validated on a copy: nothing changes unless all of it is valid.
      auto next = st.rt->config;
      auto errors = read_pool_settings(patch, next);
      if (!errors.empty()) {
        const auto& e = errors.front();
        auto code = e.message == "unknown key" ? "unknown_field" : "invalid_field";
        auto msg = e.value.empty() ? e.message
                                   : e.message + " (got " + e.value + ")";
        return refuse(code, e.field, msg);
      }
      if (!next.dns_provider.empty() && !pool_has_provider(self, next.dns_provider)) {
        return refuse("invalid_field", "dns_provider",
                      "no DNS provider has id '" + next.dns_provider +
                        "' (the config file's, or one of the pool's API providers)");
      }
      for (const auto& p : st.rt->providers) {
        if (p.id == next.dns_provider && p.kind == dns_provider_kind::whm) {
          // One member's key: when that member is the one that failed, its
          // server could not take the change.
          return refuse("invalid_field", "dns_provider",
                        "'" + p.id + "' is member " + std::to_string(p.member) +
                          "'s WHM key; the failover record needs a pool-wide credential");
        }
      }
      auto changed = settings_changes(st.rt->config, next);
      // Field by field, never the whole config: member actors read its
      // name on other threads.
      copy_settings(st.rt->config, next);
      const auto& cfg = *st.deps.engine;
      // Detection first (members re-read it), then the policy; both apply
      // to the next evaluation, no restart.
      st.rt->store_detection(std::make_shared<const detection_params>(
        make_detection_params(cfg, st.rt->config)));
      st.rt->policy = make_pool_params(cfg, st.rt->config);
      st.policy->set_params(st.rt->policy);
      for (const auto& a : *st.actors) {
        self->send(a, settings_atom_v);
      }
      if (!changed.empty()) {
        note(self, activity_kind::settings_changed, 0, changed);
        log::info("pool_settings", {{"pool", st.rt->config.name},
                                    {"changed", changed}});
      }
      act_on_all(self, st.policy->on_tick(st.deps.clk->now_ms()));
      // The fail-back policy may have changed for the accounts too.
      accounts_evaluate_all(self, st.deps.clk->now_ms());
      arm(self);
      auto rp = self->make_response_promise<pool_summary>();
      store_pool_row(self, rp);
      return rp;
    },
    [=](delete_pool_atom, bool force) -> caf::result<bool> {
      // Checked and done in one step: no DNS change can start in between.
      // The pool leaves the registry, the fleet guard and the store; its
      // members stop with it (the exit hook).
      auto& st = self->state;
      if (st.pending_writes > 0) {
        // Their answers would never come once the pool is gone.
        return refuse("pool_busy", "", "changes to this pool are being "
                                       "stored; retry in a moment");
      }
      if (st.in_flight > 0 && !force) {
        return refuse("failover_in_flight", "force",
                      std::to_string(st.in_flight) +
                        " DNS change(s) of this pool are in flight; retry "
                        "when done, or force");
      }
      auto now = st.deps.clk->now_ms();
      for (const auto& m : st.rt->members) {
        auto id = m->slot->id;
        m->slot->set_notifier(nullptr);
        st.deps.reg->remove(id);
        if (is_silent(st.policy->state_of(id))) {
          self->send(st.deps.supervisor, silence_atom_v, id, false, now);
        }
      }
      self->send(st.deps.supervisor, population_atom_v, st.rt->config.name,
                 std::uint64_t{0});
      st.activity.clear();
      // Its API credentials go with it (the store cascades; the router
      // stops their executors).
      self->send(st.deps.dns, delete_pool_atom_v, st.rt->config.name);
      self->send(st.deps.store, delete_pool_atom_v, st.rt->config.name);
      log::info("pool_deleted", {{"pool", st.rt->config.name},
                                 {"members", std::to_string(st.rt->members.size())},
                                 {"in_flight", std::to_string(st.in_flight)}});
      self->quit();
      return true;
    },
    [=](activity_flush_atom, bool) { flush_activity(self); }, // the timer
    [=](dns_alert_atom, const std::string&, const std::string& message) {
      note(self, activity_kind::dns_alert, 0, message);
    },
    // The pool's activity log (or one member's lines of it): what this pool
    // has not handed to the store yet goes first, so the answer includes a
    // change made just before the question.
    [=](activity_atom, std::int64_t before, std::uint64_t limit,
        member_id m) -> caf::result<std::vector<activity_record>> {
      flush_activity(self);
      auto rp = self->make_response_promise<std::vector<activity_record>>();
      rp.delegate(self->state.deps.store, activity_atom_v,
                  self->state.rt->config.name, before, limit, m);
      return rp;
    },
    [=](crash_atom) {
      // Fault injection for the supervision tests.
      throw std::runtime_error("injected crash");
    },
  };
  return core.or_else(accounts_handlers(self));
}

} // namespace balctl
