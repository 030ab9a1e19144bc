#include "agent/job_loop.hpp"

#include <chrono>
#include <random>

#include "agent/backoff.hpp"
#include "engine/log.hpp"

namespace balctl::agent {

namespace {

// Ids remembered after their job ended, so a late re-offer is ignored.
constexpr std::size_t max_seen_ids = 4096;

// Run directories older than a week are removed, looked for this often.
constexpr auto cleanup_every = std::chrono::hours(1);

bool answered(const cli::http_reply& r) { return r.what == cli::http_reply::kind::answered; }

bool transient(const cli::http_reply& r) {
  return !answered(r) || r.status == 429 || r.status >= 500;
}

} // namespace

job_loop::job_loop(job_loop_options o, const agent_api& api) : opts_(std::move(o)), api_(api) {
  env_.root = opts_.root;
  env_.work_dir = opts_.work_dir;
  env_.api = &api_;
  env_.output_max_bytes = opts_.output_max_bytes;
  env_.retry_base_ms = opts_.transfer_backoff_base_ms;
  env_.retry_max_ms = opts_.transfer_backoff_max_ms;
}

job_loop::~job_loop() { join(); }

void job_loop::start() {
  log::info("agent_jobs_started",
            {{"api_base", api_.api_base()},
             {"interval", opts_.interval_s > 0 ? std::to_string(opts_.interval_s) + "s"
                                               : std::string("engine's poll_s")},
             {"max_running", std::to_string(opts_.max_running)},
             {"work_dir", opts_.work_dir}});
  poller_ = std::thread([this] { poll_thread(); });
}

void job_loop::request_stop() {
  std::lock_guard<std::mutex> lk(mu_);
  if (stopping_) {
    return;
  }
  stopping_ = true;
  abort_ = true;
  for (auto& [id, rj] : running_) {
    rj->ctl->cancel();
  }
  cv_.notify_all();
}

void job_loop::join() {
  request_stop();
  if (poller_.joinable()) {
    poller_.join();
  }
}

job_loop_stats job_loop::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

std::int64_t job_loop::interval_ms() const {
  auto s = opts_.interval_s > 0 ? opts_.interval_s : engine_poll_s_;
  return std::int64_t{std::max(s, 1)} * 1000;
}

void job_loop::reap(std::unique_lock<std::mutex>& lk) {
  for (auto it = running_.begin(); it != running_.end();) {
    if (!it->second->done) {
      ++it;
      continue;
    }
    auto rj = std::move(it->second);
    it = running_.erase(it);
    lk.unlock();
    rj->thread.join();
    lk.lock();
  }
}

void job_loop::poll_thread() {
  std::mt19937_64 rng(std::random_device{}());
  auto uniform = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };
  backoff failures(1000, opts_.poll_backoff_max_ms);
  auto next_cleanup = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lk(mu_);
  while (!stopping_) {
    reap(lk);
    if (std::chrono::steady_clock::now() >= next_cleanup) {
      next_cleanup = std::chrono::steady_clock::now() + cleanup_every;
      lk.unlock();
      if (int n = remove_old_runs(opts_.work_dir); n > 0) {
        log::info("agent_replication_runs_removed", {{"count", std::to_string(n)}});
      }
      lk.lock();
    }
    std::int64_t wait_ms = interval_ms();
    // Ask only with room to run what comes back: fetched jobs are marked
    // dispatched, and ones held here too long are offered again anyway.
    if (queue_.empty() && static_cast<int>(running_.size()) < opts_.max_running) {
      lk.unlock();
      auto reply = api_.call("GET", "/v1/agent/jobs", {}, &abort_);
      lk.lock();
      ++stats_.polls;
      std::string err;
      std::optional<jobs_reply> parsed;
      if (answered(reply) && reply.status == 200) {
        parsed = parse_jobs_reply(reply.body, &err);
      } else {
        err = describe(reply);
      }
      if (!parsed) {
        ++stats_.polls_failed;
        // A refused signature (401) will not fix itself quickly (a clock
        // off by minutes, a member re-enrolled elsewhere): poll less and
        // less often, up to poll_backoff_max_ms, and say why each time.
        auto delay = std::max(failures.next(uniform), interval_ms());
        wait_ms = delay;
        lk.unlock();
        (answered(reply) && reply.status == 401 ? log::error : log::warn)(
          "agent_jobs_poll_failed",
          {{"error", err}, {"retry_in_ms", std::to_string(delay)}});
        lk.lock();
      } else {
        failures.reset();
        if (parsed->poll_s > 0) {
          engine_poll_s_ = parsed->poll_s;
          wait_ms = interval_ms();
        }
        for (auto& j : parsed->jobs) {
          if (seen_.count(j.id) != 0) {
            continue; // already running or done here: a re-offer
          }
          seen_.insert(j.id);
          seen_order_.push_back(j.id);
          queue_.push_back(std::move(j));
        }
        while (seen_order_.size() > max_seen_ids) {
          seen_.erase(seen_order_.front());
          seen_order_.pop_front();
        }
      }
    }
    start_ready(lk);
    if (stopping_) {
      break;
    }
    wake_ = false;
    cv_.wait_for(lk, std::chrono::milliseconds(wait_ms), [&] { return stopping_ || wake_; });
  }
  // Stopping: jobs were cancelled in request_stop; wait for their threads.
  queue_.clear();
  for (auto& [id, rj] : running_) {
    rj->ctl->cancel();
  }
  auto left = std::move(running_);
  running_.clear();
  lk.unlock();
  for (auto& [id, rj] : left) {
    rj->thread.join();
  }
}

