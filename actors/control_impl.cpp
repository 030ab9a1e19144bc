#include "actors/control_impl.hpp"

#include <algorithm>
#include <chrono>

namespace balctl {

namespace {

// How long the API waits for the engine before answering 503.
constexpr auto ask_timeout = std::chrono::seconds(10);

template <class T>
void fail(const api::done<T>& cb, caf::event_based_actor* self,
          const caf::error& e) {
  cb(api::outcome<T>::fail(control_impl::to_failure(self->system(), e)));
  self->quit();
}

// Asks dest once and hands the typed answer to cb. The helper actor lives
// until the answer (or the timeout) comes, then quits.
template <class T, class... Ts>
void ask(caf::actor_system& sys, const caf::actor& dest, api::done<T> cb,
         Ts... xs) {
  sys.spawn(
    [cb, xs...](caf::event_based_actor* self, caf::actor to) -> caf::behavior {
      self->request(to, ask_timeout, xs...)
        .then(
          [=](T& v) {
            cb(api::outcome<T>::success(std::move(v)));
            self->quit();
          },
          [=](caf::error& e) { fail(cb, self, e); });
      return {[](caf::ok_atom) {}};
    },
    dest);
}

// The same, asking the named pool's actor (found through the supervisor).
template <class T, class... Ts>
void ask_pool(caf::actor_system& sys, const caf::actor& supervisor,
              const std::string& pool, api::done<T> cb, Ts... xs) {
  sys.spawn(
    [cb, pool, xs...](caf::event_based_actor* self,
                      caf::actor sup) -> caf::behavior {
      self->request(sup, ask_timeout, pool_atom_v, pool)
        .then(
          [=](caf::actor& p) {
            self->request(p, ask_timeout, xs...)
              .then(
                [=](T& v) {
                  cb(api::outcome<T>::success(std::move(v)));
                  self->quit();
                },
                [=](caf::error& e) { fail(cb, self, e); });
          },
          [=](caf::error& e) { fail(cb, self, e); });
      return {[](caf::ok_atom) {}};
    },
    supervisor);
}

// The same, asking the named pool's protection actor (jobs, replication):
// the pool names it, then it is asked.
template <class T, class... Ts>
void ask_protection(caf::actor_system& sys, const caf::actor& supervisor,
                    const std::string& pool, api::done<T> cb, Ts... xs) {
  ask_pool<caf::actor>(sys, supervisor, pool,
                       [&sys, cb, xs...](api::outcome<caf::actor> o) {
                         if (!o.ok()) {
                           cb(api::outcome<T>::fail(o.error));
                           return;
                         }
                         ask<T>(sys, *o.value, cb, xs...);
                       },
                       protection_atom_v);
}

} // namespace

control_impl::control_impl(caf::actor_system& sys, caf::actor supervisor,
                           std::shared_ptr<registry> reg,
                           std::string agent_version_latest)
  : sys_(sys),
    supervisor_(std::move(supervisor)),
    reg_(std::move(reg)),
    agent_version_latest_(std::move(agent_version_latest)) {}

api::failure control_impl::to_failure(caf::actor_system& sys,
                                      const caf::error& e) {
  if (e.category() == caf::atom("system")) {
    auto code = static_cast<caf::sec>(e.code());
    const auto& ctx = e.context();
    if (code == caf::sec::runtime_error &&
        ctx.match_elements<std::string, std::string, std::string>()) {
      return {ctx.get_as<std::string>(0), ctx.get_as<std::string>(1),
              ctx.get_as<std::string>(2)};
    }
    if (code == caf::sec::request_timeout) {
      return {"unavailable", "", "the engine did not answer in time"};
    }
    if (code == caf::sec::request_receiver_down) {
      return {"unavailable", "", "the engine is stopping or restarting the pool"};
    }
  }
  return {"internal", "", sys.render(e)};
}

void control_impl::list_pools(api::done<std::vector<pool_summary>> cb) {
  // One request for the pool actors, then one per pool, gathered here.
  sys_.spawn(
    [cb](caf::event_based_actor* self, caf::actor sup) -> caf::behavior {
      self->request(sup, ask_timeout, pools_atom_v)
        .then(
          [=](std::vector<caf::actor>& pools) {
            struct gather {
              std::vector<pool_summary> out;
              std::size_t waiting = 0;
            };
            auto g = std::make_shared<gather>();
            g->waiting = pools.size();
            auto finish = [=] {
              std::sort(g->out.begin(), g->out.end(),
                        [](const pool_summary& a, const pool_summary& b) {
                          return a.id < b.id;
                        });
              cb(api::outcome<std::vector<pool_summary>>::success(
                std::move(g->out)));
              self->quit();
            };
            if (pools.empty()) {
              finish();
              return;
            }
            for (const auto& p : pools) {
              self->request(p, ask_timeout, summary_atom_v)
                .then(
                  [=](pool_summary& s) {
                    g->out.push_back(std::move(s));
                    if (--g->waiting == 0) {
                      finish();
                    }
                  },
                  [=](caf::error&) {
                    // Deleted while we asked: not listed.
                    if (--g->waiting == 0) {
                      finish();
                    }
                  });
            }
          },
          [=](caf::error& e) { fail(cb, self, e); });
      return {[](caf::ok_atom) {}};
    },
    supervisor_);
}

void control_impl::create_pool(pool_config pc, api::done<pool_summary> cb) {
  ask(sys_, supervisor_, std::move(cb), create_pool_atom_v, std::move(pc));
}

void control_impl::get_pool(const std::string& pool, api::done<pool_summary> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), summary_atom_v);
}

