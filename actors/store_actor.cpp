#include "actors/store_actor.hpp"

#include <deque>
#include <functional>
#include <map>
#include <unordered_map>

#include "engine/log.hpp"

namespace balctl {

namespace {

/// Provisional ids handed out while the store is unavailable (negative, so
/// never a real id), and the real ids they got when written (0 = not yet,
/// or dropped). The engine treats a negative change id as unjournaled for
/// newest-wins ordering (engine/dns_queue), which is what it is meanwhile.
struct id_map {
  std::int64_t next = 0; // the last provisional id handed out
  std::unordered_map<std::int64_t, std::int64_t> real;

  std::int64_t provisional() {
    --next;
    real[next] = 0;
    return next;
  }
  /// The id to write under; nullopt: a provisional id without a row (not
  /// written, or its write dropped), so there is nothing to mark.
  std::optional<std::int64_t> resolve(std::int64_t id) const {
    if (id >= 0) {
      return id;
    }
    auto it = real.find(id);
    if (it == real.end() || it->second == 0) {
      return std::nullopt;
    }
    return it->second;
  }
  void settled(std::int64_t id) {
    if (id < 0) {
      real.erase(id);
    }
  }
};

struct store_state;
std::vector<dns_change_record> with_decisions(const store_state& s,
                                              std::vector<dns_change_record> cs);

struct owed_write {
  const char* op;
  std::function<void(store&)> apply;
};

struct activity_batch {
  std::vector<activity_record> rs;
  std::uint64_t keep = 0;
};

struct store_state {
  std::shared_ptr<store> st;
  engine_metrics* metrics = nullptr;
  store_actor_options o;

  bool degraded = false;
  bool retry_armed = false;
  std::string why; // the store's last refusal while degraded
  std::deque<owed_write> owed;
  std::deque<activity_batch> owed_activity;
  std::size_t owed_activity_lines = 0;
  std::unordered_map<member_id, member_state_record> owed_states; // newest only
  std::map<std::string, member_id> owed_active;                   // newest only
  std::uint64_t dropped = 0;

  id_map decisions;
  id_map dns;

