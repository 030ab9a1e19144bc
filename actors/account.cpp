#include "actors/account.hpp"

#include <algorithm>
#include <chrono>
#include <functional>

#include <nlohmann/json.hpp>

#include "engine/log.hpp"
#include "engine/metrics.hpp"

namespace balctl {

namespace {

using json = nlohmann::json;
using self_ptr = caf::stateful_actor<account_actor_state>*;

// Writes the replication state; done (if any) runs once the store
// answered, written or not.
void store_state(self_ptr self, std::function<void()> done = {}) {
  auto& st = self->state;
  std::vector<stored_record> rs{
    {"replication", st.pool, st.account.id, to_json_text(st.repl->state())}};
  self->request(st.deps.store, caf::infinite, put_records_atom_v, std::move(rs))
    .then(
      [=](bool) {
        if (done) {
          done();
        }
      },
      [=](caf::error& e) {
        log::warn("replication_not_stored", {{"pool", self->state.pool},
                                             {"account", self->state.account.id},
                                             {"error", self->system().render(e)}});
        if (done) {
          done();
        }
      });
}

void arm(self_ptr self) {
  auto& st = self->state;
  auto next = st.repl->next_deadline_ms();
  if (!next || (st.armed_ms != 0 && st.armed_ms <= *next)) {
    return;
  }
  st.armed_ms = *next;
  auto delay = std::max<std::int64_t>(0, *next - st.deps.clk->now_ms());
  self->delayed_send(self, std::chrono::milliseconds(delay), tick_atom_v);
}

// A restore job's chunks get their URLs when it is queued (they expire).
void presign_restore(const protection_deps& deps, job& j) {
  auto params = json::parse(j.params, nullptr, false);
  if (!params.is_object() || !deps.presign) {
    return;
  }
  for (auto& c : params["chunks"]) {
    auto key = c.value("key", std::string());
    c["url"] = deps.presign("GET", key);
    c["delete_url"] = deps.presign("DELETE", key);
    c.erase("key");
  }
  j.params = params.dump();
}

// Adds what the replication's history counters gained since last time to
// the engine's /metrics counters.
void count(self_ptr self) {
  auto& st = self->state;
  auto* m = st.deps.metrics;
  const auto& rs = st.repl->state();
  if (m != nullptr) {
    m->replication_runs_ok += rs.runs_ok - std::min(rs.runs_ok, st.counted_ok);
    m->replication_runs_failed += rs.runs_failed - std::min(rs.runs_failed, st.counted_failed);
    m->replication_starts_skipped +=
      rs.starts_skipped - std::min(rs.starts_skipped, st.counted_skipped);
  }
  st.counted_ok = rs.runs_ok;
  st.counted_failed = rs.runs_failed;
  st.counted_skipped = rs.starts_skipped;
}

std::size_t chunks_stored(const replication_state& rs) {
  return static_cast<std::size_t>(
    std::count_if(rs.chunks.begin(), rs.chunks.end(), [](const chunk_info& c) { return c.stored; }));
}

// Carries out a step's effects; stored (if any) runs once its state is
// in the store (at once when the step changed nothing).
void apply(self_ptr self, replication_effects fx, std::function<void()> stored = {}) {
  auto& st = self->state;
  // A failure ends the run before anything that follows it in the same
  // step (a waiting start taken at once).
  for (auto& line : fx.failures) {
    log::warn("replication_failed", {{"pool", st.pool}, {"account", st.account.id},
                                     {"event", line}});
    self->send(st.protection, alert_atom_v, st.account.id, line);
    protection_note(self, st.deps, st.pool, activity_kind::replication_failed,
                    st.account.source, std::move(line));
  }
  for (auto [lines, kind] : {std::pair{&fx.log, activity_kind::replication_sync},
                             std::pair{&fx.transfer, activity_kind::replication_transfer}}) {
    for (auto& line : *lines) {
      log::info("replication", {{"pool", st.pool}, {"account", st.account.id}, {"event", line}});
      protection_note(self, st.deps, st.pool, kind, st.account.source, std::move(line));
    }
  }
  if (!fx.delete_keys.empty() && st.deps.remove_chunks) {
    st.deps.remove_chunks(std::move(fx.delete_keys));
  }
  if (fx.queue) {
    auto j = std::move(*fx.queue);
    if (j.kind == "replicate_restore") {
      presign_restore(st.deps, j);
    }
    auto run = st.repl->state().run;
    self->request(st.protection, caf::infinite, job_atom_v, to_json_text(j))
      .then(
        [=](const std::string& queued) {
          auto& st = self->state;
          auto o = json::parse(queued, nullptr, false);
          if (o.is_object() && st.repl->state().run == run) {
            st.repl->set_job(o.value("id", std::string()));
            store_state(self);
          }
        },
        [=](caf::error& e) {
          log::error("replication_job_not_queued", {{"pool", self->state.pool},
                                                    {"account", self->state.account.id},
                                                    {"error", self->system().render(e)}});
        });
  }
  if (fx.changed) {
    store_state(self, std::move(stored));
  } else if (stored) {
    stored();
  }
  count(self);
  arm(self);
}

} // namespace

std::string replication_view_json(const replication& r, const protected_account& a,
                                  std::int64_t now_ms) {
  const auto& s = r.state();
  std::size_t stored = 0;
  for (const auto& c : s.chunks) {
    stored += c.stored ? 1 : 0;
  }
  auto ms = [](std::int64_t v) { return v == 0 ? json(nullptr) : json(v); };
  json o{{"health", r.health(a, now_ms)},
         {"phase", to_string(s.phase)},
         {"run", s.run.empty() ? json(nullptr) : json(s.run)},
         {"trigger", s.trigger},
         {"attempts", s.attempts},
         {"chunks", s.chunks.size()},
         {"chunks_stored", stored},
         {"bytes", s.size},
         {"job", s.job.empty() ? json(nullptr) : json(s.job)},
         {"run_started_ms", ms(s.run_started_ms)},
         {"last_sync_ms", ms(s.last_sync_ms)},
         {"last_duration_ms", ms(s.last_duration_ms)},
         {"last_failure_ms", ms(s.last_failure_ms)},
         {"last_error", s.last_error},
         {"next_due_ms", ms(s.next_due_ms)},
         {"retry_at_ms", ms(s.retry_at_ms)},
         {"waiting", s.waiting},
         {"runs_ok", s.runs_ok},
         {"runs_failed", s.runs_failed},
         {"starts_skipped", s.starts_skipped},
         {"every_s", a.replication_every_s},
         {"overlap", a.replication_overlap}};
  return o.dump();
}

caf::behavior account_actor(self_ptr self, std::string pool, protected_account a,
                            replication_state s, protection_deps deps, caf::actor protection) {
  auto& st = self->state;
  st.pool = pool;
  st.account = std::move(a);
  s.account = st.account.id;
  st.repl = std::make_unique<replication>(pool, std::move(s), deps.chunk_size);
  st.deps = std::move(deps);
  st.protection = std::move(protection);
  // What the stored history already counts is not counted again.
  st.counted_ok = st.repl->state().runs_ok;
  st.counted_failed = st.repl->state().runs_failed;
  st.counted_skipped = st.repl->state().starts_skipped;
  apply(self, st.repl->configure(st.account, st.deps.clk->now_ms()));
  return {
    [=](put_account_atom, const protected_account& changed) {
      auto& st = self->state;
      st.account = changed;
      apply(self, st.repl->configure(st.account, st.deps.clk->now_ms()));
    },
    [=](tick_atom) {
      auto& st = self->state;
      st.armed_ms = 0;
      auto now = st.deps.clk->now_ms();
      const auto& rs = st.repl->state();
      bool due = (rs.next_due_ms != 0 && now >= rs.next_due_ms) ||
                 (rs.retry_at_ms != 0 && now >= rs.retry_at_ms);
      if (due && st.deps.has_cpanel &&
          (!st.deps.has_cpanel(st.account.source) || !st.deps.has_cpanel(st.account.standby))) {
        // Not skipped silently: the schedule moves on and the log says why.
        apply(self, st.repl->skip_due(st.account,
                                      "member " + std::to_string(st.account.source) + " or " +
                                        std::to_string(st.account.standby) +
                                        " does not report cPanel",
                                      now));
        return;
      }
      apply(self, st.repl->tick(st.account, now));
    },
    [=](replicate_atom, const std::string& trigger) -> caf::result<std::string> {
      auto& st = self->state;
      if (st.deps.has_cpanel) {
        for (auto m : {st.account.source, st.account.standby}) {
          if (!st.deps.has_cpanel(m)) {
            return refuse("not_applicable", "",
                          "member " + std::to_string(m) +
                            " does not report cPanel: replication needs cPanel on the "
                            "source and the standby");
          }
        }
      }
      auto fx = st.repl->start(st.account, trigger, st.deps.clk->now_ms());
      bool started = fx.queue.has_value();
      std::string said = fx.log.empty() ? "" : fx.log.front();
      apply(self, std::move(fx));
      if (!started) {
        return refuse("replication_running", "", said);
      }
      return replication_view_json(*st.repl, st.account, st.deps.clk->now_ms());
    },
    [=](manifest_atom, const std::string& run,
        const std::string& body) -> caf::result<std::string> {
      auto& st = self->state;
      auto o = json::parse(body, nullptr, false);
      if (!o.is_object()) {
        return refuse("invalid_body", "", "the manifest must be a JSON object");
      }
      replication::manifest m;
      try {
        m.size = o.at("size").get<std::int64_t>();
        m.chunk_size = o.at("chunk_size").get<std::int64_t>();
        m.sha256 = o.at("sha256").get<std::string>();
        const auto& cs = o.at("chunks");
        for (std::size_t i = 0; i < cs.size(); ++i) {
          if (cs[i].value("index", std::size_t{i}) != i) {
            return refuse("invalid_field", "chunks[" + std::to_string(i) + "].index",
                          "chunks must be listed in index order from 0");
          }
          m.chunks.push_back({cs[i].at("size").get<std::int64_t>(),
                              cs[i].at("sha256").get<std::string>(), false});
        }
      } catch (const json::exception&) {
        return refuse("invalid_body", "",
                      "a manifest has size, chunk_size, sha256 and chunks[{index,size,sha256}]");
      }
      std::string why;
      replication_effects fx;
      auto want = st.repl->on_manifest(run, std::move(m), &why, fx);
      if (!want) {
        return refuse("run_conflict", "", why);
      }
      auto upload = json::array();
      for (auto i : *want) {
        upload.push_back({{"index", i},
                          {"method", "PUT"},
                          {"url", st.deps.presign ? st.deps.presign("PUT", st.repl->chunk_key(i))
                                                  : std::string()}});
      }
      apply(self, std::move(fx));
      return json{{"upload", std::move(upload)}}.dump();
    },
    [=](chunk_atom, const std::string& run, std::uint64_t index,
        const std::string& sha256) -> caf::result<bool> {
      auto& st = self->state;
      std::string why;
      replication_effects fx;
      auto before = chunks_stored(st.repl->state());
      if (!st.repl->on_chunk(run, index, sha256, &why, fx)) {
        return refuse("run_conflict", "", why);
      }
      if (auto* m = st.deps.metrics; m != nullptr) {
        auto after = chunks_stored(st.repl->state());
        m->replication_chunks_stored += after > before ? after - before : 0;
      }
      // The agent hears "stored" once the store has it: an engine killed
      // after the answer resumes with this chunk.
      auto rp = self->make_response_promise<bool>();
      apply(self, std::move(fx), [rp]() mutable { rp.deliver(true); });
      return rp;
    },
    [=](job_done_atom, const std::string& job_text) {
      auto& st = self->state;
      std::string error;
      auto j = job_from_json_text(job_text, &error);
      if (!j) {
        return;
      }
      apply(self, st.repl->on_job(*j, st.account, st.deps.clk->now_ms()));
    },
    [=](replication_atom) -> caf::result<std::string> {
      auto& st = self->state;
      return replication_view_json(*st.repl, st.account, st.deps.clk->now_ms());
    },
  };
}

} // namespace balctl
