#include "engine/replication.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace balctl {

namespace {

using json = nlohmann::json;

constexpr const char* phase_names[] = {"idle", "packaging", "restoring", "failed"};

bool is_hex_sha256(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string seconds(std::int64_t ms) {
  return std::to_string((ms + 500) / 1000) + " s";
}

} // namespace

const char* to_string(replication_phase p) { return phase_names[static_cast<int>(p)]; }

std::string to_json_text(const replication_state& s) {
  auto chunks = json::array();
  for (const auto& c : s.chunks) {
    chunks.push_back({{"size", c.size}, {"sha256", c.sha256}, {"stored", c.stored}});
  }
  json o{{"account", s.account},
         {"run", s.run},
         {"phase", to_string(s.phase)},
         {"trigger", s.trigger},
         {"run_started_ms", s.run_started_ms},
         {"run_created_ms", s.run_created_ms},
         {"source", s.source},
         {"standby", s.standby},
         {"job", s.job},
         {"attempts", s.attempts},
         {"size", s.size},
         {"chunk_size", s.chunk_size},
         {"sha256", s.sha256},
         {"chunks", std::move(chunks)},
         {"last_sync_ms", s.last_sync_ms},
         {"last_duration_ms", s.last_duration_ms},
         {"last_failure_ms", s.last_failure_ms},
         {"last_error", s.last_error},
         {"runs_ok", s.runs_ok},
         {"runs_failed", s.runs_failed},
         {"starts_skipped", s.starts_skipped},
         {"next_due_ms", s.next_due_ms},
         {"retry_at_ms", s.retry_at_ms},
         {"waiting", s.waiting},
         {"runs_started", s.runs_started}};
  return o.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<replication_state> replication_from_json_text(const std::string& text,
                                                            std::string* error) {
  auto o = json::parse(text, nullptr, false);
  if (!o.is_object()) {
    *error = "not a JSON object";
    return std::nullopt;
  }
  try {
    replication_state s;
    s.account = o.at("account").get<std::string>();
    s.run = o.value("run", std::string());
    auto phase = o.value("phase", std::string("idle"));
    auto it = std::find(std::begin(phase_names), std::end(phase_names), phase);
    if (it == std::end(phase_names)) {
      *error = "unknown phase " + phase;
      return std::nullopt;
    }
    s.phase = static_cast<replication_phase>(it - std::begin(phase_names));
    s.trigger = o.value("trigger", std::string());
    s.run_started_ms = o.value("run_started_ms", std::int64_t{0});
    s.run_created_ms = o.value("run_created_ms", std::int64_t{0});
    s.source = o.value("source", member_id{0});
    s.standby = o.value("standby", member_id{0});
    s.job = o.value("job", std::string());
    s.attempts = o.value("attempts", 0);
    s.size = o.value("size", std::int64_t{0});
    s.chunk_size = o.value("chunk_size", std::int64_t{0});
    s.sha256 = o.value("sha256", std::string());
    for (const auto& c : o.value("chunks", json::array())) {
      s.chunks.push_back({c.value("size", std::int64_t{0}), c.value("sha256", std::string()),
                          c.value("stored", false)});
    }
    s.last_sync_ms = o.value("last_sync_ms", std::int64_t{0});
    s.last_duration_ms = o.value("last_duration_ms", std::int64_t{0});
    s.last_failure_ms = o.value("last_failure_ms", std::int64_t{0});
    s.last_error = o.value("last_error", std::string());
    s.runs_ok = o.value("runs_ok", std::uint64_t{0});
    s.runs_failed = o.value("runs_failed", std::uint64_t{0});
    s.starts_skipped = o.value("starts_skipped", std::uint64_t{0});
    s.next_due_ms = o.value("next_due_ms", std::int64_t{0});
    s.retry_at_ms = o.value("retry_at_ms", std::int64_t{0});
    s.waiting = o.value("waiting", false);
    s.runs_started = o.value("runs_started", std::uint64_t{0});
    return s;
  } catch (const json::exception& e) {
    *error = e.what();
    return std::nullopt;
  }
}

std::string replication::chunk_key(std::size_t index) const {
  return pool_ + "/" + s_.run + "/" + std::to_string(index);
}

replication_effects replication::configure(const protected_account& a, std::int64_t now_ms) {
  replication_effects fx;
  std::int64_t every = std::int64_t{a.replication_every_s} * 1000;
  std::int64_t want = 0;
  if (every > 0) {
    std::int64_t from = s_.last_sync_ms != 0 ? s_.last_sync_ms : now_ms;
    want = std::max(from + every, now_ms);
    if (s_.next_due_ms != 0 && s_.next_due_ms <= want) {
      want = std::max(s_.next_due_ms, now_ms);
    }
  }
  if (want != s_.next_due_ms) {
    s_.next_due_ms = want;
    fx.changed = true;
  }
  return fx;
}

void replication::begin(const protected_account& a, const std::string& trigger,
                        std::int64_t now_ms, replication_effects& fx) {
  bool resume = s_.phase == replication_phase::failed && !s_.run.empty() &&
                s_.source == a.source && s_.standby == a.standby &&
                now_ms - s_.run_created_ms < max_resume_age_ms;
  if (!resume) {
    if (!s_.run.empty()) {
      for (std::size_t i = 0; i < s_.chunks.size(); ++i) {
        if (s_.chunks[i].stored) {
          fx.delete_keys.push_back(chunk_key(i));
        }
      }
    }
    s_.run = a.id + "-" + std::to_string(++s_.runs_started);
    s_.run_created_ms = now_ms;
    s_.attempts = 0;
    s_.size = s_.chunk_size = 0;
    s_.sha256.clear();
    s_.chunks.clear();
    s_.source = a.source;
    s_.standby = a.standby;
  }
  ++s_.attempts;
  s_.trigger = trigger;
  s_.run_started_ms = now_ms;
  s_.retry_at_ms = 0;
  s_.waiting = false;
  fx.changed = true;
  bool stored_all = !s_.chunks.empty() &&
                    std::all_of(s_.chunks.begin(), s_.chunks.end(),
                                [](const chunk_info& c) { return c.stored; });
  if (resume && stored_all) {
    // Every chunk is stored already: only the restore is left to do.
    fx.log.push_back(a.id + ": sync resumed (" + trigger + "), run " + s_.run +
                     ": every chunk stored, restoring on member " +
                     std::to_string(s_.standby));
    queue_restore(now_ms, fx);
    return;
  }
  s_.phase = replication_phase::packaging;
  job j;
  j.member = s_.source;
  j.kind = "replicate_package";
  j.owner = "account:" + a.id;
  j.timeout_s = package_timeout_s;
  j.params = json{{"run", s_.run}, {"account", a.id}, {"chunk_size", chunk_size_}}.dump();
  fx.queue = std::move(j);
  fx.log.push_back(a.id + ": sync " + (resume ? "resumed" : "started") + " (" + trigger +
                   "), run " + s_.run + ": packaging on member " + std::to_string(s_.source));
}

replication_effects replication::start(const protected_account& a, const std::string& trigger,
                                       std::int64_t now_ms) {
  replication_effects fx;
  if (running()) {
    if (a.replication_overlap == "wait" && trigger == "schedule") {
      if (!s_.waiting) {
        s_.waiting = true;
        fx.changed = true;
        fx.log.push_back(a.id + ": scheduled sync waits: run " + s_.run + " still " +
                         to_string(s_.phase) + " since " + seconds(now_ms - s_.run_started_ms) +
                         " ago");
      }
    } else {
      ++s_.starts_skipped;
      fx.changed = true;
      fx.log.push_back(a.id + ": " + trigger + " sync skipped: run " + s_.run + " still " +
                       to_string(s_.phase) + " (started " + seconds(now_ms - s_.run_started_ms) +
                       " ago)");
    }
    return fx;
  }
  begin(a, trigger, now_ms, fx);
  return fx;
}

replication_effects replication::tick(const protected_account& a, std::int64_t now_ms) {
  replication_effects fx;
  if (s_.next_due_ms != 0 && now_ms >= s_.next_due_ms) {
    std::int64_t every = std::int64_t{a.replication_every_s} * 1000;
    // The next start follows the schedule, never in a burst after a pause.
    s_.next_due_ms = every > 0 ? std::max(s_.next_due_ms + every, now_ms + 1000) : 0;
    fx = start(a, "schedule", now_ms);
    fx.changed = true;
    return fx;
  }
  if (s_.retry_at_ms != 0 && now_ms >= s_.retry_at_ms && !running()) {
    begin(a, "retry", now_ms, fx);
  }
  return fx;
}

replication_effects replication::skip_due(const protected_account& a, const std::string& why,
                                          std::int64_t now_ms) {
  replication_effects fx;
  std::int64_t every = std::int64_t{a.replication_every_s} * 1000;
  s_.next_due_ms = every > 0 ? std::max(s_.next_due_ms + every, now_ms + 1000) : 0;
  s_.retry_at_ms = 0;
  ++s_.starts_skipped;
  fx.changed = true;
  fx.failures.push_back(a.id + ": sync not started: " + why);
  return fx;
}

std::optional<std::int64_t> replication::next_deadline_ms() const {
  std::optional<std::int64_t> out;
  for (auto at : {s_.next_due_ms, s_.retry_at_ms}) {
    if (at != 0 && (!out || at < *out)) {
      out = at;
    }
  }
  return out;
}

std::optional<std::vector<std::size_t>> replication::on_manifest(const std::string& run,
                                                                 manifest m, std::string* why,
                                                                 replication_effects& fx) {
  if (run != s_.run || s_.phase != replication_phase::packaging) {
    *why = "run " + run + " is not packaging";
    return std::nullopt;
  }
  if (m.chunk_size <= 0 || m.size < 0 || !is_hex_sha256(m.sha256) || m.chunks.empty() ||
      m.chunks.size() > 100000) {
    *why = "size, chunk_size, sha256 and 1 to 100000 chunks are required";
    return std::nullopt;
  }
  std::int64_t total = 0;
  for (std::size_t i = 0; i < m.chunks.size(); ++i) {
    const auto& c = m.chunks[i];
    bool last = i + 1 == m.chunks.size();
    if (!is_hex_sha256(c.sha256) || c.size <= 0 || c.size > m.chunk_size ||
        (!last && c.size != m.chunk_size)) {
      *why = "chunks[" + std::to_string(i) + "]: size or sha256 is wrong";
      return std::nullopt;
    }
    total += c.size;
  }
  if (total != m.size) {
    *why = "the chunks' sizes do not add up to size";
    return std::nullopt;
  }
  if (m.sha256 != s_.sha256 || m.chunk_size != s_.chunk_size ||
      m.chunks.size() != s_.chunks.size()) {
    // Another package (or the first manifest): what was stored is not it.
    for (std::size_t i = 0; i < s_.chunks.size(); ++i) {
      if (s_.chunks[i].stored) {
        fx.delete_keys.push_back(chunk_key(i));
      }
    }
    s_.size = m.size;
    s_.chunk_size = m.chunk_size;
    s_.sha256 = m.sha256;
    s_.chunks = std::move(m.chunks);
    for (auto& c : s_.chunks) {
      c.stored = false;
    }
  } else {
    for (std::size_t i = 0; i < s_.chunks.size(); ++i) {
      if (s_.chunks[i].sha256 != m.chunks[i].sha256) {
        s_.chunks[i] = m.chunks[i];
        s_.chunks[i].stored = false;
      }
    }
  }
  fx.changed = true;
  std::vector<std::size_t> want;
  for (std::size_t i = 0; i < s_.chunks.size(); ++i) {
    if (!s_.chunks[i].stored) {
      want.push_back(i);
    }
  }
  fx.transfer.push_back(s_.account + ": transfer of run " + s_.run + ": " +
                   std::to_string(s_.size) + " bytes in " + std::to_string(s_.chunks.size()) +
                   " chunks, " + std::to_string(want.size()) + " to upload");
  return want;
}

bool replication::on_chunk(const std::string& run, std::size_t index, const std::string& sha256,
                           std::string* why, replication_effects& fx) {
  if (run != s_.run || s_.phase != replication_phase::packaging) {
    *why = "run " + run + " is not packaging";
    return false;
  }
  if (index >= s_.chunks.size()) {
    *why = "no chunk " + std::to_string(index) + " in the manifest";
    return false;
  }
  if (s_.chunks[index].sha256 != sha256) {
    *why = "chunk " + std::to_string(index) + " has another sha256 in the manifest";
    return false;
  }
  if (!s_.chunks[index].stored) {
    s_.chunks[index].stored = true;
    fx.changed = true;
  }
  return true;
}

void replication::queue_restore(std::int64_t /*now_ms*/, replication_effects& fx) {
  s_.phase = replication_phase::restoring;
  auto chunks = json::array();
  for (std::size_t i = 0; i < s_.chunks.size(); ++i) {
    chunks.push_back({{"index", i},
                      {"size", s_.chunks[i].size},
                      {"sha256", s_.chunks[i].sha256},
                      {"key", chunk_key(i)}});
  }
  job j;
  j.member = s_.standby;
  j.kind = "replicate_restore";
  j.owner = "account:" + s_.account;
  j.timeout_s = restore_timeout_s;
  j.params = json{{"run", s_.run},
                  {"account", s_.account},
                  {"size", s_.size},
                  {"sha256", s_.sha256},
                  {"chunks", std::move(chunks)}}
               .dump();
  fx.queue = std::move(j);
  fx.changed = true;
}

void replication::fail(const std::string& why, std::int64_t now_ms, replication_effects& fx) {
  s_.phase = replication_phase::failed;
  s_.job.clear();
  s_.last_failure_ms = now_ms;
  s_.last_error = why;
  ++s_.runs_failed;
  fx.changed = true;
  std::string line = s_.account + ": run " + s_.run + " failed (attempt " +
                     std::to_string(s_.attempts) + "): " + why;
  if (s_.attempts < max_attempts) {
    std::int64_t wait = first_retry_ms;
    for (int i = 1; i < s_.attempts && wait < max_retry_ms; ++i) {
      wait *= 2;
    }
    wait = std::min(wait, max_retry_ms);
    s_.retry_at_ms = now_ms + wait;
    line += "; retried in " + seconds(wait) + ", resuming from the chunks stored";
  } else {
    s_.retry_at_ms = 0;
    line += "; no more retries before the next scheduled sync";
  }
  fx.failures.push_back(std::move(line));
}

void replication::finish_ok(const protected_account& a, std::int64_t now_ms,
                            replication_effects& fx) {
  for (std::size_t i = 0; i < s_.chunks.size(); ++i) {
    fx.delete_keys.push_back(chunk_key(i));
  }
  s_.last_duration_ms = now_ms - s_.run_created_ms;
  s_.last_sync_ms = now_ms;
  s_.last_error.clear();
  ++s_.runs_ok;
  fx.log.push_back(a.id + ": sync done, run " + s_.run + ": " + std::to_string(s_.size) +
                   " bytes restored on member " + std::to_string(s_.standby) + " in " +
                   seconds(s_.last_duration_ms));
  s_.phase = replication_phase::idle;
  s_.run.clear();
  s_.job.clear();
  s_.chunks.clear();
  s_.attempts = 0;
  s_.retry_at_ms = 0;
  fx.changed = true;
}

replication_effects replication::on_job(const job& j, const protected_account& a,
                                        std::int64_t now_ms) {
  replication_effects fx;
  if (j.id != s_.job || !finished(j.status)) {
    return fx;
  }
  bool ok = j.status == job_status::succeeded;
  std::string why = j.status == job_status::cancelled ? "cancelled"
                    : !j.error.empty()                ? j.error
                                                      : "exit code " + std::to_string(j.exit_code);
  if (s_.phase == replication_phase::packaging) {
    if (!ok) {
      fail("packaging on member " + std::to_string(s_.source) + ": " + why, now_ms, fx);
    } else if (s_.chunks.empty() ||
               !std::all_of(s_.chunks.begin(), s_.chunks.end(),
                            [](const chunk_info& c) { return c.stored; })) {
      fail("the package job ended with chunks not stored", now_ms, fx);
    } else {
      fx.transfer.push_back(a.id + ": transfer of run " + s_.run + " stored (" +
                       std::to_string(s_.chunks.size()) + " chunks); restoring on member " +
                       std::to_string(s_.standby));
      queue_restore(now_ms, fx);
    }
  } else if (s_.phase == replication_phase::restoring) {
    if (!ok) {
      fail("restore on member " + std::to_string(s_.standby) + ": " + why, now_ms, fx);
    } else {
      finish_ok(a, now_ms, fx);
    }
  }
  if (!running() && s_.waiting) {
    // A start waited for this run: taken now (a failed run resumes).
    s_.waiting = false;
    replication_effects next;
    begin(a, "schedule", now_ms, next);
    for (auto& l : next.log) {
      fx.log.push_back(std::move(l));
    }
    for (auto& k : next.delete_keys) {
      fx.delete_keys.push_back(std::move(k));
    }
    fx.queue = std::move(next.queue);
    fx.changed = true;
  }
  return fx;
}

std::string replication::health(const protected_account& a, std::int64_t now_ms) const {
  if (running()) {
    return "running";
  }
  if (s_.phase == replication_phase::failed) {
    return "failing";
  }
  if (s_.last_sync_ms == 0) {
    return a.replication_every_s == 0 ? "manual" : "never";
  }
  if (a.replication_every_s > 0 &&
      now_ms - s_.last_sync_ms > 2 * std::int64_t{a.replication_every_s} * 1000) {
    return "stale";
  }
  return "healthy";
}

} // namespace balctl
