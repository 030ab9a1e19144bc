#include "engine/jobs.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace balctl {

namespace {

using json = nlohmann::json;

constexpr const char* status_names[] = {"queued",    "dispatched", "running",
                                        "succeeded", "failed",     "cancelled"};

std::uint64_t number_of(const std::string& id) {
  if (id.size() < 3 || id.compare(0, 2, "j-") != 0) {
    return 0;
  }
  try {
    return std::stoull(id.substr(2));
  } catch (const std::exception&) {
    return 0;
  }
}

// Oldest first: by creation, then by number (ids are given in order).
bool older(const job* a, const job* b) {
  if (a->created_ms != b->created_ms) {
    return a->created_ms < b->created_ms;
  }
  return number_of(a->id) < number_of(b->id);
}

} // namespace

const char* to_string(job_status s) { return status_names[static_cast<int>(s)]; }

bool from_string(const std::string& s, job_status& out) {
  for (int i = 0; i < 6; ++i) {
    if (s == status_names[i]) {
      out = static_cast<job_status>(i);
      return true;
    }
  }
  return false;
}

std::string output_tail(std::string text, std::size_t max) {
  if (text.size() <= max) {
    return text;
  }
  std::size_t from = text.size() - max;
  // Skip continuation bytes so the tail starts on a character.
  while (from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) {
    ++from;
  }
  return text.substr(from);
}

std::string to_json_text(const job& j) {
  json o{{"id", j.id},
         {"member", j.member},
         {"kind", j.kind},
         {"params", j.params},
         {"timeout_s", j.timeout_s},
         {"owner", j.owner},
         {"requested_by", j.requested_by},
         {"status", to_string(j.status)},
         {"created_ms", j.created_ms},
         {"dispatched_ms", j.dispatched_ms},
         {"started_ms", j.started_ms},
         {"finished_ms", j.finished_ms},
         {"exit_code", j.exit_code},
         {"output", j.output},
         {"error", j.error}};
  return o.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<job> job_from_json_text(const std::string& text, std::string* error) {
  auto o = json::parse(text, nullptr, false);
  if (!o.is_object()) {
    *error = "not a JSON object";
    return std::nullopt;
  }
  try {
    job j;
    j.id = o.at("id").get<std::string>();
    j.member = o.at("member").get<member_id>();
    j.kind = o.at("kind").get<std::string>();
    j.params = o.value("params", std::string("{}"));
    j.timeout_s = o.value("timeout_s", 3600);
    j.owner = o.value("owner", std::string());
    j.requested_by = o.value("requested_by", std::string());
    if (!from_string(o.at("status").get<std::string>(), j.status)) {
      *error = "unknown status";
      return std::nullopt;
    }
    j.created_ms = o.value("created_ms", std::int64_t{0});
    j.dispatched_ms = o.value("dispatched_ms", std::int64_t{0});
    j.started_ms = o.value("started_ms", std::int64_t{0});
    j.finished_ms = o.value("finished_ms", std::int64_t{0});
    j.exit_code = o.value("exit_code", -1);
    j.output = o.value("output", std::string());
    j.error = o.value("error", std::string());
    if (number_of(j.id) == 0 || j.member == 0) {
      *error = "bad id or member";
      return std::nullopt;
    }
    return j;
  } catch (const json::exception& e) {
    *error = e.what();
    return std::nullopt;
  }
}

std::string agent_job_json(const job& j) {
  auto params = json::parse(j.params, nullptr, false);
  if (!params.is_object()) {
    params = json::object();
  }
  json o{{"id", j.id},
         {"kind", j.kind},
         {"created_ms", j.created_ms},
         {"timeout_s", j.timeout_s},
         {"params", std::move(params)}};
  return o.dump();
}

std::string job_book::next_id() { return "j-" + std::to_string(next_++); }

const job& job_book::queue(job j, std::int64_t now_ms) {
  j.id = next_id();
  j.status = job_status::queued;
  j.created_ms = now_ms;
  j.dispatched_ms = j.started_ms = j.finished_ms = 0;
  j.exit_code = -1;
  j.output.clear();
  j.error.clear();
  auto id = j.id;
  return jobs_[id] = std::move(j);
}

void job_book::restore(job j) {
  next_ = std::max(next_, number_of(j.id) + 1);
  auto id = j.id;
  jobs_[id] = std::move(j);
}

std::vector<const job*> job_book::fetch(member_id m, std::int64_t now_ms) {
  std::vector<job*> ready;
  for (auto& [id, j] : jobs_) {
    if (j.member != m) {
      continue;
    }
    if (j.status == job_status::queued ||
        (j.status == job_status::dispatched && now_ms - j.dispatched_ms >= redispatch_ms)) {
      ready.push_back(&j);
    }
  }
  std::sort(ready.begin(), ready.end(), older);
  if (ready.size() > max_fetch) {
    ready.resize(max_fetch);
  }
  std::vector<const job*> out;
  for (auto* j : ready) {
    j->status = job_status::dispatched;
    j->dispatched_ms = now_ms;
    out.push_back(j);
  }
  return out;
}

job_book::report_result job_book::report(member_id m, const std::string& id, job_status status,
                                         int exit_code, std::string output, std::string error,
                                         std::int64_t now_ms, const job** changed) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.member != m) {
    return report_result::not_found;
  }
  auto& j = it->second;
  if (finished(j.status)) {
    return report_result::finished;
  }
  if (status == job_status::running) {
    j.status = job_status::running;
    if (j.started_ms == 0) {
      j.started_ms = now_ms;
    }
  } else {
    j.status = status;
    if (j.started_ms == 0) {
      j.started_ms = now_ms;
    }
    j.finished_ms = now_ms;
    j.exit_code = exit_code;
    j.output = output_tail(std::move(output), max_output);
    j.error = output_tail(std::move(error), 1024);
  }
  if (changed != nullptr) {
    *changed = &j;
  }
  return report_result::accepted;
}

