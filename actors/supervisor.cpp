#include "actors/supervisor.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <unordered_set>

#include "actors/dns_router.hpp"
#include "actors/pool.hpp"
#include "engine/bootstrap.hpp"
#include "engine/log.hpp"
#include "engine/secrets.hpp"

namespace balctl {

namespace {

// After a handoff: the time forwarding takes to follow the new owner (a
// lease round, then a forwarding round), with margin.
constexpr std::int64_t handoff_grace_ms = 3000;

using self_ptr = caf::stateful_actor<supervisor_state>*;

void spawn_pool(self_ptr self, const std::shared_ptr<pool_runtime>& rt) {
  auto& st = self->state;
  pool_deps deps{caf::actor{self}, st.deps.store, st.deps.dns, st.deps.clk,
                 st.deps.metrics, st.deps.reg, st.deps.engine, st.deps.protection};
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
  auto it = st.runtimes.find(name);
  if (it == st.runtimes.end()) {
    return; // deleted meanwhile
  }
  auto rt = it->second;
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

// How long an agent may ask again with the secret it just used and get the
// same grant (its first answer lost on the way, a timeout on its side).
constexpr std::int64_t grant_retry_ms = 120'000;

void forget_grants_of(self_ptr self, member_id m) {
  auto& st = self->state;
  auto i = st.grant_of.find(m);
  if (i == st.grant_of.end()) {
    return;
  }
  st.recent_grants.erase(i->second);
  st.grant_of.erase(i);
}

void remember_grant(self_ptr self, const std::string& hash,
                    const enrollment_grant& g, const std::string& source) {
  auto& st = self->state;
  auto now = st.deps.clk->now_ms();
  // Expired grants are swept when the map has doubled since the last sweep:
  // amortised O(1) a grant, however many agents enrol at once.
  if (st.recent_grants.size() >= st.grants_sweep_at) {
    for (auto i = st.recent_grants.begin(); i != st.recent_grants.end();) {
      if (i->second.until_ms <= now) {
        st.grant_of.erase(i->second.grant.member);
        i = st.recent_grants.erase(i);
      } else {
        ++i;
      }
    }
    st.grants_sweep_at = std::max<std::size_t>(64, 2 * st.recent_grants.size());
  }
  forget_grants_of(self, g.member);
  st.recent_grants[hash] = recent_grant{g, source, now + grant_retry_ms};
  st.grant_of[g.member] = hash;
}

void forget_enrollment(self_ptr self, member_id m) {
  auto& st = self->state;
  auto i = st.enrollment_of.find(m);
  if (i != st.enrollment_of.end()) {
    st.enrollments.erase(i->second);
    st.enrollment_of.erase(i);
  }
}

void remember_enrollment(self_ptr self, const enrollment_record& e) {
  auto& st = self->state;
  forget_enrollment(self, e.member); // a new secret replaces the old one
  forget_grants_of(self, e.member);
  auto key = secrets::to_hex(e.secret_sha256);
  st.enrollments[key] = e;
  st.enrollment_of[e.member] = key;
}

void log_activity(self_ptr self, const std::string& pool, activity_kind kind,
                  std::string message) {
  auto& st = self->state;
  activity_line l;
  l.at_ms = st.deps.clk->now_ms();
  l.kind = kind;
  l.message = std::move(message);
  self->send(st.deps.store, activity_atom_v, pool, std::vector<activity_line>{l},
             static_cast<std::uint64_t>(st.deps.engine->admin.activity_retention));
}

caf::error no_pool(const std::string& name) {
  return refuse("pool_not_found", "", "no pool '" + name + "'");
}

// The actor of a pool the admin API created, or why not: no such pool, or
// one the config file owns (why_config ends that sentence).
caf::expected<caf::actor> api_pool(self_ptr self, const std::string& name,
                                   const char* why_config) {
  auto& st = self->state;
  auto i = st.pools.find(name);
  auto rt = st.runtimes.find(name);
  if (i == st.pools.end() || rt == st.runtimes.end()) {
    return no_pool(name);
  }
  if (!rt->second->config.from_api) {
    return refuse("pool_managed_by_config", "",
                  "pool '" + name + "' is declared in the config file" + why_config);
  }
  return i->second;
}

caf::error store_failed_error(self_ptr self, const caf::error& e) {
  return refuse("unavailable", "",
                "the store failed: " + self->system().render(e));
}

// Opens a new enrollment for a member: a fresh secret, its hash stored
// before the secret is shown (a crash in between shows nothing).
void open_enrollment(self_ptr self, member_info info, std::string pool,
                     caf::response_promise rp) {
  auto secret = secrets::random_hex(24);
  enrollment_record rec;
  rec.secret_sha256 = secrets::sha256(secret);
  rec.member = info.id;
  rec.pool = pool;
  rec.created_ms = self->state.deps.clk->now_ms();
  self->request(self->state.deps.store, caf::infinite, put_enrollment_atom_v, rec)
    .then(
      [=](bool) mutable {
        remember_enrollment(self, rec);
        rp.deliver(enrollment_ticket{info, pool, secret});
      },
      [=](caf::error& e) mutable { rp.deliver(store_failed_error(self, e)); });
}

// Cluster: a pool this node now owns, restored from the store as a restart
// restores it (states, active member, grace), then its pool actor, then
// the DNS changes its previous owner journaled and did not finish.
void take_over(self_ptr self, const std::string& name, std::int64_t token, bool handed_off) {
  auto& st = self->state;
  auto rt_it = st.runtimes.find(name);
  if (rt_it == st.runtimes.end() || st.restoring.count(name) != 0) {
    return;
  }
  st.restoring.insert(name);
  auto rt = rt_it->second;
  std::vector<std::uint64_t> ids;
  for (const auto& m : rt->members) {
    ids.push_back(m->slot->id);
  }
  auto store = st.deps.store;
  auto fail = [=](caf::error& e) {
    self->state.restoring.erase(name);
    self->state.owned.erase(name);
    log::error("pool_takeover_failed", {{"pool", name}, {"error", self->system().render(e)}});
  };
  self->request(store, caf::infinite, restore_atom_v, ids)
    .then(
      [=](std::vector<member_state_record>& states) {
        self->request(store, caf::infinite, active_atom_v, name)
          .then(
            [=](std::int64_t active) {
              self->request(store, caf::infinite, journal_dns_atom_v, name)
                .then(
                  [=](std::vector<dns_change_record>& pending) {
                    auto& st = self->state;
                    st.restoring.erase(name);
                    if (st.owned.count(name) == 0 || st.pools.count(name) != 0 ||
                        rt->live_members.load() > 0) {
                      return; // given up meanwhile, or still stopping
                    }
                    auto now = st.deps.clk->now_ms();
                    auto grace = st.deps.takeover_grace_ms > 0
                                   ? st.deps.takeover_grace_ms
                                   : std::int64_t{rt->config.failover_delay_s} * 1000;
                    // Handed over with its final checkpoint: the states
                    // and last heartbeats are current, and the grace only
                    // covers the moment forwarding takes to follow.
                    if (handed_off) {
                      grace = std::min(grace, handoff_grace_ms);
                    }
                    std::unordered_map<member_id, member_state_record> by_id;
                    for (const auto& r : states) {
                      by_id[r.id] = r;
                    }
                    for (auto& m : rt->members) {
                      auto& slot = *m->slot;
                      auto state = member_state::pending;
                      std::int64_t since = now;
                      if (auto i = by_id.find(slot.id); i != by_id.end()) {
                        state = i->second.state;
                        since = i->second.state_since_ms;
                        auto seq = slot.last_seq.load();
                        slot.last_seq.store(std::max(seq, i->second.last_seq));
                        // Heard now as far as the fsm knows: the grace
                        // covers the time nobody was listening (after a
                        // handoff: when the old owner last heard it).
                        auto seen = state != member_state::pending &&
                                        state != member_state::down && !handed_off
                                      ? now
                                      : i->second.last_seen_ms;
                        slot.last_seen_ms.store(std::max(slot.last_seen_ms.load(), seen));
                      }
                      m->fsm = member_fsm(rt->detection, state, since, now + grace);
                      m->publish_state(now);
                    }
                    if (active != 0) {
                      rt->active = static_cast<member_id>(active);
                    }
                    log::info("pool_taken_over",
                              {{"pool", name},
                               {"token", std::to_string(token)},
                               {"restored_states", std::to_string(states.size())},
                               {"active", std::to_string(rt->active)},
                               {"grace_ms", std::to_string(grace)},
                               {"handed_off", handed_off ? "yes" : "no"},
                               {"dns_changes_resumed", std::to_string(pending.size())}});
                    spawn_pool(self, rt);
                    if (!pending.empty()) {
                      // Journaled with their ids: newest-wins and
                      // read-compare-write make them happen once.
                      self->request(st.deps.dns, caf::infinite, submit_atom_v,
                                    std::move(pending))
                        .then([](std::vector<dns_change_record>&) {},
                              [](caf::error&) {});
                    }
                  },
                  fail);
            },
            fail);
      },
      fail);
}

// Cluster: what this node heard of pools it does not own, to their owners.
void forward_heard(self_ptr self) {
  auto& st = self->state;
  auto now = st.deps.clk->now_ms();
  for (const auto& [name, rt] : st.runtimes) {
    if (st.owned.count(name) != 0) {
      st.forwarded_until.erase(name);
      continue;
    }
    auto owner = st.owner_of.find(name);
    if (owner == st.owner_of.end() || !owner->second) {
      // Between owners: what is heard meanwhile goes to the next one.
      continue;
    }
    auto& until = st.forwarded_until[name];
    auto since = until != 0 ? until : st.forwarded_until_ms;
    until = now;
    std::vector<std::uint64_t> packed; // id, seen, seq
    for (const auto& m : rt->members) {
      const auto& slot = *m->slot;
      auto seen = slot.last_seen_ms.load(std::memory_order_acquire);
      if (seen > since) {
        packed.push_back(slot.id);
        packed.push_back(static_cast<std::uint64_t>(seen));
        packed.push_back(slot.last_seq.load(std::memory_order_acquire));
      }
    }
    if (!packed.empty()) {
      self->send(owner->second, seen_atom_v, std::move(packed));
    }
  }
}

// Cluster: this node no longer owns the pool (given up or handed off): its
// actor stops, its members leave the fleet guard's count. False when it
// did not own it.
bool stop_owned(self_ptr self, const std::string& name) {
  auto& st = self->state;
  if (st.owned.erase(name) == 0) {
    return false;
  }
  self->send(st.deps.dns, disown_atom_v, name);
  if (auto p = st.pools.find(name); p != st.pools.end()) {
    self->send_exit(p->second, caf::exit_reason::user_shutdown);
    st.pools.erase(p);
  }
  auto& known = st.population[name];
  st.fleet->set_population(st.fleet->population() - known);
  known = 0;
  return true;
}

// A checkpoint of a pool's members, appended to rs.
void add_states(const pool_runtime& rt, std::vector<member_state_record>& rs) {
  for (const auto& m : rt.members) {
    const auto& s = *m->slot;
    rs.push_back(member_state_record{s.id, s.state.load(), s.state_since_ms.load(),
                                     s.last_seen_ms.load(), s.last_seq.load()});
  }
}

// Cluster: whether a member's slot still says what the store does (its
// key aside, which is swapped in place).
bool same_member(const member_slot& s, const member_config& mc) {
  if (s.hostname != mc.hostname || s.allowed_ips.size() != mc.allowed_ips.size()) {
    return false;
  }
  for (std::size_t i = 0; i < mc.allowed_ips.size(); ++i) {
    if (s.allowed_ips[i].to_string() != mc.allowed_ips[i]) {
      return false;
    }
  }
  return true;
}

// Cluster: the pools, members and member keys other nodes created, changed
// or removed since this node loaded them (the store's catalog moved). The
// pools this node owns are its own to change (their API calls come here);
// the others' runtimes serve forwarding (member ids, keys, allowed IPs) and
// a later takeover (settings), so they follow the store. Slots are removed
// before any is added: a member that moved between pools keeps its id.
void reconcile_catalog(self_ptr self, catalog_snapshot& cat) {
  auto& stored = cat.pools;
  auto& st = self->state;
  auto& reg = *st.deps.reg;
  auto now = st.deps.clk->now_ms();
  std::unordered_set<std::string> seen;
  std::vector<member_id> gone;
  std::vector<std::shared_ptr<member_slot>> added;
  for (auto& pc : stored) {
    seen.insert(pc.name);
    if (st.owned.count(pc.name) != 0 || st.restoring.count(pc.name) != 0 ||
        st.creating.count(pc.name) != 0) {
      continue;
    }
    std::shared_ptr<pool_runtime> old;
    if (auto it = st.runtimes.find(pc.name); it != st.runtimes.end()) {
      old = it->second;
    }
    auto rt = make_pool_runtime(*st.deps.engine, pc);
    std::unordered_map<member_id, std::shared_ptr<member_runtime>> kept;
    for (std::size_t i = 0; i < cat.accounts.size(); ++i) {
      if (cat.account_pools[i] == pc.name) {
        rt->accounts.put(cat.accounts[i]);
      }
    }
    for (const auto& p : cat.providers) {
      if (p.pool == pc.name) {
        rt->providers.push_back(without_secret(p));
      }
    }
    if (old) {
      rt->active = old->active;
      rt->dns_orphaned_by = old->dns_orphaned_by;
      for (auto& m : old->members) {
        kept[m->slot->id] = m;
      }
    }
    std::size_t changed = 0;
    for (const auto& mc : pc.members) {
      if (!mc.public_ipv4.empty()) {
        rt->public_ipv4[mc.id] = mc.public_ipv4;
      }
      if (!mc.public_ipv6.empty()) {
        rt->public_ipv6[mc.id] = mc.public_ipv6;
      }
      auto k = kept.find(mc.id);
      if (k != kept.end() && same_member(*k->second->slot, mc)) {
        if (k->second->slot->key() != mc.key) {
          k->second->slot->set_key(mc.key);
          ++changed;
        }
        rt->members.push_back(std::move(k->second));
        kept.erase(k);
        continue;
      }
      auto m = make_member(mc, member_fsm(rt->detection, member_state::pending, now, now));
      m.slot->pool = rt->shared_name();
      m.rt->publish_state(now);
      added.push_back(m.slot);
      rt->members.push_back(std::move(m.rt));
      ++changed;
    }
    for (const auto& [id, m] : kept) {
      gone.push_back(id);
      ++changed;
    }
    if (!old) {
      log::info("pool_learned", {{"pool", pc.name},
                                 {"members", std::to_string(rt->members.size())}});
    } else if (changed != 0) {
      log::info("pool_reloaded", {{"pool", pc.name}, {"members_changed", std::to_string(changed)}});
    }
    st.runtimes[pc.name] = std::move(rt);
  }
  for (auto it = st.runtimes.begin(); it != st.runtimes.end();) {
    const auto& [name, rt] = *it;
    if (seen.count(name) != 0 || !rt->config.from_api || st.owned.count(name) != 0 ||
        st.creating.count(name) != 0) {
      ++it;
      continue;
    }
    log::info("pool_forgotten", {{"pool", name}, {"reason", "deleted on another node"}});
    for (const auto& m : rt->members) {
      gone.push_back(m->slot->id);
    }
    st.owner_of.erase(name);
    st.population.erase(name);
    it = st.runtimes.erase(it);
  }
  for (auto id : gone) {
    reg.remove(id);
  }
  for (auto& s : added) {
    reg.add(std::move(s));
  }
}

// Cluster: a pool-level call for a pool another node owns goes to that
// node's supervisor, which answers it; nothing when this node answers it
// itself (it owns the pool, or there is no such pool here).
template <class T, class... Ts>
std::optional<caf::result<T>> to_owner(self_ptr self, const std::string& name, Ts... xs) {
  auto& st = self->state;
  if (!st.deps.cluster || st.owned.count(name) != 0 || st.runtimes.count(name) == 0) {
    return std::nullopt;
  }
  auto o = st.owner_of.find(name);
  if (o == st.owner_of.end() || !o->second) {
    return caf::result<T>(refuse("unavailable", "",
                                 "pool '" + name +
                                   "' is between owners (its lease is being taken over); "
                                   "try again in a few seconds"));
  }
  auto rp = self->make_response_promise<T>();
  self->request(o->second, std::chrono::seconds(10), std::move(xs)...)
    .then([rp](T& x) mutable { rp.deliver(std::move(x)); },
          [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return caf::result<T>(rp);
}

// Cluster: an enrollment this node does not hold. Found in the store, it
// is taken up here when this node owns its pool, else handed to the owner
// (once: a forwarded one is not sent on again).
caf::result<enrollment_grant> enroll_elsewhere(self_ptr self, const std::string& hash,
                                               const std::string& hostname,
                                               const std::string& secret,
                                               const std::string& source, bool forwarded) {
  auto rp = self->make_response_promise<enrollment_grant>();
  auto invalid = [] {
    return refuse("enrollment_invalid", "secret", "unknown or already used enrollment secret");
  };
  self->request(self->state.deps.store, caf::infinite, enrollments_atom_v)
    .then(
      [=](std::vector<enrollment_record>& all) mutable {
        auto& st = self->state;
        auto e = std::find_if(all.begin(), all.end(), [&](const enrollment_record& r) {
          return secrets::to_hex(r.secret_sha256) == hash;
        });
        if (e == all.end()) {
          rp.deliver(invalid());
          return;
        }
        auto deliver = [rp](enrollment_grant& g) mutable { rp.deliver(std::move(g)); };
        auto fail = [rp](caf::error& err) mutable { rp.deliver(std::move(err)); };
        if (st.owned.count(e->pool) != 0) {
          remember_enrollment(self, *e);
          self->request(caf::actor_cast<caf::actor>(self), caf::infinite, enroll_atom_v, hostname, secret, source, true)
            .then(deliver, fail);
          return;
        }
        auto o = st.owner_of.find(e->pool);
        if (forwarded || o == st.owner_of.end() || !o->second) {
          rp.deliver(refuse("unavailable", "", "the pool of this enrollment is between owners; "
                                               "try again in a few seconds"));
          return;
        }
        self->request(o->second, std::chrono::seconds(10), enroll_atom_v, hostname, secret,
                      source, true)
          .then(deliver, fail);
      },
      [=](caf::error& err) mutable { rp.deliver(store_failed_error(self, err)); });
  return rp;
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
    // Only if it is still this actor: a pool deleted and created again
    // under the same id has a new one by the time this message comes.
    if (auto p = st.pools.find(name);
        p != st.pools.end() && p->second.address() == msg.source) {
      st.pools.erase(p);
    }
    if (msg.reason == caf::exit_reason::normal ||
        msg.reason == caf::exit_reason::user_shutdown ||
        (st.deps.cluster && st.owned.count(name) == 0)) {
      return; // stopped, or handed to another node
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
    if (!st.deps.cluster) {
      spawn_pool(self, rt);
    }
  }
  if (st.deps.cluster) {
    st.forwarded_until_ms = st.deps.clk->now_ms();
    self->delayed_send(self, std::chrono::milliseconds(st.deps.forward_interval_ms),
                       forward_atom_v);
  }
  for (const auto& e : st.deps.enrollments) {
    remember_enrollment(self, e);
  }
  st.deps.enrollments.clear();
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
        // Cluster: the owner's pool actor, through its node's supervisor.
        if (st.deps.cluster && st.owned.count(name) == 0) {
          if (auto o = st.owner_of.find(name); o != st.owner_of.end() && o->second) {
            auto rp = self->make_response_promise<caf::actor>();
            self->request(o->second, std::chrono::seconds(5), pool_atom_v, name)
              .then([rp](caf::actor& a) mutable { rp.deliver(std::move(a)); },
                    [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
            return rp;
          }
          if (st.runtimes.count(name) != 0) {
            return refuse("unavailable", "", "pool '" + name +
                                               "' is between owners (its lease is being taken "
                                               "over); try again in a few seconds");
          }
        }
        return no_pool(name);
      }
      return i->second;
    },
    // -- cluster -----------------------------------------------------------
    [=](own_atom, const std::string& name, std::int64_t token, bool handed_off) {
      auto& st = self->state;
      st.owned[name] = token;
      st.owner_of.erase(name);
      self->send(st.deps.dns, own_atom_v, name);
      take_over(self, name, token, handed_off);
    },
    // Fair share: stops the pool and stores its final checkpoint; answered
    // once the store has taken it (its mailbox is in order), so the lease
    // is released only then.
    [=](handoff_atom, const std::string& name) -> caf::result<bool> {
      auto& st = self->state;
      if (!stop_owned(self, name)) {
        return false;
      }
      log::info("pool_handed_off", {{"pool", name}});
      auto rt = st.runtimes.find(name);
      if (rt == st.runtimes.end()) {
        return false;
      }
      std::vector<member_state_record> rs;
      add_states(*rt->second, rs);
      self->send(st.deps.store, save_atom_v, std::move(rs));
      auto rp = self->make_response_promise<bool>();
      self->request(st.deps.store, caf::infinite, active_atom_v, name)
        .then([rp](std::int64_t) mutable { rp.deliver(true); },
              [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    // The cluster actor saw the store's catalog move: reload it; the
    // answer is every pool this node now knows, for the leases.
    [=](catalog_atom) -> caf::result<std::vector<std::string>> {
      auto rp = self->make_response_promise<std::vector<std::string>>();
      self->request(self->state.deps.store, caf::infinite, catalog_atom_v)
        .then(
          [=](catalog_snapshot& cat) mutable {
            // The API's DNS credentials first: a pool taken over later
            // finds its executors.
            self->send(self->state.deps.dns, catalog_atom_v, cat.providers);
            reconcile_catalog(self, cat);
            std::vector<std::string> names;
            for (const auto& [name, rt] : self->state.runtimes) {
              names.push_back(name);
            }
            std::sort(names.begin(), names.end());
            rp.deliver(std::move(names));
          },
          [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    // The leases the cluster actor confirmed: until when each holds.
    [=](lease_atom, const std::vector<std::string>& names,
        const std::vector<std::int64_t>& until_ms) {
      auto& st = self->state;
      for (std::size_t i = 0; i < names.size() && i < until_ms.size(); ++i) {
        if (auto rt = st.runtimes.find(names[i]); rt != st.runtimes.end()) {
          rt->second->lease_until_ms.store(until_ms[i], std::memory_order_release);
        }
      }
    },
    [=](disown_atom, const std::string& name) {
      if (stop_owned(self, name)) {
        log::warn("pool_given_up", {{"pool", name}});
      }
    },
    [=](owners_atom, const std::string& name, caf::actor owner) {
      auto& st = self->state;
      if (st.owned.count(name) == 0) {
        st.owner_of[name] = std::move(owner);
      }
    },
    [=](seen_atom, const std::vector<std::uint64_t>& packed) {
      auto& st = self->state;
      for (std::size_t i = 0; i + 2 < packed.size(); i += 3) {
        st.deps.reg->heard_elsewhere(packed[i], static_cast<std::int64_t>(packed[i + 1]),
                                     packed[i + 2]);
      }
    },
    [=](forward_atom) {
      forward_heard(self);
      self->delayed_send(self,
                         std::chrono::milliseconds(self->state.deps.forward_interval_ms),
                         forward_atom_v);
    },
    // -- admin API ---------------------------------------------------------
    // Liveness (/healthz, /readyz): answered here, never waits on a peer.
    [=](caf::get_atom) -> bool { return true; },
    [=](pools_atom) -> caf::result<std::vector<caf::actor>> {
      auto& st = self->state;
      std::vector<caf::actor> out;
      for (const auto& p : st.pools) {
        out.push_back(p.second);
      }
      if (!st.deps.cluster) {
        return out;
      }
      // Cluster: the other nodes' pools too, through their owners (a pool
      // between owners, or whose owner does not answer, is left out).
      std::vector<std::pair<std::string, caf::actor>> remote;
      for (const auto& [name, rt] : st.runtimes) {
        if (st.owned.count(name) == 0) {
          if (auto o = st.owner_of.find(name); o != st.owner_of.end() && o->second) {
            remote.emplace_back(name, o->second);
          }
        }
      }
      if (remote.empty()) {
        return out;
      }
      struct gather {
        std::vector<caf::actor> pools;
        std::size_t left = 0;
      };
      auto g = std::make_shared<gather>();
      g->pools = std::move(out);
      g->left = remote.size();
      auto rp = self->make_response_promise<std::vector<caf::actor>>();
      auto one_done = [g, rp]() mutable {
        if (--g->left == 0) {
          rp.deliver(std::move(g->pools));
        }
      };
      for (const auto& [name, owner] : remote) {
        self->request(owner, std::chrono::seconds(2), pool_atom_v, name)
          .then(
            [g, one_done](caf::actor& a) mutable {
              g->pools.push_back(std::move(a));
              one_done();
            },
            [one_done](caf::error&) mutable { one_done(); });
      }
      return rp;
    },
    [=](create_pool_atom, pool_config pc) -> caf::result<pool_summary> {
      auto& st = self->state;
      if (st.runtimes.count(pc.name) != 0 || st.creating.count(pc.name) != 0) {
        return refuse("pool_exists", "id", "a pool with id '" + pc.name +
                                             "' exists already");
      }
      pc.from_api = true;
      pc.members.clear();
      st.creating.insert(pc.name);
      auto rp = self->make_response_promise();
      self->request(st.deps.store, caf::infinite, create_pool_atom_v, pc)
        .then(
          [=](bool) mutable {
            auto& st = self->state;
            st.creating.erase(pc.name);
            auto rt = make_pool_runtime(*st.deps.engine, pc);
            st.runtimes[pc.name] = rt;
            if (st.deps.cluster) {
              // Run by the node that takes its lease (any node, once the
              // cluster actors see the store's catalog move).
              log::info("pool_created", {{"pool", pc.name},
                                         {"preset", to_string(pc.preset)},
                                         {"owner", "the node that takes its lease"}});
              pool_summary s;
              s.id = pc.name;
              s.name = pc.label.empty() ? pc.name : pc.label;
              s.preset = to_string(pc.preset);
              s.from_api = true;
              s.failover_delay_s = pc.failover_delay_s;
              s.failover_hostname = pc.failover_hostname;
              rp.deliver(std::move(s));
              return;
            }
            spawn_pool(self, rt);
            log::info("pool_created", {{"pool", pc.name},
                                       {"preset", to_string(pc.preset)}});
            log_activity(self, pc.name, activity_kind::pool_created,
                         "pool '" + (pc.label.empty() ? pc.name : pc.label) +
                           "' created with preset " + to_string(pc.preset));
            rp.delegate(st.pools[pc.name], summary_atom_v);
          },
          [=](caf::error& e) mutable {
            self->state.creating.erase(pc.name);
            rp.deliver(store_failed_error(self, e));
          });
      return rp;
    },
    [=](delete_pool_atom, const std::string& name,
        bool force) -> caf::result<bool> {
      if (auto r = to_owner<bool>(self, name, delete_pool_atom_v, name, force)) {
        return std::move(*r);
      }
      auto found = api_pool(self, name, "; remove it there and restart balctld");
      if (!found) {
        return std::move(found.error());
      }
      auto pool = *found;
      auto rp = self->make_response_promise();
      self->request(pool, caf::infinite, delete_pool_atom_v, force)
        .then(
          [=](bool) mutable {
            auto& st = self->state;
            // Gone from every map now, not when its down message comes: a
            // request in between must find no pool.
            st.runtimes.erase(name);
            st.population.erase(name);
            st.pool_by_addr.erase(pool.address());
            if (auto p = st.pools.find(name);
                p != st.pools.end() && p->second == pool) {
              st.pools.erase(p);
            }
            std::vector<member_id> gone;
            for (const auto& e : st.enrollments) {
              if (e.second.pool == name) {
                gone.push_back(e.second.member);
              }
            }
            for (auto m : gone) {
              forget_enrollment(self, m);
            }
            rp.deliver(true);
          },
          [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    [=](add_member_atom, const std::string& name,
        const new_member& nm) -> caf::result<enrollment_ticket> {
      if (auto r = to_owner<enrollment_ticket>(self, name, add_member_atom_v, name, nm)) {
        return std::move(*r);
      }
      auto& st = self->state;
      auto i = st.pools.find(name);
      if (i == st.pools.end()) {
        return no_pool(name);
      }
      auto pool = i->second;
      auto rp = self->make_response_promise();
      self->request(st.deps.store, caf::infinite, allocate_id_atom_v, member_id{1})
        .then(
          [=](member_id id) mutable {
            self->request(pool, caf::infinite, add_member_atom_v, id, nm)
              .then(
                [=](member_info& info) mutable {
                  open_enrollment(self, std::move(info), name, rp);
                },
                [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
          },
          [=](caf::error& e) mutable { rp.deliver(store_failed_error(self, e)); });
      return rp;
    },
    [=](reenrol_atom, const std::string& name,
        member_id m) -> caf::result<enrollment_ticket> {
      if (auto r = to_owner<enrollment_ticket>(self, name, reenrol_atom_v, name, m)) {
        return std::move(*r);
      }
      auto found = api_pool(self, name, ", which holds its members' keys");
      if (!found) {
        return std::move(found.error());
      }
      auto rp = self->make_response_promise();
      self->request(*found, caf::infinite, member_atom_v, m)
        .then(
          [=](member_info& info) mutable {
            open_enrollment(self, std::move(info), name, rp);
          },
          [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    [=](remove_member_atom, const std::string& name, member_id m,
        bool force) -> caf::result<bool> {
      if (auto r = to_owner<bool>(self, name, remove_member_atom_v, name, m, force)) {
        return std::move(*r);
      }
      auto& st = self->state;
      auto i = st.pools.find(name);
      if (i == st.pools.end()) {
        return no_pool(name);
      }
      auto rp = self->make_response_promise();
      self->request(i->second, caf::infinite, remove_member_atom_v, m,
                    force)
        .then(
          [=](bool) mutable {
            forget_enrollment(self, m);
            forget_grants_of(self, m);
            rp.deliver(true);
          },
          [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    [=](enroll_atom, const std::string& hostname, const std::string& secret,
        const std::string& source) -> caf::result<enrollment_grant> {
      auto rp = self->make_response_promise<enrollment_grant>();
      self->request(caf::actor_cast<caf::actor>(self), caf::infinite, enroll_atom_v, hostname, secret, source, false)
        .then([rp](enrollment_grant& g) mutable { rp.deliver(std::move(g)); },
              [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    // forwarded: from another node of the cluster (not sent on again).
    [=](enroll_atom, const std::string& hostname, const std::string& secret,
        const std::string& source, bool forwarded) -> caf::result<enrollment_grant> {
      auto& st = self->state;
      auto hash = secrets::to_hex(secrets::sha256(secret));
      auto now = st.deps.clk->now_ms();
      auto e = st.enrollments.find(hash);
      const recent_grant* again = nullptr;
      if (e == st.enrollments.end()) {
        // Asked again while the first request is still being stored: the
        // same answer, when it comes.
        if (auto w = st.enrolling.find(hash);
            w != st.enrolling.end() && w->second.source == source) {
          auto rp = self->make_response_promise();
          w->second.waiting.push_back(rp);
          return rp;
        }
        auto g = st.recent_grants.find(hash);
        if (g == st.recent_grants.end() || g->second.until_ms <= now ||
            g->second.source != source) {
          if (st.deps.cluster) {
            // Opened on another node, or before this node took the pool
            // over: the store has it, and says whose pool it is.
            return enroll_elsewhere(self, hash, hostname, secret, source, forwarded);
          }
          return refuse("enrollment_invalid", "secret",
                        "unknown or already used enrollment secret");
        }
        again = &g->second;
      }
      auto member = again ? again->grant.member : e->second.member;
      auto slot = st.deps.reg->find(member);
      if (!slot) {
        forget_enrollment(self, member);
        return refuse("enrollment_invalid", "secret",
                      "the member of this enrollment was removed");
      }
      if (slot->hostname != hostname) {
        return refuse("enrollment_hostname_mismatch", "hostname",
                      "hostname '" + hostname + "' is not the hostname this "
                      "enrollment was created for");
      }
      ip_address src;
      bool allowed = ip_address::parse(source, src) && slot->allows(src);
      if (!allowed) {
        return refuse("enrollment_source_not_allowed", "",
                      "source address " + source + " is not one of this "
                      "member's allowed source IPs");
      }
      if (again) {
        // The agent asks again with the secret it just used (its answer
        // was lost on the way): the same grant, never a second key.
        log::info("member_enrolled_again", {{"pool", again->grant.pool},
                                            {"member", std::to_string(member)},
                                            {"source", source}});
        return again->grant;
      }
      auto rec = e->second;
      // Used from this moment: a second agent presenting the same secret
      // while the store writes finds nothing.
      forget_enrollment(self, rec.member);
      auto key = secrets::random_key();
      auto rp = self->make_response_promise();
      st.enrolling[hash].source = source;
      self->request(st.deps.store, caf::infinite, complete_enrollment_atom_v,
                    rec.member, key)
        .then(
          [=](bool) mutable {
            auto& st = self->state;
            // The new key verifies from now on; the old one no longer.
            slot->set_key(key);
            if (auto p = st.pools.find(rec.pool); p != st.pools.end()) {
              self->send(p->second, enrolled_atom_v, rec.member, source);
            }
            log::info("member_enrolled", {{"pool", rec.pool},
                                          {"member", std::to_string(rec.member)},
                                          {"source", source}});
            enrollment_grant g{rec.member, rec.pool,
                               secrets::to_hex(key.data(), key.size())};
            remember_grant(self, hash, g, source);
            auto waiting = std::move(st.enrolling[hash].waiting);
            st.enrolling.erase(hash);
            for (auto& w : waiting) {
              w.deliver(g);
            }
            rp.deliver(std::move(g));
          },
          [=](caf::error& err) mutable {
            auto& st = self->state;
            // Not used after all, unless a re-enrolment replaced it meanwhile.
            if (st.enrollment_of.count(rec.member) == 0) {
              remember_enrollment(self, rec);
            }
            auto waiting = std::move(st.enrolling[hash].waiting);
            st.enrolling.erase(hash);
            auto why = store_failed_error(self, err);
            for (auto& w : waiting) {
              w.deliver(why);
            }
            rp.deliver(why);
          });
      return rp;
    },
    [=](checkpoint_atom) {
      auto& st = self->state;
      if (!st.deps.cluster) {
        self->send(st.deps.store, save_atom_v, snapshot_member_states(*st.deps.reg));
      } else {
        // Only the pools this node owns, while their leases are known to
        // hold: the others' owners write theirs (a node waking from a
        // pause must not write its stale view over the new owner's).
        std::vector<member_state_record> rs;
        auto now = st.deps.clk->now_ms();
        for (const auto& [name, token] : st.owned) {
          auto rt = st.runtimes.find(name);
          if (rt == st.runtimes.end() || st.pools.count(name) == 0 ||
              rt->second->lease_until_ms.load(std::memory_order_acquire) < now) {
            continue;
          }
          add_states(*rt->second, rs);
        }
        self->send(st.deps.store, save_atom_v, std::move(rs));
      }
      self->delayed_send(self,
                         std::chrono::milliseconds(st.deps.checkpoint_interval_ms),
                         checkpoint_atom_v);
    },
  };
}

} // namespace balctl
