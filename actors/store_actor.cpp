#include "actors/store_actor.hpp"

#include "engine/log.hpp"

namespace balctl {

namespace {

// Runs one store call; a store_error is logged, counted and returned as a
// CAF error instead of killing the actor.
template <class F>
auto guarded(engine_metrics* metrics, const char* op, F f)
  -> caf::result<decltype(f())> {
  // Any exception, not only the backend's: a store actor that dies takes
  // every later write with it.
  try {
    return f();
  } catch (const std::exception& e) {
    metrics->store_errors.fetch_add(1);
    log::error("store_failed", {{"operation", op}, {"error", e.what()}});
    return caf::make_error(caf::sec::runtime_error, e.what());
  }
}

template <class F>
void guarded_void(engine_metrics* metrics, const char* op, F f) {
  try {
    f();
  } catch (const std::exception& e) {
    metrics->store_errors.fetch_add(1);
    log::error("store_failed", {{"operation", op}, {"error", e.what()}});
  }
}

} // namespace

caf::behavior store_actor(caf::event_based_actor* self,
                          std::shared_ptr<store> st, engine_metrics* metrics) {
  self->attach_functor([sys = &self->system()](const caf::error& reason) {
    if (reason && reason != caf::exit_reason::user_shutdown &&
        reason != caf::exit_reason::normal) {
      log::error("store_actor_stopped", {{"reason", sys->render(reason)}});
    }
  });
  return {
    // An ordinary message, so every write queued before it is done first.
    [=](caf::close_atom) { self->quit(); },
    [=](record_atom, const pool_decision& d) -> caf::result<std::int64_t> {
      return guarded(metrics, "record_decision",
                     [&] { return st->record_decision(d); });
    },
    [=](mark_atom, std::int64_t id, const std::string& status) {
      guarded_void(metrics, "mark_decision",
                   [&] { st->mark_decision(id, status); });
    },
    [=](save_atom, const std::vector<member_state_record>& rs) {
      guarded_void(metrics, "save_member_states",
                   [&] { st->save_member_states(rs); });
    },
    [=](active_atom, const std::string& pool, member_id m) {
      guarded_void(metrics, "set_active_member",
                   [&] { st->set_active_member(pool, m); });
    },
    // -- the DNS journal ---------------------------------------------------
    [=](journal_dns_atom, const std::vector<dns_change_record>& cs)
      -> caf::result<std::vector<std::int64_t>> {
      return guarded(metrics, "journal_dns_changes",
                     [&] { return st->journal_dns_changes(cs); });
    },
    [=](mark_dns_atom, const std::vector<std::int64_t>& ids,
        const std::string& status, const std::string& error) {
      guarded_void(metrics, "mark_dns_changes",
                   [&] { st->mark_dns_changes(ids, status, error); });
    },
    // -- protected accounts and API DNS providers --------------------------
    [=](cut_atom, const std::string& pool, const std::vector<protected_account>& as,
        const std::vector<dns_change_record>& cs) -> caf::result<std::vector<std::int64_t>> {
      return guarded(metrics, "journal_account_cuts",
                     [&] { return st->journal_account_cuts(pool, as, cs); });
    },
    [=](put_account_atom, const std::string& pool,
        const std::vector<protected_account>& as) -> caf::result<bool> {
      return guarded(metrics, "put_accounts", [&] {
        st->put_accounts(pool, as);
        return true;
      });
    },
    [=](delete_account_atom, const std::string& pool, const std::string& id)
      -> caf::result<bool> {
      return guarded(metrics, "delete_account", [&] {
        st->delete_account(pool, id);
        return true;
      });
    },
    [=](put_provider_atom, const std::vector<dns_provider_config>& ps) -> caf::result<bool> {
      return guarded(metrics, "put_dns_providers", [&] {
        st->put_dns_providers(ps);
        return true;
      });
    },
    [=](delete_provider_atom, const std::string& id) -> caf::result<bool> {
      return guarded(metrics, "delete_dns_provider", [&] {
        st->delete_dns_provider(id);
        return true;
      });
    },
    // -- admin API ---------------------------------------------------------
    [=](create_pool_atom, const pool_config& p) -> caf::result<bool> {
      return guarded(metrics, "put_pool", [&] {
        st->put_pool(p);
        return true;
      });
    },
    // Requested (the caller answers its client when the disk has it).
    [=](update_pool_atom, const pool_config& p) -> caf::result<bool> {
      return guarded(metrics, "update_pool", [&] {
        st->update_pool(p);
        return true;
      });
    },
    [=](delete_pool_atom, const std::string& pool) {
      guarded_void(metrics, "delete_pool", [&] { st->delete_pool(pool); });
    },
    [=](add_member_atom, const std::string& pool,
        const member_config& m) -> caf::result<bool> {
      return guarded(metrics, "put_member", [&] {
        st->put_member(pool, m);
        return true;
      });
    },
    [=](remove_member_atom, member_id m) -> caf::result<bool> {
      return guarded(metrics, "delete_member", [&] {
        st->delete_member(m);
        return true;
      });
    },
    [=](allocate_id_atom, member_id at_least) -> caf::result<member_id> {
      return guarded(metrics, "allocate_member_id",
                     [&] { return st->allocate_member_id(at_least); });
    },
    [=](put_enrollment_atom, const enrollment_record& e) -> caf::result<bool> {
      return guarded(metrics, "put_enrollment", [&] {
        st->put_enrollment(e);
        return true;
      });
    },
    [=](complete_enrollment_atom, member_id m,
        const protocol::key& k) -> caf::result<bool> {
      return guarded(metrics, "complete_enrollment", [&] {
        st->complete_enrollment(m, k);
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
      guarded_void(metrics, "append_activity",
                   [&] { st->append_activity(rs, keep); });
    },
    [=](activity_atom, const std::string& pool, std::int64_t before,
        std::uint64_t limit,
        member_id m) -> caf::result<std::vector<activity_record>> {
      return guarded(metrics, "activity",
                     [&] { return st->activity(pool, before, limit, m); });
    },
  };
}

} // namespace balctl
