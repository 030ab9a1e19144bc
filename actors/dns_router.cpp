#include "actors/dns_router.hpp"

#include <algorithm>
#include <functional>
#include <set>
#include <tuple>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "adapters/dns/make_provider.hpp"
#include "engine/log.hpp"

namespace balctl {

namespace {

using self_ptr = caf::stateful_actor<dns_router_state>*;
using changes = std::vector<dns_change_record>;

void spawn_executor(self_ptr self, const dns_provider_config& c) {
  auto& st = self->state;
  auto exec = self->spawn(dns_executor, executor_deps(c, st.deps.executor_base));
  self->monitor(exec);
  st.executors[c.id] = exec;
  for (const auto& pool : st.given_up) {
    self->send(exec, disown_atom_v, pool);
  }
  log::info("dns_provider", {{"id", c.id},
                             {"type", to_string(c.kind)},
                             {"pool", c.pool.empty() ? "(config file)" : c.pool},
                             {"rate_limit", std::to_string(c.rate_limit_requests) + " per " +
                                              std::to_string(c.rate_limit_window_s) + " s"}});
}

std::vector<dns_provider_config> pool_providers(self_ptr self, const std::string& pool) {
  std::vector<dns_provider_config> out;
  for (const auto& [id, c] : self->state.providers) {
    if (c.pool == pool) {
      out.push_back(without_secret(c));
    }
  }
  return out;
}

} // namespace

// The answers being gathered for one scatter, and one executor's part of it.
struct scatter_join {
  changes out;
  std::size_t left = 0;
  std::function<void(changes)> done;
};

struct scatter_part {
  std::shared_ptr<scatter_join> join;
  std::vector<std::size_t> idx;
  bool answered = false;

  /// Fills its results (or fails them with why) once; the join answers
  /// when every part has.
  void finish(changes* rs, const std::string& why) {
    if (answered) {
      return;
    }
    answered = true;
    for (std::size_t k = 0; k < idx.size(); ++k) {
      if (rs != nullptr && k < rs->size()) {
        join->out[idx[k]] = std::move((*rs)[k]);
      } else {
        join->out[idx[k]].status = "failed";
        join->out[idx[k]].error = why;
      }
    }
    if (--join->left == 0) {
      join->done(std::move(join->out));
    }
  }
};

namespace {

// Fails the parts an executor will never answer (it stopped).
void fail_parts(self_ptr self, const std::string& provider, const std::string& why) {
  auto& st = self->state;
  auto i = st.parts.find(provider);
  if (i == st.parts.end()) {
    return;
  }
  auto parts = std::move(i->second);
  st.parts.erase(i);
  for (auto& p : parts) {
    p->finish(nullptr, why);
  }
}

// Splits cs by credential, asks each credential's executor with `atom`
// and calls done with the results in cs's order. A change for a credential
// nobody has fails; journaled ones are marked cancelled.
template <class Atom>
void scatter(self_ptr self, Atom atom, changes cs, std::function<void(changes)> done) {
  auto& st = self->state;
  if (cs.empty()) {
    done({});
    return;
  }
  auto j = std::make_shared<scatter_join>();
  j->out = cs;
  j->done = std::move(done);
  std::map<std::string, std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < cs.size(); ++i) {
    groups[cs[i].provider].push_back(i);
  }
  j->left = groups.size();
  for (auto& [provider, idx] : groups) {
    auto part = std::make_shared<scatter_part>();
    part->join = j;
    part->idx = idx;
    auto e = st.executors.find(provider);
    if (e == st.executors.end()) {
      std::vector<std::int64_t> journaled;
      for (auto i : idx) {
        if (cs[i].id > 0) {
          journaled.push_back(cs[i].id);
        }
      }
      auto why = "no DNS provider has id '" + provider + "'";
      if (!journaled.empty()) {
        log::error("dns_change_abandoned", {{"provider", provider},
                                            {"changes", std::to_string(journaled.size())},
                                            {"reason", why}});
        self->send(st.deps.store, mark_dns_atom_v, journaled, std::string("cancelled"), why);
      }
      part->finish(nullptr, why);
      continue;
    }
    changes mine;
    for (auto i : idx) {
      mine.push_back(cs[i]);
    }
    auto& pending = st.parts[provider];
    // Answered parts leave the list as new ones come (it stays short).
    pending.erase(std::remove_if(pending.begin(), pending.end(),
                                 [](const auto& p) { return p->answered; }),
                  pending.end());
    pending.push_back(part);
    self->request(e->second, caf::infinite, atom, std::move(mine))
      .then([part](changes& rs) { part->finish(&rs, ""); },
            [self, part](caf::error& err) { part->finish(nullptr, self->system().render(err)); });
  }
}

// The results of `atom` over cs as the handler's answer.
template <class Atom>
caf::result<changes> scatter_answer(self_ptr self, Atom atom, changes cs) {
  auto rp = self->make_response_promise<changes>();
  scatter(self, atom, std::move(cs), [rp](changes rs) mutable { rp.deliver(std::move(rs)); });
  return rp;
}

bool same_provider(const dns_provider_config& a, const dns_provider_config& b) {
  auto fields = [](const dns_provider_config& c) {
    return std::tie(c.id, c.kind, c.api_base, c.server, c.user, c.server_id, c.tsig_name,
                    c.tsig_algorithm, c.secret, c.ca_file, c.global, c.rate_limit_requests,
                    c.rate_limit_window_s, c.max_in_flight, c.timeout_ms, c.pool, c.member);
  };
  return fields(a) == fields(b);
}

void remember_pools(self_ptr self, const changes& cs) {
  if (auto sender = caf::actor_cast<caf::actor>(self->current_sender())) {
    for (const auto& c : cs) {
      self->state.pools[c.pool] = sender;
    }
  }
}

} // namespace