  std::size_t owed_count() const {
    return owed.size() + owed_activity_lines + owed_states.size() + owed_active.size();
  }
  void publish() {
    metrics->store_degraded.store(degraded ? 1 : 0, std::memory_order_relaxed);
    metrics->store_owed.store(owed_count(), std::memory_order_relaxed);
  }
};

constexpr std::int64_t health_tick = 1; // deadline_atom's argument; 0 = retry

// Journal entries written late carry their decision's real id.
std::vector<dns_change_record> with_decisions(const store_state& s,
                                              std::vector<dns_change_record> cs) {
  for (auto& c : cs) {
    if (c.decision < 0) {
      c.decision = s.decisions.resolve(c.decision).value_or(0);
    }
  }
  return cs;
}

void failed(store_state& s, const char* op, const std::exception& e) {
  s.metrics->store_errors.fetch_add(1);
  log::error("store_failed", {{"operation", op}, {"error", e.what()}});
}

// Another node owns the pool now: refused, never owed.
caf::error fenced(store_state& s, const char* op, const store_fenced& e) {
  s.metrics->store_fenced.fetch_add(1);
  log::warn("store_fenced", {{"operation", op}, {"error", e.what()}});
  return refuse("fenced", "", e.what());
}

void enter_degraded(store_state& s, const char* op, const std::exception& e) {
  s.metrics->store_errors.fetch_add(1);
  s.why = e.what();
  if (!s.degraded) {
    s.degraded = true;
    log::error("store_degraded", {{"operation", op},
                                  {"error", e.what()},
                                  {"max_owed", std::to_string(s.o.max_owed)}});
  }
}

void drop_one(store_state& s) {
  if (!s.owed_activity.empty()) {
    auto& b = s.owed_activity.front();
    s.owed_activity_lines -= b.rs.size();
    s.dropped += b.rs.size();
    s.metrics->store_owed_dropped.fetch_add(b.rs.size());
    s.owed_activity.pop_front();
  } else if (!s.owed.empty()) {
    log::error("store_owed_dropped", {{"operation", s.owed.front().op},
                                      {"max_owed", std::to_string(s.o.max_owed)}});
    s.owed.pop_front();
    ++s.dropped;
    s.metrics->store_owed_dropped.fetch_add(1);
  }
}

void trim(store_state& s) {
  while (s.owed.size() + s.owed_activity_lines > s.o.max_owed &&
         (!s.owed.empty() || !s.owed_activity.empty())) {
    drop_one(s);
  }
}

// Writes what is owed, oldest first, while the store takes it, at most
// budget items a call (a long outage's backlog does not hold a failover's
// write for long): the owed writes, then active members, checkpoints and
// activity. An item the store refuses for itself is logged and dropped;
// one it cannot take now stops the replay where it is.
enum class replayed { all, more, unavailable };

template <class F>
void replay_item(store_state& s, const char* op, F f) {
  try {
    f();
  } catch (const store_unavailable&) {
    throw;
  } catch (const std::exception& e) {
    failed(s, op, e); // no use trying it again
  }
}

replayed replay(store_state& s, std::size_t budget = 1000) {
  if (!s.degraded) {
    return replayed::all;
  }
  if (!s.st->available()) {
    return replayed::unavailable;
  }
  try {
    for (; !s.owed.empty(); s.owed.pop_front()) {
      if (budget-- == 0) {
        s.publish();
        return replayed::more;
      }
      auto& w = s.owed.front();
      replay_item(s, w.op, [&] { w.apply(*s.st); });
    }
    for (auto it = s.owed_active.begin(); it != s.owed_active.end();
         it = s.owed_active.erase(it)) {
      replay_item(s, "set_active_member",
                  [&] { s.st->set_active_member(it->first, it->second); });
    }
    if (!s.owed_states.empty()) {
      std::vector<member_state_record> rs;
      rs.reserve(s.owed_states.size());
      for (const auto& [id, r] : s.owed_states) {
        rs.push_back(r);
      }
      replay_item(s, "save_member_states", [&] { s.st->save_member_states(rs); });
      s.owed_states.clear();
    }
    for (; !s.owed_activity.empty(); s.owed_activity.pop_front()) {
      auto& b = s.owed_activity.front();
      replay_item(s, "append_activity", [&] { s.st->append_activity(b.rs, b.keep); });
      s.owed_activity_lines -= b.rs.size();
    }
  } catch (const store_unavailable& e) {
    s.metrics->store_errors.fetch_add(1);
    s.why = e.what();
    s.publish();
    return replayed::unavailable;
  }
  s.degraded = false;
  log::info("store_recovered", {{"dropped", std::to_string(s.dropped)}});
  s.dropped = 0;
  s.publish();
  return replayed::all;
}

void arm_retry(caf::event_based_actor* self, store_state& s) {
  if (s.retry_armed) {
    return;
  }
  s.retry_armed = true;
  self->delayed_send(self, std::chrono::milliseconds(s.o.retry_ms), deadline_atom_v,
                     std::int64_t{0});
}

// A write the engine may owe, tried now when nothing is owed before it:
// done, to be owed (the store is unavailable), or refused (*err says why).
enum class attempt { done, owe, refused };

template <class F>
attempt attempt_now(store_state& s, const char* op, F f, caf::error* err = nullptr) {
  if (s.degraded) {
    replay(s);
  }
  if (s.degraded) {
    return attempt::owe;
  }
  try {
    f();
    return attempt::done;
  } catch (const store_unavailable& e) {
    enter_degraded(s, op, e);
    return attempt::owe;
  } catch (const store_fenced& e) {
    auto why = fenced(s, op, e);
    if (err != nullptr) {
      *err = std::move(why);
    }
  } catch (const std::exception& e) {
    failed(s, op, e);
    if (err != nullptr) {
      *err = caf::make_error(caf::sec::runtime_error, e.what());
    }
  }
  return attempt::refused;
}

// Keeps apply for the replay, in order.
void push_owed(caf::event_based_actor* self, store_state& s, const char* op,
               std::function<void(store&)> apply) {
  s.owed.push_back({op, std::move(apply)});
  trim(s);
  s.publish();
  arm_retry(self, s);
}

// Made now, or kept in order when the store is unavailable.
void owe(caf::event_based_actor* self, store_state& s, const char* op,
         std::function<void(store&)> apply) {
  if (attempt_now(s, op, [&] { apply(*s.st); }) == attempt::owe) {
    push_owed(self, s, op, std::move(apply));
  }
}

// Journal entries (or an account cut) the engine acts on at once: their
// ids now, real or provisional (mapped when the owed write is made).
template <class Write>
caf::result<std::vector<std::int64_t>> journal(caf::event_based_actor* self, store_state& s,
                                               const char* op, std::size_t n, Write write) {
  std::vector<std::int64_t> ids;
  caf::error err;
  switch (attempt_now(s, op, [&] { ids = write(*s.st, s); }, &err)) {
    case attempt::done:
      return ids;
    case attempt::refused:
      return err;
    case attempt::owe:
      break;
  }
  for (std::size_t i = 0; i < n; ++i) {
    ids.push_back(s.dns.provisional());
  }
  // The state outlives its owed writes (they are in it): a plain pointer.
  push_owed(self, s, op, [ss = &s, ids, write](store& st) {
    auto real = write(st, *ss);
    for (std::size_t i = 0; i < real.size() && i < ids.size(); ++i) {
      ss->dns.real[ids[i]] = real[i];
    }
  });
  return ids;
}

// A call answering an operator: never owed. Whatever is owed goes first
// (an API write must not overtake the engine's own).
template <class F>
auto now(store_state& s, const char* op, F f) -> caf::result<decltype(f())> {
  try {
    if (replay(s) != replayed::all) {
      throw store_unavailable("the store is unavailable (" + s.why +
                              "); the engine's own writes are owed until it is back");
    }
    return f();
  } catch (const std::exception& e) {
    failed(s, op, e);
    return caf::make_error(caf::sec::runtime_error, e.what());
  }
}

} // namespace

caf::behavior store_actor(caf::event_based_actor* self, std::shared_ptr<store> st,
                          engine_metrics* metrics, store_actor_options o) {
  self->attach_functor([sys = &self->system()](const caf::error& reason) {
    if (reason && reason != caf::exit_reason::user_shutdown &&
        reason != caf::exit_reason::normal) {
      log::error("store_actor_stopped", {{"reason", sys->render(reason)}});
    }
  });
  auto s = std::make_shared<store_state>();
  s->st = std::move(st);
  s->metrics = metrics;
  s->o = o;
  s->publish();
  if (s->o.health_ms > 0) {
    self->delayed_send(self, std::chrono::milliseconds(s->o.health_ms), deadline_atom_v,
                       health_tick);
  }
  return {
    // An ordinary message, so every write queued before it is done first;
    // what is still owed then is lost with the process (logged).
    [=](caf::close_atom) {
      auto r = replay(*s);
      while (r == replayed::more) {
        r = replay(*s);
      }
      if (r != replayed::all) {
        log::error("store_owed_lost", {{"writes", std::to_string(s->owed_count())}});
      }
      self->quit();
    },
    [=](deadline_atom, std::int64_t what) {
      if (what == health_tick) {
        // A store that went away while nothing was written is degraded
        // too: /readyz says so before the first write fails.
        if (!s->degraded && !s->st->available()) {
          s->degraded = true;
          s->why = "not connected";
          log::error("store_degraded", {{"operation", "health"}, {"error", s->why}});
          s->publish();
          arm_retry(self, *s);
        }
        self->delayed_send(self, std::chrono::milliseconds(s->o.health_ms), deadline_atom_v,
                           health_tick);
        return;
      }
      s->retry_armed = false;
      switch (replay(*s)) {
        case replayed::all:
          break;
        case replayed::more: // the rest right after what is queued now
          s->retry_armed = true;
          self->send(self, deadline_atom_v, std::int64_t{0});
          break;
        case replayed::unavailable:
          arm_retry(self, *s);
          break;
      }
    },
    [=](record_atom, const pool_decision& d) -> caf::result<std::int64_t> {
      std::int64_t id = 0;
      caf::error err;
      switch (attempt_now(*s, "record_decision", [&] { id = s->st->record_decision(d); },
                          &err)) {
        case attempt::done:
          return id;
        case attempt::refused:
          return err;
        case attempt::owe:
          break;
      }
      id = s->decisions.provisional();
      push_owed(self, *s, "record_decision", [ss = s.get(), d, id](store& st) {
        ss->decisions.real[id] = st.record_decision(d);
      });
      return id;
    },
    [=](fence_atom, const std::string& pool, std::int64_t token) {
      s->st->fence(pool, token);
    },
    [=](mark_atom, std::int64_t id, const std::string& status) {
      owe(self, *s, "mark_decision", [ss = s.get(), id, status](store& st) {
        if (auto real = ss->decisions.resolve(id)) {
          st.mark_decision(*real, status);
        }
        if (status != "pending") {
          ss->decisions.settled(id);
        }
      });
    },
    [=](save_atom, const std::vector<member_state_record>& rs) {
      if (attempt_now(*s, "save_member_states", [&] { s->st->save_member_states(rs); }) !=
          attempt::owe) {
        return;
      }
      for (const auto& r : rs) {
        s->owed_states[r.id] = r; // a newer checkpoint supersedes
      }
      s->publish();
      arm_retry(self, *s);
    },
    [=](active_atom, const std::string& pool, member_id m) {
      if (attempt_now(*s, "set_active_member", [&] { s->st->set_active_member(pool, m); }) !=
          attempt::owe) {
        return;
      }
      s->owed_active[pool] = m;
      s->publish();
      arm_retry(self, *s);
    },
    // -- the DNS journal ---------------------------------------------------
    [=](journal_dns_atom, const std::vector<dns_change_record>& cs)
      -> caf::result<std::vector<std::int64_t>> {
      return journal(self, *s, "journal_dns_changes", cs.size(),
                     [cs](store& st, const store_state& ss) {
                       return st.journal_dns_changes(with_decisions(ss, cs));
                     });
    },
    [=](mark_dns_atom, const std::vector<std::int64_t>& ids, const std::string& status,
        const std::string& error) {
      owe(self, *s, "mark_dns_changes", [ss = s.get(), ids, status, error](store& st) {
        std::vector<std::int64_t> real;
        for (auto id : ids) {
          if (auto r = ss->dns.resolve(id)) {
            real.push_back(*r);
          }
        }
        st.mark_dns_changes(real, status, error);
        if (status != "pending") {
          for (auto id : ids) {
            ss->dns.settled(id);
          }
        }
      });
    },
    // -- protected accounts and API DNS providers --------------------------
    // A cut is the engine's own (a failover moving accounts): owed, with
    // provisional ids for its changes, like the journal.
    [=](cut_atom, const std::string& pool, const std::vector<protected_account>& as,
        const std::vector<dns_change_record>& cs) -> caf::result<std::vector<std::int64_t>> {
      return journal(self, *s, "journal_account_cuts", cs.size(),
                     [pool, as, cs](store& st, const store_state& ss) {
                       return st.journal_account_cuts(pool, as, with_decisions(ss, cs));
                     });
    },
    [=](put_account_atom, const std::string& pool,
        const std::vector<protected_account>& as) -> caf::result<bool> {
      return now(*s, "put_accounts", [&] {
        s->st->put_accounts(pool, as);
        return true;
      });
    },
    // -- Protection's records (jobs, replication runs) ---------------------
    [=](put_records_atom, const std::vector<stored_record>& rs) -> caf::result<bool> {
      return now(*s, "put_records", [&] {
        s->st->put_records(rs);
        return true;
      });
    },
    [=](delete_records_atom, const std::string& kind, const std::string& pool,
        const std::vector<std::string>& ids) -> caf::result<bool> {
      return now(*s, "delete_records", [&] {
        s->st->delete_records(kind, pool, ids);
        return true;
      });
    },
    [=](records_atom, const std::string& kind,
        const std::string& pool) -> caf::result<std::vector<stored_record>> {
      return now(*s, "load_records", [&] { return s->st->load_records(kind, pool); });
    },
    [=](delete_account_atom, const std::string& pool, const std::string& id)
      -> caf::result<bool> {
      return now(*s, "delete_account", [&] {
        s->st->delete_account(pool, id);
        return true;
      });
    },
    [=](put_provider_atom, const std::vector<dns_provider_config>& ps) -> caf::result<bool> {
      return now(*s, "put_dns_providers", [&] {
        s->st->put_dns_providers(ps);
        return true;
      });
    },
    [=](delete_provider_atom, const std::string& id) -> caf::result<bool> {
      return now(*s, "delete_dns_provider", [&] {
        s->st->delete_dns_provider(id);
        return true;
      });
    },
    // -- admin API ---------------------------------------------------------
    [=](create_pool_atom, const pool_config& p) -> caf::result<bool> {
      return now(*s, "put_pool", [&] {
        s->st->put_pool(p);
        return true;
      });
    },
    // Requested (the caller answers its client when the store has it).
    [=](update_pool_atom, const pool_config& p) -> caf::result<bool> {
      return now(*s, "update_pool", [&] {
        s->st->update_pool(p);
        return true;
      });
    },
    // Sent by the pool as it stops (the operator was answered already):
    // owed, after the pool's own writes.
    [=](delete_pool_atom, const std::string& pool) {
      // What is owed for the pool and replayed after the owed writes must
      // not bring it back.
      s->owed_active.erase(pool);
      for (auto it = s->owed_activity.begin(); it != s->owed_activity.end();) {
        if (!it->rs.empty() && it->rs.front().pool == pool) {
          s->owed_activity_lines -= it->rs.size();
          it = s->owed_activity.erase(it);
        } else {
          ++it;
        }
      }
      owe(self, *s, "delete_pool", [pool](store& st) { st.delete_pool(pool); });
    },
    [=](add_member_atom, const std::string& pool,
        const member_config& m) -> caf::result<bool> {
      return now(*s, "put_member", [&] {
        s->st->put_member(pool, m);
        return true;
      });
    },
    [=](remove_member_atom, member_id m) -> caf::result<bool> {
      return now(*s, "delete_member", [&] {
        s->st->delete_member(m);
        return true;
      });
    },
    [=](allocate_id_atom, member_id at_least) -> caf::result<member_id> {
      return now(*s, "allocate_member_id",
                 [&] { return s->st->allocate_member_id(at_least); });
    },
    [=](put_enrollment_atom, const enrollment_record& e) -> caf::result<bool> {
      return now(*s, "put_enrollment", [&] {
        s->st->put_enrollment(e);
        return true;
      });
    },
    [=](complete_enrollment_atom, member_id m,
        const protocol::key& k) -> caf::result<bool> {
      return now(*s, "complete_enrollment", [&] {
        s->st->complete_enrollment(m, k);
        return true;
      });
    },
    [=](activity_atom, const std::string& pool,
        const std::vector<activity_line>& lines, std::uint64_t keep) {
      std::vector<activity_record> rs;
      rs.reserve(lines.size());
      for (const auto& l : lines) {
        rs.push_back(to_record(pool, l));
      }
      if (attempt_now(*s, "append_activity", [&] { s->st->append_activity(rs, keep); }) !=
          attempt::owe) {
        return;
      }
      s->owed_activity_lines += rs.size();
      s->owed_activity.push_back({std::move(rs), keep});
      trim(*s);
      s->publish();
      arm_retry(self, *s);
    },
    // -- a pool taken over from another node (cluster) --------------------
    [=](restore_atom, const std::vector<std::uint64_t>& ids)
      -> caf::result<std::vector<member_state_record>> {
      return now(*s, "load_member_states_of", [&] {
        return s->st->load_member_states_of(std::vector<member_id>(ids.begin(), ids.end()));
      });
    },
    // Cluster: the open enrollments, whichever node opened them.
    [=](enrollments_atom) -> caf::result<std::vector<enrollment_record>> {
      return now(*s, "load_enrollments", [&] { return s->st->load_enrollments(); });
    },
    // Cluster: every pool with its members, accounts and API DNS
    // credentials, as stored (the catalog).
    [=](catalog_atom) -> caf::result<catalog_snapshot> {
      return now(*s, "load_catalog", [&] {
        catalog_snapshot c;
        c.pools = s->st->load_pools(false);
        c.providers = s->st->load_dns_providers();
        for (auto& [pool, a] : s->st->load_accounts()) {
          c.account_pools.push_back(pool);
          c.accounts.push_back(std::move(a));
        }
        return c;
      });
    },
    [=](active_atom, const std::string& pool) -> caf::result<std::int64_t> {
      return now(*s, "active_member", [&] {
        return static_cast<std::int64_t>(s->st->active_member(pool).value_or(0));
      });
    },
    [=](journal_dns_atom, const std::string& pool)
      -> caf::result<std::vector<dns_change_record>> {
      return now(*s, "pending_dns_changes", [&] {
        std::vector<dns_change_record> out;
        for (auto& c : s->st->pending_dns_changes()) {
          if (c.pool == pool) {
            out.push_back(std::move(c));
          }
        }
        return out;
      });
    },
    [=](activity_atom, const std::string& pool, std::int64_t before,
        std::uint64_t limit,
        member_id m) -> caf::result<std::vector<activity_record>> {
      return now(*s, "activity", [&] { return s->st->activity(pool, before, limit, m); });
    },
  };
}

} // namespace balctl
