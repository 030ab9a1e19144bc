#pragma once

// The agent's job loop (docs/protocol.md, "Fetching jobs", "Reporting"):
// asks the engine for jobs every poll_s and right after a job finishes,
// runs up to max_running at once (replication jobs one at a time), reports
// each `running` when it starts and its final report at the end, retrying
// that one with back-off until the engine accepts or refuses it.
//
// Everything here runs on threads of its own: one poller, one per running
// job. The heartbeat loop only starts and stops it, so a multi-minute
// replication (hashing, chunk I/O, HTTP) never delays a heartbeat.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "agent/agent_api.hpp"
#include "agent/jobs.hpp"

namespace balctl::agent {

struct job_loop_options {
  std::string root = "/";
  std::string work_dir;            // the state file's directory
  /// > 0: poll this often; -1: as the engine's poll_s says (10 s until it
  /// has said). 0 is "jobs off" and the runner does not start the loop.
  int interval_s = -1;
  int max_running = 2;
  std::size_t output_max_bytes = 65536;
  /// Final reports: 1 s doubling to 60 s (the spec's figures).
  std::int64_t report_backoff_base_ms = 1000;
  std::int64_t report_backoff_max_ms = 60'000;
  /// Chunk transfers inside replication jobs: 1 s doubling to 30 s.
  std::int64_t transfer_backoff_base_ms = 1000;
  std::int64_t transfer_backoff_max_ms = 30'000;
  /// A failed or refused poll backs off from the poll interval to this.
  std::int64_t poll_backoff_max_ms = 300'000;
};

/// Counters, for logs and tests.
struct job_loop_stats {
  std::uint64_t polls = 0;
  std::uint64_t polls_failed = 0;
  std::uint64_t jobs_started = 0;
  std::uint64_t jobs_finished = 0;   // final report accepted, refused or given up
  std::uint64_t reports_refused = 0; // a 4xx answer: logged, not retried
};

class job_loop {
public:
  job_loop(job_loop_options o, const agent_api& api);
  ~job_loop();
  job_loop(const job_loop&) = delete;
  job_loop& operator=(const job_loop&) = delete;

  void start();
  /// Non-blocking (the heartbeat loop's signal handler calls it): stops
  /// polling and kills running jobs' commands. Jobs cut short send no final
  /// report; the engine offers a job again that was never reported running.
  void request_stop();
  /// Waits for the poller and every job thread. Calls request_stop first.
  void join();

  job_loop_stats stats() const;

private:
  struct running_job {
    job spec;
    std::unique_ptr<job_control> ctl;
    std::thread thread;
    bool done = false;
  };

  void poll_thread();
  void poll_once();
  void start_ready(std::unique_lock<std::mutex>& lk);
  void run_one(running_job* rj);
  /// POSTs the report; retries what may pass (unreachable, 429, 5xx) with
  /// back-off until the loop stops. Returns the HTTP status, or 0 when it
  /// gave up.
  long report(const job& j, const job_report& r);
  std::int64_t interval_ms() const;
  void reap(std::unique_lock<std::mutex>& lk);

  job_loop_options opts_;
  const agent_api& api_;
  job_env env_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  // The same, for libcurl's progress callback: a poll or report in flight
  // ends at once when the agent stops.
  std::atomic<bool> abort_{false};
  bool wake_ = false;           // a job finished: poll now
  int engine_poll_s_ = 10;
  std::deque<job> queue_;       // fetched, not started yet
  std::map<std::string, std::unique_ptr<running_job>> running_;
  std::set<std::string> seen_;  // every id taken, so a re-offer is ignored
  std::deque<std::string> seen_order_;
  job_loop_stats stats_;
  std::thread poller_;
};

} // namespace balctl::agent