dns_provider_config without_secret(dns_provider_config c) {
  c.secret.clear();
  return c;
}

dns_executor_deps executor_deps(const dns_provider_config& c, dns_executor_deps d) {
  d.provider_id = c.id;
  d.provider = dns::make_provider(c);
  d.http = dns::http_options_of(c);
  d.dns_timeout_ms = c.timeout_ms;
  d.rate_limit = c.rate_limit_requests;
  d.rate_window_ms = std::int64_t{c.rate_limit_window_s} * 1000;
  d.max_in_flight = c.max_in_flight;
  return d;
}

caf::behavior dns_router(caf::stateful_actor<dns_router_state>* self,
                         std::vector<dns_provider_config> providers,
                         std::unordered_map<std::string, caf::actor> executors,
                         dns_router_deps deps) {
  auto& st = self->state;
  st.deps = std::move(deps);
  st.executors = std::move(executors);
  for (auto& [id, e] : st.executors) {
    self->monitor(e);
  }
  for (auto& c : providers) {
    st.providers[c.id] = c;
    if (st.executors.count(c.id) == 0) {
      spawn_executor(self, c);
    }
  }
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    for (auto i = st.executors.begin(); i != st.executors.end(); ++i) {
      if (i->second.address() != msg.source) {
        continue;
      }
      auto id = i->first;
      st.executors.erase(i);
      fail_parts(self, id, "the executor of DNS provider '" + id +
                             "' stopped; its journaled changes resume at the next start");
      if (st.closing > 0) {
        if (--st.closing == 0) {
          self->quit();
        }
        return;
      }
      auto c = st.providers.find(id);
      if (c == st.providers.end()) {
        return; // deleted on purpose
      }
      // Its queued changes stay pending in the journal (the next start
      // resumes them); new ones go to a fresh executor.
      log::error("actor_crashed", {{"kind", "dns_executor"},
                                   {"provider", id},
                                   {"reason", self->system().render(msg.reason)},
                                   {"action", "restarted"}});
      spawn_executor(self, c->second);
      return;
    }
  });
  return {
    [=](execute_atom, std::int64_t id, const pool_decision& d,
        changes& cs) -> caf::result<bool> {
      auto& st = self->state;
      st.executed.push_back(d);
      if (auto sender = caf::actor_cast<caf::actor>(self->current_sender())) {
        st.pools[d.pool] = sender;
      }
      if (cs.empty()) {
        log::info("dns_change", {{"decision", std::to_string(id)},
                                 {"pool", d.pool},
                                 {"kind", to_string(d.kind)},
                                 {"from", std::to_string(d.from)},
                                 {"to", std::to_string(d.to)},
                                 {"provider", "none (recorded only)"}});
        return true;
      }
      auto rp = self->make_response_promise<bool>();
      scatter(self, submit_atom_v, std::move(cs), [rp](changes rs) mutable {
        rp.deliver(std::all_of(rs.begin(), rs.end(), [](const dns_change_record& r) {
          return r.status == "done" || r.status == "superseded";
        }));
      });
      return rp;
    },
    [=](submit_atom, changes& cs) -> caf::result<changes> {
      remember_pools(self, cs);
      return scatter_answer(self, submit_atom_v, std::move(cs));
    },
    [=](read_atom, changes& keys) -> caf::result<changes> {
      return scatter_answer(self, read_atom_v, std::move(keys));
    },
    [=](list_atom, const std::string& provider, const std::string& zone) -> caf::result<changes> {
      auto& st = self->state;
      auto e = st.executors.find(provider);
      if (e == st.executors.end()) {
        return refuse("provider_not_found", "provider", "no DNS provider has id '" + provider + "'");
      }
      auto rp = self->make_response_promise<changes>();
      rp.delegate(e->second, list_atom_v, zone);
      return rp;
    },
    [=](put_provider_atom, const std::string& pool, const std::string& id,
        const std::string& body,
        const std::vector<member_id>& members) -> caf::result<std::vector<dns_provider_config>> {
      auto& st = self->state;
      dns_provider_config c;
      bool create = id.empty();
      if (!create) {
        auto i = st.providers.find(id);
        if (i == st.providers.end() || i->second.pool != pool) {
          return refuse("provider_not_found", "",
                        "pool '" + pool + "' has no DNS provider '" + id + "'");
        }
        c = i->second;
      }
      auto errors = read_dns_provider_json(body, c);
      if (!errors.empty()) {
        const auto& e = errors.front();
        auto code = e.message == "unknown key"       ? "unknown_field"
                    : e.message.rfind("required", 0) == 0 ? "missing_field"
                                                          : "invalid_field";
        // Values are echoed only for keys that are not secrets (the config
        // rules never put one in field_error::value).
        return refuse(code, e.field,
                      e.value.empty() ? e.message : e.message + " (got " + e.value + ")");
      }
      if (!create && c.id != id) {
        return refuse("invalid_field", "id", "a DNS provider's id cannot change");
      }
      if (!create) {
        // The stored secret never follows a credential to another endpoint.
        const auto& old = st.providers.at(id);
        auto j = nlohmann::json::parse(body, nullptr, false);
        bool new_secret = j.is_object() && j.contains("secret");
        if (!new_secret && (c.api_base != old.api_base || c.server != old.server)) {
          return refuse("missing_field", "secret",
                        "send the secret again when api_base or server changes");
        }
      }
      if (create && st.providers.count(c.id) != 0) {
        auto& other = st.providers[c.id];
        return refuse("provider_exists", "id",
                      "a DNS provider with id '" + c.id + "' exists" +
                        (other.pool.empty() ? " in the config file"
                                            : " (pool '" + other.pool + "')"));
      }
      c.pool = pool;
      if (c.kind == dns_provider_kind::whm) {
        if (c.member == 0) {
          return refuse("missing_field", "member",
                        "required for a WHM key: the cPanel member it belongs to");
        }
        if (std::find(members.begin(), members.end(), c.member) == members.end()) {
          return refuse("invalid_field", "member",
                        "no member " + std::to_string(c.member) + " in pool '" + pool + "'");
        }
      } else if (c.member != 0) {
        return refuse("invalid_field", "member", "only a WHM key belongs to a member");
      }
      if (c.global && c.kind != dns_provider_kind::cloudflare) {
        return refuse("invalid_field", "global", "only a Cloudflare key is marked Global");
      }
      std::vector<dns_provider_config> writes{c};
      if (c.global) {
        // One Global Cloudflare key per pool: marking one unmarks the rest.
        for (const auto& [pid, p] : st.providers) {
          if (pid != c.id && p.pool == pool && p.global) {
            auto q = p;
            q.global = false;
            writes.push_back(q);
          }
        }
      }
      // Taken now: a second request for the same id waits for no answer.
      st.providers.emplace(c.id, without_secret(c)).first->second.pool = pool;
      auto rp = self->make_response_promise<std::vector<dns_provider_config>>();
      self->request(st.deps.store, caf::infinite, put_provider_atom_v, writes)
        .then(
          [=](bool) mutable {
            auto& st = self->state;
            for (const auto& w : writes) {
              st.providers[w.id] = w;
              if (auto e = st.executors.find(w.id); e != st.executors.end()) {
                self->send(e->second, settings_atom_v, w);
              } else {
                spawn_executor(self, w);
              }
            }
            log::info("dns_provider_saved", {{"pool", pool},
                                             {"id", c.id},
                                             {"type", to_string(c.kind)},
                                             {"created", create ? "true" : "false"}});
            rp.deliver(pool_providers(self, pool));
          },
          [=](caf::error& e) mutable {
            if (create) {
              self->state.providers.erase(c.id);
            }
            rp.deliver(refuse("unavailable", "",
                              "DNS provider not stored: " + self->system().render(e)));
          });
      return rp;
    },
    [=](delete_provider_atom, const std::string& pool,
        const std::string& id) -> caf::result<std::vector<dns_provider_config>> {
      auto& st = self->state;
      auto i = st.providers.find(id);
      if (i == st.providers.end() || i->second.pool != pool) {
        return refuse("provider_not_found", "",
                      "pool '" + pool + "' has no DNS provider '" + id + "'");
      }
      auto rp = self->make_response_promise<std::vector<dns_provider_config>>();
      self->request(st.deps.store, caf::infinite, delete_provider_atom_v, id)
        .then(
          [=](bool) mutable {
            auto& st = self->state;
            st.providers.erase(id);
            if (auto e = st.executors.find(id); e != st.executors.end()) {
              self->send_exit(e->second, caf::exit_reason::user_shutdown);
              st.executors.erase(e);
            }
            fail_parts(self, id, "DNS provider '" + id + "' was deleted");
            log::info("dns_provider_deleted", {{"pool", pool}, {"id", id}});
            rp.deliver(pool_providers(self, pool));
          },
          [=](caf::error& e) mutable {
            rp.deliver(refuse("unavailable", "",
                              "DNS provider not deleted: " + self->system().render(e)));
          });
      return rp;
    },
    // Cluster: a pool given up, or owned (again): every executor hears it.
    [=](disown_atom, const std::string& pool) {
      self->state.given_up.insert(pool);
      for (const auto& [id, e] : self->state.executors) {
        self->send(e, disown_atom_v, pool);
      }
    },
    [=](own_atom, const std::string& pool) {
      self->state.given_up.erase(pool);
      for (const auto& [id, e] : self->state.executors) {
        self->send(e, own_atom_v, pool);
      }
    },
    // Cluster: the API's credentials as the store holds them (other nodes
    // add, change and delete them): executors started, given their new
    // settings or stopped to match. The config file's are not the store's.
    [=](catalog_atom, const std::vector<dns_provider_config>& stored) {
      auto& st = self->state;
      std::unordered_set<std::string> seen;
      for (const auto& c : stored) {
        seen.insert(c.id);
        auto i = st.providers.find(c.id);
        if (i != st.providers.end() && i->second.pool.empty()) {
          continue; // the config file's id wins (bootstrap says so)
        }
        if (i != st.providers.end() && same_provider(i->second, c)) {
          continue;
        }
        st.providers[c.id] = c;
        if (auto e = st.executors.find(c.id); e != st.executors.end()) {
          self->send(e->second, settings_atom_v, c);
        } else {
          spawn_executor(self, c);
        }
        log::info("dns_provider_reloaded", {{"pool", c.pool}, {"id", c.id}});
      }
      for (auto i = st.providers.begin(); i != st.providers.end();) {
        if (i->second.pool.empty() || seen.count(i->first) != 0) {
          ++i;
          continue;
        }
        if (auto e = st.executors.find(i->first); e != st.executors.end()) {
          self->send_exit(e->second, caf::exit_reason::user_shutdown);
          st.executors.erase(e);
        }
        fail_parts(self, i->first, "DNS provider '" + i->first + "' was deleted");
        log::info("dns_provider_deleted", {{"pool", i->second.pool}, {"id", i->first}});
        i = st.providers.erase(i);
      }
    },
    // A pool deleted: its credentials go (the store's rows went with the
    // pool), their executors stop.
    [=](delete_pool_atom, const std::string& pool) {
      auto& st = self->state;
      for (auto i = st.providers.begin(); i != st.providers.end();) {
        if (i->second.pool != pool) {
          ++i;
          continue;
        }
        if (auto e = st.executors.find(i->first); e != st.executors.end()) {
          self->send_exit(e->second, caf::exit_reason::user_shutdown);
          st.executors.erase(e);
        }
        fail_parts(self, i->first, "pool '" + pool + "' was deleted");
        log::info("dns_provider_deleted", {{"pool", pool}, {"id", i->first}});
        i = st.providers.erase(i);
      }
      st.pools.erase(pool);
    },
    [=](dns_alert_atom, const std::string& pool, const std::string& message) {
      auto& st = self->state;
      if (auto p = st.pools.find(pool); p != st.pools.end()) {
        self->send(p->second, dns_alert_atom_v, pool, message);
      }
    },
    [=](caf::close_atom) {
      auto& st = self->state;
      st.closing = st.executors.size();
      if (st.closing == 0) {
        self->quit();
        return;
      }
      for (auto& [id, e] : st.executors) {
        self->send_exit(e, caf::exit_reason::user_shutdown);
      }
    },
  };
}

} // namespace balctl
