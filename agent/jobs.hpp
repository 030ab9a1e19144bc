#pragma once

// What the agent does with one job from the engine's queue
// (docs/protocol.md, "The agent API: jobs and replication"): a shell
// command, packaging and uploading a cPanel account (replicate_package),
// downloading and restoring one (replicate_restore), the post-failover
// hook. Each runs to the end on the calling thread (agent/job_loop.hpp
// gives it one of its own) and returns the final report; it never throws.
//
// Everything on the host is under job_env::root (tests use fake trees);
// cPanel's scripts and the hook get the root as BALCTL_ROOT in their
// environment, so stand-ins of them can find their tree.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_api.hpp"

namespace balctl::agent {

struct job {
  std::string id;
  std::string kind;  // command | replicate_package | replicate_restore | post_failover_hook
  std::int64_t created_ms = 0;
  int timeout_s = 3600;
  nlohmann::json params = nlohmann::json::object();
  /// Replication jobs run one at a time (they share disk and bandwidth).
  bool is_replication() const { return kind.rfind("replicate_", 0) == 0; }
};

struct jobs_reply {
  std::vector<job> jobs;
  int poll_s = 0; // 0 = the engine did not say
};

/// GET /v1/agent/jobs's 200 body. A job without a string id is skipped
/// (it cannot be reported); a job with bad fields is kept with its kind
/// and params as sent, and fails when it runs, saying why.
std::optional<jobs_reply> parse_jobs_reply(const std::string& body, std::string* error);

struct job_report {
  std::string status = "failed"; // running | succeeded | failed
  std::optional<int> exit_code;
  std::string output;            // tail, at most job_env::output_max_bytes
  std::string error;
  std::string to_json() const;
};

/// A running job's deadline and its stop switch, shared with whoever may
/// stop it (the loop at shutdown, a 409 from the engine).
class job_control {
public:
  explicit job_control(std::chrono::milliseconds timeout)
    : deadline_(std::chrono::steady_clock::now() + timeout) {}
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  const std::atomic<bool>& flag() const { return cancelled_; }
  /// Time left before the job's timeout (>= 0).
  std::int64_t remaining_ms() const;
  /// Sleeps ms (at most until the deadline) unless cancelled first; false
  /// when cancelled or the deadline has come.
  bool wait(std::int64_t ms);

private:
  std::chrono::steady_clock::time_point deadline_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

struct job_env {
  std::string root = "/";
  /// The agent's state directory: replication runs live in
  /// work_dir/replication/<run>.
  std::string work_dir;
  const agent_api* api = nullptr;
  std::size_t output_max_bytes = 65536;
  /// Back-off of failed chunk transfers and replication reports.
  std::int64_t retry_base_ms = 1000;
  std::int64_t retry_max_ms = 30'000;
  /// A chunk whose size or SHA-256 is wrong is fetched this many times.
  int chunk_attempts = 3;
  /// The largest chunk_size accepted (a chunk is held in memory).
  std::int64_t max_chunk_size = 64LL * 1024 * 1024;
};

/// Runs the job to its end (or its timeout, or cancellation) and returns
/// the final report (succeeded or failed).
job_report run_job(const job& j, const job_env& env, job_control& ctl);

/// The last max_bytes of text.
std::string tail(std::string text, std::size_t max_bytes);

/// True for a run id or account name that is safe as one path component:
/// 1 to 128 of [A-Za-z0-9._-], not starting with a dot.
bool safe_name(const std::string& s);

/// Removes run directories under work_dir/replication not modified for
/// max_age_s (7 days by default); returns how many.
int remove_old_runs(const std::string& work_dir, std::int64_t max_age_s = 7 * 86400);

} // namespace balctl::agent