void control_impl::rename_pool(const std::string& pool, const std::string& label,
                               api::done<pool_summary> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), rename_atom_v, label);
}

void control_impl::delete_pool(const std::string& pool, bool force,
                               api::done<bool> cb) {
  ask(sys_, supervisor_, std::move(cb), delete_pool_atom_v, pool, force);
}

void control_impl::update_settings(const std::string& pool,
                                   const std::string& patch,
                                   api::done<pool_summary> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), settings_atom_v, patch);
}

void control_impl::overview(const std::string& pool, std::uint64_t offset,
                            std::uint64_t limit, api::done<pool_overview> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), overview_atom_v, offset,
           limit, agent_version_latest_);
}

void control_impl::add_member(const std::string& pool, new_member m,
                              api::done<enrollment_ticket> cb) {
  ask(sys_, supervisor_, std::move(cb), add_member_atom_v, pool, std::move(m));
}

void control_impl::list_members(const std::string& pool, std::uint64_t offset,
                                std::uint64_t limit, api::done<member_page> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), members_atom_v, offset, limit);
}

void control_impl::get_member(const std::string& pool, member_id m,
                              api::done<member_info> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), member_atom_v, m);
}

void control_impl::get_member_detail(const std::string& pool, member_id m,
                                     api::done<api::member_detail> cb) {
  // The member, then its lines of the pool's activity log.
  sys_.spawn(
    [=](caf::event_based_actor* self, caf::actor sup) -> caf::behavior {
      self->request(sup, ask_timeout, pool_atom_v, pool)
        .then(
          [=](caf::actor& p) {
            self->request(p, ask_timeout, member_atom_v, m)
              .then(
                [=](member_info& info) {
                  auto detail = std::make_shared<api::member_detail>();
                  detail->member = std::move(info);
                  self->request(p, ask_timeout, activity_atom_v, std::int64_t{0},
                                std::uint64_t{50}, m)
                    .then(
                      [=](std::vector<activity_record>& rs) {
                        detail->history = std::move(rs);
                        cb(api::outcome<api::member_detail>::success(
                          std::move(*detail)));
                        self->quit();
                      },
                      [=](caf::error& e) { fail(cb, self, e); });
                },
                [=](caf::error& e) { fail(cb, self, e); });
          },
          [=](caf::error& e) { fail(cb, self, e); });
      return {[](caf::ok_atom) {}};
    },
    supervisor_);
}