bool job_book::cancel(const std::string& id, std::int64_t now_ms, const job** changed) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || finished(it->second.status)) {
    return false;
  }
  auto& j = it->second;
  j.status = job_status::cancelled;
  j.finished_ms = now_ms;
  if (changed != nullptr) {
    *changed = &j;
  }
  return true;
}

namespace {

std::int64_t expiry_ms(const job& j) {
  std::int64_t from = j.started_ms != 0 ? j.started_ms : j.dispatched_ms;
  return from + std::int64_t{j.timeout_s} * 1000 + job_book::report_grace_ms;
}

bool out_with_agent(const job& j) {
  return j.status == job_status::dispatched || j.status == job_status::running;
}

} // namespace

std::vector<const job*> job_book::expire(std::int64_t now_ms) {
  std::vector<const job*> out;
  for (auto& [id, j] : jobs_) {
    if (out_with_agent(j) && now_ms >= expiry_ms(j)) {
      j.status = job_status::failed;
      j.finished_ms = now_ms;
      j.error = "no report from the agent within the job's timeout";
      out.push_back(&j);
    }
  }
  return out;
}

std::optional<std::int64_t> job_book::next_deadline_ms() const {
  std::optional<std::int64_t> out;
  for (const auto& [id, j] : jobs_) {
    if (out_with_agent(j)) {
      auto at = expiry_ms(j);
      if (!out || at < *out) {
        out = at;
      }
    }
  }
  return out;
}

std::vector<std::string> job_book::prune() {
  std::unordered_map<member_id, std::vector<const job*>> done;
  for (const auto& [id, j] : jobs_) {
    if (finished(j.status)) {
      done[j.member].push_back(&j);
    }
  }
  std::vector<std::string> out;
  for (auto& [m, list] : done) {
    if (list.size() <= keep_finished_) {
      continue;
    }
    std::sort(list.begin(), list.end(), [](const job* a, const job* b) {
      return a->finished_ms != b->finished_ms ? a->finished_ms < b->finished_ms
                                              : older(a, b);
    });
    for (std::size_t i = 0; i + keep_finished_ < list.size(); ++i) {
      out.push_back(list[i]->id);
    }
  }
  for (const auto& id : out) {
    jobs_.erase(id);
  }
  return out;
}

std::vector<std::string> job_book::forget_member(member_id m) {
  std::vector<std::string> out;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second.member == m) {
      out.push_back(it->first);
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

const job* job_book::find(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::vector<const job*> job_book::list(member_id m) const {
  std::vector<const job*> out;
  for (const auto& [id, j] : jobs_) {
    if (m == 0 || j.member == m) {
      out.push_back(&j);
    }
  }
  std::sort(out.begin(), out.end(), [](const job* a, const job* b) { return older(b, a); });
  return out;
}

job_book::counts job_book::count(member_id m) const {
  counts c;
  for (const auto& [id, j] : jobs_) {
    if (m != 0 && j.member != m) {
      continue;
    }
    if (j.status == job_status::queued) {
      ++c.queued;
    } else if (out_with_agent(j)) {
      ++c.running;
    } else if (j.status == job_status::failed) {
      ++c.failed;
    }
  }
  return c;
}

} // namespace balctl
