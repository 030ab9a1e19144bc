#include "actors/protection.hpp"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "actors/account.hpp"
#include "engine/log.hpp"

namespace balctl {

namespace {

using json = nlohmann::json;
using self_ptr = caf::stateful_actor<protection_state>*;

constexpr int agent_poll_s = 10;

json job_view(const job& j) {
  auto params = json::parse(j.params, nullptr, false);
  if (params.is_object() && j.kind == "replicate_restore") {
    // Presigned URLs are the agent's, not the operator's to read.
    for (auto& c : params["chunks"]) {
      c.erase("url");
      c.erase("delete_url");
    }
  }
  auto ms = [](std::int64_t v) { return v == 0 ? json(nullptr) : json(v); };
  return {{"id", j.id},
          {"member", j.member},
          {"kind", j.kind},
          {"params", params.is_object() ? params : json::object()},
          {"timeout_s", j.timeout_s},
          {"owner", j.owner},
          {"requested_by", j.requested_by},
          {"status", to_string(j.status)},
          {"created_ms", j.created_ms},
          {"dispatched_ms", ms(j.dispatched_ms)},
          {"started_ms", ms(j.started_ms)},
          {"finished_ms", ms(j.finished_ms)},
          {"exit_code", j.status == job_status::succeeded || j.status == job_status::failed
                          ? json(j.exit_code)
                          : json(nullptr)},
          {"output", j.output},
          {"error", j.error}};
}

void store_jobs(self_ptr self, const std::vector<const job*>& js) {
  auto& st = self->state;
  auto c = st.jobs.count();
  if (st.deps.running_jobs) {
    st.deps.running_jobs->store(c.running, std::memory_order_relaxed);
  }
  if (st.deps.queued_jobs) {
    st.deps.queued_jobs->store(c.queued, std::memory_order_relaxed);
  }
  std::vector<stored_record> rs;
  for (const auto* j : js) {
    rs.push_back({"job", st.pool, j->id, to_json_text(*j)});
  }
  auto gone = st.jobs.prune();
  if (!rs.empty()) {
    self->request(st.deps.store, caf::infinite, put_records_atom_v, std::move(rs))
      .then([](bool) {},
            [=](caf::error& e) {
              log::warn("jobs_not_stored",
                        {{"pool", self->state.pool}, {"error", self->system().render(e)}});
            });
  }
  if (!gone.empty()) {
    self->request(st.deps.store, caf::infinite, delete_records_atom_v, std::string("job"),
                  st.pool, std::move(gone))
      .then([](bool) {}, [](caf::error&) {});
  }
}

void post(self_ptr self, std::vector<alert_message> as) {
  auto& st = self->state;
  for (auto& a : as) {
    log::info("alert", {{"pool", st.pool},
                        {"kind", a.kind},
                        {"key", a.key},
                        {"subject", a.subject},
                        {"emails", std::to_string(a.emails.size())},
                        {"webhooks", std::to_string(a.webhooks.size())}});
    if (st.deps.notify && (!a.emails.empty() || !a.webhooks.empty())) {
      st.deps.notify(a);
    }
  }
}

json monitoring_view(self_ptr self) {
  auto& st = self->state;
  auto j = json::parse(to_json_text(st.alerts->presets()));
  auto until = st.alerts->failover_banner_until_ms(st.deps.clk->now_ms());
  j["failover_banner_until_ms"] = until == 0 ? json(nullptr) : json(until);
  return j;
}

json member_alerts_view(self_ptr self, member_id m) {
  const auto* s = self->state.alerts->member(m);
  auto j = json::parse(to_json_text(s != nullptr ? *s : member_alert_settings{}));
  j["member"] = m;
  return j;
}

void store_monitoring(self_ptr self, const std::string& id, std::string body) {
  auto& st = self->state;
  self->request(st.deps.store, caf::infinite, put_records_atom_v,
                std::vector<stored_record>{{"monitoring", st.pool, id, std::move(body)}})
    .then([](bool) {},
          [=](caf::error& e) {
            log::warn("monitoring_not_stored",
                      {{"pool", self->state.pool}, {"error", self->system().render(e)}});
          });
}

void arm(self_ptr self) {
  auto& st = self->state;
  auto next = st.jobs.next_deadline_ms();
  if (!next || (st.armed_ms != 0 && st.armed_ms <= *next)) {
    return;
  }
  st.armed_ms = *next;
  auto delay = std::max<std::int64_t>(0, *next - st.deps.clk->now_ms());
  self->delayed_send(self, std::chrono::milliseconds(delay), tick_atom_v);
}

// A job ended (reported, expired, cancelled): its owner hears of it, the
// log says so.
void finished_job(self_ptr self, const job& j) {
  auto& st = self->state;
  if (j.owner.compare(0, 8, "account:") == 0) {
    if (auto it = st.account_actors.find(j.owner.substr(8)); it != st.account_actors.end()) {
      self->send(it->second, job_done_atom_v, to_json_text(j));
    }
  }
  std::string line = "job " + j.id + " (" + j.kind + ") on member " + std::to_string(j.member) +
                     " " + to_string(j.status);
  if (j.status == job_status::failed) {
    line += ": " + (j.error.empty() ? "exit code " + std::to_string(j.exit_code) : j.error);
  }
  protection_note(self, st.deps, st.pool, activity_kind::job, j.member, std::move(line));
}

void spawn_account(self_ptr self, const protected_account& a) {
  auto& st = self->state;
  replication_state s;
  if (auto it = st.loaded.find(a.id); it != st.loaded.end()) {
    s = std::move(it->second);
    st.loaded.erase(it);
  }
  s.account = a.id;
  auto actor = self->spawn(account_actor, st.pool, a, std::move(s), st.deps,
                           caf::actor_cast<caf::actor>(self));
  self->monitor(actor);
  st.account_actors[a.id] = actor;
  auto& kids = *st.children;
  kids.erase(std::remove_if(kids.begin(), kids.end(),
                            [&](const caf::actor& k) {
                              return std::none_of(st.account_actors.begin(),
                                                  st.account_actors.end(),
                                                  [&](const auto& e) { return e.second == k; });
                            }),
             kids.end());
  kids.push_back(actor);
}

// A request for one account's actor, answered by it.
template <class... Ts>
caf::result<std::string> to_account(self_ptr self, const std::string& account, Ts... xs) {
  auto& st = self->state;
  auto it = st.account_actors.find(account);
  if (it == st.account_actors.end()) {
    return refuse("account_not_found", "",
                  "no protected account '" + account + "' in pool '" + st.pool + "'");
  }
  auto rp = self->make_response_promise<std::string>();
  return rp.delegate(it->second, std::move(xs)...);
}

caf::result<std::string> queue_job(self_ptr self, const std::string& text) {
  auto& st = self->state;
  auto o = json::parse(text, nullptr, false);
  if (!o.is_object()) {
    return refuse("invalid_body", "", "a job is a JSON object");
  }
  job j;
  try {
    j.member = o.at("member").get<member_id>();
    j.kind = o.value("kind", std::string("command"));
    j.params = o.value("params", std::string("{}"));
    j.timeout_s = o.value("timeout_s", 3600);
    j.owner = o.value("owner", std::string());
    j.requested_by = o.value("requested_by", std::string());
  } catch (const json::exception&) {
    return refuse("invalid_body", "", "a job names its member");
  }
  const auto& queued = st.jobs.queue(std::move(j), st.deps.clk->now_ms());
  if (queued.owner.empty()) {
    protection_note(self, st.deps, st.pool, activity_kind::job, queued.member,
                    "job " + queued.id + " (" + queued.kind + ") queued for member " +
                      std::to_string(queued.member) +
                      (queued.requested_by.empty() ? "" : " by " + queued.requested_by));
  }
  auto view = job_view(queued).dump();
  store_jobs(self, {&queued});
  return view;
}

caf::result<std::string> agent_call(self_ptr self, member_id m, const std::string& method,
                                    const std::string& path, const std::string& body) {
  auto& st = self->state;
  auto now = st.deps.clk->now_ms();
  // jobs
  if (path == "jobs") {
    if (method != "GET") {
      return refuse("method_not_allowed", "", "GET /v1/agent/jobs");
    }
    auto got = st.jobs.fetch(m, now);
    auto list = json::array();
    for (const auto* j : got) {
      list.push_back(json::parse(agent_job_json(*j)));
    }
    store_jobs(self, got);
    arm(self);
    return json{{"jobs", std::move(list)}, {"poll_s", agent_poll_s}}.dump();
  }
  // jobs/{id}
  if (path.compare(0, 5, "jobs/") == 0) {
    if (method != "POST") {
      return refuse("method_not_allowed", "", "POST /v1/agent/jobs/{id}");
    }
    auto id = path.substr(5);
    auto o = json::parse(body, nullptr, false);
    job_status status{};
    if (!o.is_object() || !o.contains("status") || !o["status"].is_string() ||
        !from_string(o["status"].get<std::string>(), status) ||
        (status != job_status::running && status != job_status::succeeded &&
         status != job_status::failed)) {
      return refuse("invalid_field", "status", "must be running, succeeded or failed");
    }
    auto str = [&](const char* k) {
      auto it = o.find(k);
      return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    int exit_code = -1;
    if (auto it = o.find("exit_code"); it != o.end() && it->is_number_integer()) {
      exit_code = it->get<int>();
    }
    const job* changed = nullptr;
    switch (st.jobs.report(m, id, status, exit_code, str("output"), str("error"), now,
                           &changed)) {
      case job_book::report_result::not_found:
        return refuse("job_not_found", "", "no job " + id + " for member " + std::to_string(m));
      case job_book::report_result::finished:
        return refuse("job_finished", "", "job " + id + " is " +
                                            to_string(st.jobs.find(id)->status));
      case job_book::report_result::accepted: break;
    }
    auto answer = json{{"status", to_string(changed->status)}}.dump();
    if (finished(changed->status)) {
      finished_job(self, *changed);
    }
    store_jobs(self, {changed});
    arm(self);
    return answer;
  }
  // replication/{run}/manifest | replication/{run}/chunks/{index}
  if (path.compare(0, 12, "replication/") == 0 && method == "POST") {
    auto rest = path.substr(12);
    auto slash = rest.find('/');
    auto run = rest.substr(0, slash);
    auto dash = run.rfind('-');
    auto account = dash == std::string::npos ? std::string() : run.substr(0, dash);
    auto it = st.account_actors.find(account);
    const auto* a = st.accounts.count(account) ? &st.accounts.at(account) : nullptr;
    if (slash == std::string::npos || it == st.account_actors.end() || a == nullptr) {
      return refuse("run_not_found", "", "no replication run " + run);
    }
    auto what = rest.substr(slash + 1);
    if (what == "manifest") {
      if (m != a->source) {
        return refuse("run_not_found", "", "run " + run + " is not member " +
                                             std::to_string(m) + "'s to package");
      }
      auto rp = self->make_response_promise<std::string>();
      return rp.delegate(it->second, manifest_atom_v, run, body);
    }
    if (what.compare(0, 7, "chunks/") == 0) {
      std::uint64_t index = 0;
      try {
        std::size_t used = 0;
        index = std::stoull(what.substr(7), &used);
        if (used != what.size() - 7) {
          throw std::invalid_argument("index");
        }
      } catch (const std::exception&) {
        return refuse("not_found", "", "no route " + path);
      }
      auto o = json::parse(body, nullptr, false);
      if (!o.is_object() || !o.contains("sha256") || !o["sha256"].is_string()) {
        return refuse("invalid_field", "sha256", "required: the chunk's SHA-256, hex");
      }
      if (m != a->source) {
        return refuse("run_not_found", "", "run " + run + " is not member " +
                                             std::to_string(m) + "'s to upload");
      }
      auto rp = self->make_response_promise<std::string>();
      self->request(it->second, caf::infinite, chunk_atom_v, run, index,
                    o["sha256"].get<std::string>())
        .then([=](bool) mutable { rp.deliver(std::string("{}")); },
              [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    }
  }
  return refuse("not_found", "", "no route /v1/agent/" + path);
}

void load_monitoring(self_ptr self, const std::vector<stored_record>& rs) {
  auto& st = self->state;
  for (const auto& r : rs) {
    if (r.id == "pool") {
      monitoring_presets p;
      if (!read_presets_json(r.body, p)) {
        st.alerts->set_presets(p);
      }
    } else if (r.id.compare(0, 7, "member:") == 0) {
      member_alert_settings s;
      member_id m = 0;
      try {
        m = std::stoull(r.id.substr(7));
      } catch (const std::exception&) {
        continue;
      }
      if (!read_member_alerts_json(r.body, s)) {
        st.alerts->set_member(m, s);
      }
    }
  }
}

caf::behavior running(self_ptr self) {
  return {
    [=](accounts_atom, const std::vector<protected_account>& as) {
      auto& st = self->state;
      std::map<std::string, protected_account> next;
      for (const auto& a : as) {
        next[a.id] = a;
      }
      for (auto it = st.account_actors.begin(); it != st.account_actors.end();) {
        if (next.count(it->first) == 0) {
          self->demonitor(it->second);
          self->send_exit(it->second, caf::exit_reason::user_shutdown);
          // Its record goes: a protected account removed has no runs.
          self->request(st.deps.store, caf::infinite, delete_records_atom_v,
                        std::string("replication"), st.pool,
                        std::vector<std::string>{it->first})
            .then([](bool) {}, [](caf::error&) {});
          it = st.account_actors.erase(it);
        } else {
          ++it;
        }
      }
      for (const auto& [id, a] : next) {
        auto it = st.account_actors.find(id);
        if (it == st.account_actors.end()) {
          spawn_account(self, a);
        } else if (to_json_text(st.accounts[id]) != to_json_text(a)) {
          self->send(it->second, put_account_atom_v, a);
        }
      }
      st.accounts = std::move(next);
    },
    // An account's DNS was cut to member `to`: its post-failover hook runs
    // there (docs/protocol.md: post_failover_hook).
    [=](cut_atom, const std::string& account, member_id to) {
      auto& st = self->state;
      auto it = st.accounts.find(account);
      if (it == st.accounts.end()) {
        return;
      }
      json p{{"pool", st.pool}, {"account", account}, {"domain", it->second.domain}};
      json j{{"member", to},
             {"kind", "post_failover_hook"},
             {"params", p.dump()},
             {"timeout_s", 600},
             {"owner", "cut:" + account}};
      (void)queue_job(self, j.dump());
      protection_note(self, st.deps, st.pool, activity_kind::replication_sync, to,
                      account + ": post-failover hook queued on member " + std::to_string(to));
      post(self, st.alerts->on_account_cut(account, it->second.domain, to, st.deps.clk->now_ms()));
    },
    // -- alerts (Monitoring) ------------------------------------------------
    [=](alert_atom, const std::string& failover_text) {
      auto& st = self->state;
      post(self, st.alerts->on_failover(failover_text, st.deps.clk->now_ms()));
    },
    [=](alert_atom, member_id m, const std::string& name, const std::string& from,
        const std::string& to) {
      auto& st = self->state;
      member_state f{}, t{};
      if (from_string(from, f) && from_string(to, t)) {
        post(self, st.alerts->on_state(m, name, f, t, st.deps.clk->now_ms()));
      }
    },
    [=](alert_atom, member_id m, const std::string& name, const member_status& s) {
      auto& st = self->state;
      post(self, st.alerts->on_status(m, name, s, st.deps.clk->now_ms()));
    },
    [=](alert_atom, const std::string& account, const std::string& text) {
      auto& st = self->state;
      post(self, st.alerts->on_replication_failed(account, text, st.deps.clk->now_ms()));
    },
    [=](monitoring_atom) -> caf::result<std::string> { return monitoring_view(self).dump(); },
    [=](monitoring_atom, const std::string& body) -> caf::result<std::string> {
      auto& st = self->state;
      auto p = st.alerts->presets();
      if (auto e = read_presets_json(body, p)) {
        return refuse(e->code, e->field, e->message);
      }
      st.alerts->set_presets(p);
      store_monitoring(self, "pool", to_json_text(p));
      protection_note(self, st.deps, st.pool, activity_kind::settings_changed, 0,
                      "monitoring presets changed");
      return monitoring_view(self).dump();
    },
    [=](monitoring_atom, member_id m) -> caf::result<std::string> {
      return member_alerts_view(self, m).dump();
    },
    [=](monitoring_atom, member_id m, const std::string& body) -> caf::result<std::string> {
      auto& st = self->state;
      const auto* cur = st.alerts->member(m);
      auto s = cur != nullptr ? *cur : member_alert_settings{};
      if (auto e = read_member_alerts_json(body, s)) {
        return refuse(e->code, e->field, e->message);
      }
      st.alerts->set_member(m, s);
      store_monitoring(self, "member:" + std::to_string(m), to_json_text(s));
      protection_note(self, st.deps, st.pool, activity_kind::settings_changed, m,
                      "member " + std::to_string(m) + "'s alert settings changed");
      return member_alerts_view(self, m).dump();
    },
    [=](remove_member_atom, member_id m) {
      auto& st = self->state;
      st.alerts->forget_member(m);
      self->request(st.deps.store, caf::infinite, delete_records_atom_v,
                    std::string("monitoring"), st.pool,
                    std::vector<std::string>{"member:" + std::to_string(m)})
        .then([](bool) {}, [](caf::error&) {});
      auto gone = st.jobs.forget_member(m);
      if (!gone.empty()) {
        self->request(st.deps.store, caf::infinite, delete_records_atom_v, std::string("job"),
                      st.pool, std::move(gone))
          .then([](bool) {}, [](caf::error&) {});
      }
    },
    [=](job_atom, const std::string& text) -> caf::result<std::string> {
      return queue_job(self, text);
    },
    [=](job_atom, caf::get_atom, const std::string& id) -> caf::result<std::string> {
      const auto* j = self->state.jobs.find(id);
      if (j == nullptr) {
        return refuse("job_not_found", "", "no job " + id + " in pool " + self->state.pool);
      }
      return job_view(*j).dump();
    },
    [=](cancel_atom, const std::string& id) -> caf::result<std::string> {
      auto& st = self->state;
      const job* changed = nullptr;
      if (!st.jobs.cancel(id, st.deps.clk->now_ms(), &changed)) {
        const auto* j = st.jobs.find(id);
        if (j == nullptr) {
          return refuse("job_not_found", "", "no job " + id + " in pool " + st.pool);
        }
        return refuse("job_finished", "", "job " + id + " is " + to_string(j->status));
      }
      auto view = job_view(*changed).dump();
      finished_job(self, *changed);
      store_jobs(self, {changed});
      return view;
    },
    [=](jobs_atom, member_id m) -> caf::result<std::string> {
      auto& st = self->state;
      auto list = json::array();
      for (const auto* j : st.jobs.list(m)) {
        list.push_back(job_view(*j));
      }
      auto c = st.jobs.count(m);
      return json{{"jobs", std::move(list)},
                  {"queued", c.queued},
                  {"running", c.running},
                  {"failed", c.failed}}
        .dump();
    },
    [=](agent_atom, member_id m, const std::string& method, const std::string& path,
        const std::string& body) -> caf::result<std::string> {
      return agent_call(self, m, method, path, body);
    },
    [=](replicate_atom, const std::string& account) -> caf::result<std::string> {
      return to_account(self, account, replicate_atom_v, std::string("manual"));
    },
    [=](replication_atom, const std::string& account) -> caf::result<std::string> {
      return to_account(self, account, replication_atom_v);
    },
    // The Protection dashboard: every account's replication, gathered.
    [=](replication_atom) -> caf::result<std::string> {
      auto& st = self->state;
      struct gather {
        json accounts = json::object();
        std::size_t waiting = 0;
      };
      auto g = std::make_shared<gather>();
      auto rp = self->make_response_promise<std::string>();
      auto c = st.jobs.count();
      auto finish = [=]() mutable {
        std::map<std::string, std::uint64_t> health;
        std::int64_t last_sync = 0;
        for (const auto& [id, v] : g->accounts.items()) {
          ++health[v.value("health", std::string("unknown"))];
          if (v["last_sync_ms"].is_number()) {
            last_sync = std::max(last_sync, v["last_sync_ms"].get<std::int64_t>());
          }
        }
        rp.deliver(json{{"protected_accounts", g->accounts.size()},
                        {"health", health},
                        {"last_sync_ms", last_sync == 0 ? json(nullptr) : json(last_sync)},
                        {"jobs", {{"queued", c.queued}, {"running", c.running}}},
                        {"accounts", g->accounts}}
                     .dump());
      };
      g->waiting = st.account_actors.size();
      if (g->waiting == 0) {
        finish();
        return rp;
      }
      for (const auto& [id, actor] : st.account_actors) {
        auto name = id;
        self->request(actor, std::chrono::seconds(5), replication_atom_v)
          .then(
            [=](const std::string& v) mutable {
              g->accounts[name] = json::parse(v, nullptr, false);
              if (--g->waiting == 0) {
                finish();
              }
            },
            [=](caf::error&) mutable {
              g->accounts[name] = {{"health", "unknown"}};
              if (--g->waiting == 0) {
                finish();
              }
            });
      }
      return rp;
    },
    [=](tick_atom) {
      auto& st = self->state;
      st.armed_ms = 0;
      auto failed = st.jobs.expire(st.deps.clk->now_ms());
      for (const auto* j : failed) {
        finished_job(self, *j);
      }
      store_jobs(self, failed);
      arm(self);
    },
  };
}

} // namespace

void protection_note(caf::event_based_actor* self, const protection_deps& deps,
                     const std::string& pool, activity_kind kind, member_id m,
                     std::string message) {
  activity_line l;
  l.at_ms = deps.clk->now_ms();
  l.member = m;
  l.kind = kind;
  l.message = std::move(message);
  self->send(deps.store, activity_atom_v, pool, std::vector<activity_line>{std::move(l)},
             static_cast<std::uint64_t>(deps.activity_keep));
}

caf::behavior protection_actor(self_ptr self, std::string pool, protection_deps deps) {
  auto& st = self->state;
  st.pool = std::move(pool);
  st.deps = std::move(deps);
  st.alerts = std::make_unique<alert_rules>(st.pool);
  // The account actors end with their protection actor (and so with the
  // pool it is linked to), whatever the reason.
  self->attach_functor([kids = st.children](const caf::error&) {
    for (const auto& k : *kids) {
      caf::anon_send_exit(k, caf::exit_reason::user_shutdown);
    }
  });
  // A crashed account actor is started again from what was stored.
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto it = st.account_actors.begin(); it != st.account_actors.end(); ++it) {
      if (it->second.address() == dm.source) {
        auto id = it->first;
        st.account_actors.erase(it);
        log::warn("account_actor_restarted", {{"pool", st.pool}, {"account", id}});
        self->request(st.deps.store, caf::infinite, records_atom_v, std::string("replication"),
                      st.pool)
          .then(
            [=](std::vector<stored_record>& rs) {
              auto& st = self->state;
              for (const auto& r : rs) {
                std::string error;
                if (auto s = replication_from_json_text(r.body, &error); s && r.id == id) {
                  st.loaded[id] = std::move(*s);
                }
              }
              if (auto a = st.accounts.find(id); a != st.accounts.end()) {
                spawn_account(self, a->second);
              }
            },
            [](caf::error&) {});
        return;
      }
    }
  });
  // Until the records are read, requests wait in the mailbox.
  self->set_default_handler(caf::skip);
  self->request(st.deps.store, caf::infinite, records_atom_v, std::string("job"), st.pool)
    .then(
      [=](std::vector<stored_record>& jobs) {
        auto& st = self->state;
        for (const auto& r : jobs) {
          std::string error;
          if (auto j = job_from_json_text(r.body, &error)) {
            st.jobs.restore(std::move(*j));
          } else {
            log::warn("job_record_skipped", {{"pool", st.pool}, {"id", r.id}, {"error", error}});
          }
        }
        self->request(st.deps.store, caf::infinite, records_atom_v,
                      std::string("replication"), st.pool)
          .then(
            [=](std::vector<stored_record>& reps) {
              auto& st = self->state;
              for (const auto& r : reps) {
                std::string error;
                if (auto s = replication_from_json_text(r.body, &error)) {
                  st.loaded[r.id] = std::move(*s);
                }
              }
              self->request(st.deps.store, caf::infinite, records_atom_v,
                            std::string("monitoring"), st.pool)
                .then(
                  [=](std::vector<stored_record>& ms) {
                    load_monitoring(self, ms);
                    self->set_default_handler(caf::print_and_drop);
                    self->become(running(self));
                    arm(self);
                  },
                  [=](caf::error&) {
                    self->set_default_handler(caf::print_and_drop);
                    self->become(running(self));
                    arm(self);
                  });
            },
            [=](caf::error& e) {
              log::error("protection_not_loaded",
                         {{"pool", self->state.pool}, {"error", self->system().render(e)}});
              self->set_default_handler(caf::print_and_drop);
              self->become(running(self));
            });
      },
      [=](caf::error& e) {
        log::error("protection_not_loaded",
                   {{"pool", self->state.pool}, {"error", self->system().render(e)}});
        self->set_default_handler(caf::print_and_drop);
        self->become(running(self));
      });
  return {[](caf::ok_atom) {}};
}

} // namespace balctl