void control_impl::remove_member(const std::string& pool, member_id m, bool force,
                                 api::done<bool> cb) {
  ask(sys_, supervisor_, std::move(cb), remove_member_atom_v, pool, m, force);
}

void control_impl::cut_pool(const std::string& pool, member_id m, bool force,
                            api::done<pool_summary> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), cut_atom_v, m, force);
}

void control_impl::reenrol(const std::string& pool, member_id m,
                           api::done<enrollment_ticket> cb) {
  ask(sys_, supervisor_, std::move(cb), reenrol_atom_v, pool, m);
}

void control_impl::activity(const std::string& pool, std::int64_t before,
                            std::uint64_t limit, member_id member,
                            api::done<std::vector<activity_record>> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), activity_atom_v, before, limit,
           member);
}

void control_impl::enroll(const std::string& hostname, const std::string& secret,
                          const std::string& source_ip,
                          api::done<enrollment_grant> cb) {
  ask(sys_, supervisor_, std::move(cb), enroll_atom_v, hostname, secret,
      source_ip);
}

void control_impl::ping(api::done<bool> cb) {
  sys_.spawn(
    [cb](caf::event_based_actor* self, caf::actor sup) -> caf::behavior {
      // Short: a probe that waits 10 s is a probe that timed out.
      self->request(sup, std::chrono::seconds(2), caf::get_atom_v)
        .then(
          [=](bool) {
            cb(api::outcome<bool>::success(true));
            self->quit();
          },
          [=](caf::error& e) { fail(cb, self, e); });
      return {[](caf::ok_atom) {}};
    },
    supervisor_);
}

void control_impl::cluster_status(api::done<std::string> cb) {
  if (!cluster_) {
    api::control::cluster_status(std::move(cb));
    return;
  }
  sys_.spawn(
    [cb](caf::event_based_actor* self, caf::actor cluster) -> caf::behavior {
      self->request(cluster, std::chrono::seconds(5), cluster_atom_v)
        .then(
          [=](std::string& j) {
            cb(api::outcome<std::string>::success(std::move(j)));
            self->quit();
          },
          [=](caf::error& e) { fail(cb, self, e); });
      return {[](caf::ok_atom) {}};
    },
    cluster_);
}

api::state_counts control_impl::count_states() const {
  api::state_counts c;
  reg_->for_each([&](const member_slot& s) {
    switch (s.state.load(std::memory_order_relaxed)) {
      case member_state::pending: ++c.pending; break;
      case member_state::healthy: ++c.healthy; break;
      case member_state::suspect: ++c.suspect; break;
      case member_state::down: ++c.down; break;
      case member_state::recovering: ++c.recovering; break;
    }
  });
  return c;
}

// -- Managed DNS and Protection -------------------------------------------------

void control_impl::dns_catalogue(const std::string& pool, std::uint64_t offset,
                                 std::uint64_t limit, api::done<balctl::dns_catalogue> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), managed_dns_atom_v, offset, limit);
}

void control_impl::list_accounts(const std::string& pool, std::uint64_t offset,
                                 std::uint64_t limit, api::done<account_page> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), accounts_atom_v, offset, limit);
}

void control_impl::get_account(const std::string& pool, const std::string& id,
                               api::done<account_view> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), account_atom_v, id);
}

void control_impl::put_account(const std::string& pool, const std::string& id,
                               const std::string& body, api::done<account_view> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), put_account_atom_v, id, body);
}

void control_impl::delete_account(const std::string& pool, const std::string& id,
                                  api::done<bool> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), delete_account_atom_v, id);
}

void control_impl::cut_account(const std::string& pool, const std::string& id,
                               const std::string& side, bool force,
                               api::done<account_view> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), cut_atom_v, id, side, force);
}