void job_loop::start_ready(std::unique_lock<std::mutex>&) {
  // Called with mu_ held.
  bool replicating = false;
  for (const auto& [id, rj] : running_) {
    replicating = replicating || rj->spec.is_replication();
  }
  for (auto it = queue_.begin(); it != queue_.end() && !stopping_;) {
    if (static_cast<int>(running_.size()) >= opts_.max_running) {
      break;
    }
    if (it->is_replication() && replicating) {
      ++it; // one replication at a time; others may pass it
      continue;
    }
    replicating = replicating || it->is_replication();
    auto rj = std::make_unique<running_job>();
    rj->spec = std::move(*it);
    it = queue_.erase(it);
    rj->ctl = std::make_unique<job_control>(std::chrono::seconds(rj->spec.timeout_s));
    auto* raw = rj.get();
    ++stats_.jobs_started;
    running_[raw->spec.id] = std::move(rj);
    raw->thread = std::thread([this, raw] { run_one(raw); });
  }
}

long job_loop::report(const job& j, const job_report& r) {
  std::mt19937_64 rng(std::random_device{}());
  auto uniform = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };
  backoff delays(opts_.report_backoff_base_ms, opts_.report_backoff_max_ms);
  const auto body = r.to_json();
  const auto target = "/v1/agent/jobs/" + j.id;
  for (;;) {
    auto reply = api_.call("POST", target, body, &abort_);
    if (answered(reply) && reply.status >= 200 && reply.status < 300) {
      return reply.status;
    }
    if (!transient(reply)) {
      // Refused: 401 (our signature), 404 (not our job), 409 (finished or
      // cancelled there). Sending it again cannot change the answer.
      log::error("agent_job_report_refused", {{"job", j.id},
                                              {"status", r.status},
                                              {"error", describe(reply)}});
      std::lock_guard<std::mutex> lk(mu_);
      ++stats_.reports_refused;
      return reply.status;
    }
    auto delay = delays.next(uniform);
    // `running` is worth a few tries only: the final report says it all.
    if (r.status == "running" && delays.failures() > 3) {
      log::warn("agent_job_report_failed", {{"job", j.id}, {"status", r.status},
                                            {"error", describe(reply)}});
      return 0;
    }
    log::warn("agent_job_report_retry", {{"job", j.id},
                                         {"status", r.status},
                                         {"error", describe(reply)},
                                         {"retry_in_ms", std::to_string(delay)}});
    // Waits on the loop's stop, not the job's timeout: a final report of a
    // job that timed out must still go.
    std::unique_lock<std::mutex> lk(mu_);
    if (cv_.wait_for(lk, std::chrono::milliseconds(delay), [&] { return stopping_; })) {
      return 0;
    }
  }
}

void job_loop::run_one(running_job* rj) {
  const auto& j = rj->spec;
  log::info("agent_job_started", {{"job", j.id}, {"kind", j.kind},
                                  {"timeout_s", std::to_string(j.timeout_s)}});
  job_report running;
  running.status = "running";
  // Said before it starts, so the engine does not offer it again. A
  // refusal (the job was cancelled, or is not ours) means: do not run it.
  // An engine that cannot be reached is no reason to hold the work up.
  long st = report(j, running);
  bool refused = st >= 400;
  if (!refused && !rj->ctl->cancelled()) {
    auto start = std::chrono::steady_clock::now();
    auto r = run_job(j, env_, *rj->ctl);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - start).count();
    bool stopped = rj->ctl->cancelled();
    (r.status == "succeeded" ? log::info : log::warn)(
      "agent_job_finished", {{"job", j.id}, {"kind", j.kind}, {"status", r.status},
                             {"exit_code", r.exit_code ? std::to_string(*r.exit_code) : "-"},
                             {"error", r.error}, {"duration_ms", std::to_string(ms)}});
    bool shutting_down = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      shutting_down = stopping_;
    }
    if (!(stopped && shutting_down)) {
      report(j, r);
    }
  }
  std::lock_guard<std::mutex> lk(mu_);
  ++stats_.jobs_finished;
  rj->done = true;
  wake_ = true;
  cv_.notify_all();
}

} // namespace balctl::agent