void control_impl::dns_action(const std::string& pool, const std::string& what,
                              const std::string& account, api::done<std::uint64_t> cb) {
  if (what == "refresh") {
    ask_pool(sys_, supervisor_, pool, std::move(cb), refresh_atom_v, account);
  } else if (what == "import") {
    ask_pool(sys_, supervisor_, pool, std::move(cb), import_atom_v, account);
  } else {
    ask_pool(sys_, supervisor_, pool, std::move(cb), sync_atom_v, account);
  }
}

void control_impl::list_providers(const std::string& pool,
                                  api::done<std::vector<dns_provider_config>> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), providers_atom_v);
}

void control_impl::put_provider(const std::string& pool, const std::string& id,
                                const std::string& body,
                                api::done<std::vector<dns_provider_config>> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), put_provider_atom_v, id, body);
}

void control_impl::delete_provider(const std::string& pool, const std::string& id,
                                   api::done<std::vector<dns_provider_config>> cb) {
  ask_pool(sys_, supervisor_, pool, std::move(cb), delete_provider_atom_v, id);
}

// -- Protection: jobs and replication ---------------------------------------

void control_impl::queue_job(const std::string& pool, const std::string& body,
                             api::done<std::string> cb) {
  ask_protection(sys_, supervisor_, pool, std::move(cb), job_atom_v, body);
}

void control_impl::list_jobs(const std::string& pool, member_id m,
                             api::done<std::string> cb) {
  ask_protection(sys_, supervisor_, pool, std::move(cb), jobs_atom_v, m);
}

void control_impl::get_job(const std::string& pool, const std::string& id,
                           api::done<std::string> cb) {
  ask_protection(sys_, supervisor_, pool, std::move(cb), job_atom_v, caf::get_atom_v, id);
}

void control_impl::cancel_job(const std::string& pool, const std::string& id,
                              api::done<std::string> cb) {
  ask_protection(sys_, supervisor_, pool, std::move(cb), cancel_atom_v, id);
}

void control_impl::replicate(const std::string& pool, const std::string& account,
                             api::done<std::string> cb) {
  ask_protection(sys_, supervisor_, pool, std::move(cb), replicate_atom_v, account);
}

void control_impl::replication(const std::string& pool, const std::string& account,
                               api::done<std::string> cb) {
  if (account.empty()) {
    ask_protection(sys_, supervisor_, pool, std::move(cb), replication_atom_v);
  } else {
    ask_protection(sys_, supervisor_, pool, std::move(cb), replication_atom_v, account);
  }
}

void control_impl::agent_call(member_id m, const std::string& method, const std::string& path,
                              const std::string& body, api::done<std::string> cb) {
  auto slot = reg_->find(m);
  if (!slot || !slot->pool) {
    cb(api::outcome<std::string>::fail({"agent_unknown", "", "no member " + std::to_string(m)}));
    return;
  }
  ask_protection(sys_, supervisor_, *slot->pool, std::move(cb), agent_atom_v, m, method, path,
                 body);
}

void control_impl::monitoring(const std::string& pool, member_id m, const std::string& body,
                              api::done<std::string> cb) {
  if (m == 0 && body.empty()) {
    ask_protection(sys_, supervisor_, pool, std::move(cb), monitoring_atom_v);
  } else if (m == 0) {
    ask_protection(sys_, supervisor_, pool, std::move(cb), monitoring_atom_v, body);
  } else if (body.empty()) {
    ask_protection(sys_, supervisor_, pool, std::move(cb), monitoring_atom_v, m);
  } else {
    ask_protection(sys_, supervisor_, pool, std::move(cb), monitoring_atom_v, m, body);
  }
}

std::optional<protocol::key> control_impl::agent_key(member_id m) const {
  auto slot = reg_->find(m);
  if (!slot) {
    return std::nullopt;
  }
  return slot->key();
}

} // namespace balctl
