#pragma once

// A pool's remote job queues, one per member (the seed's Cron & Jobs tab;
// docs/protocol.md, "The agent API"). The engine queues; the member's
// agent fetches, runs and reports. Replication's steps are jobs too, owned
// by their protected account. Plain code: no CAF, no I/O, time passed in.
//
//   queued ──fetch──▶ dispatched ──"running"──▶ running ──▶ succeeded
//     ▲                  │  │                      │   └──▶ failed
//     └── not reported ──┘  └── final report ──────┘
//         within 60 s           (a fast job may skip "running")
//
//   any unfinished ──cancel──▶ cancelled
//   dispatched or running past its timeout + grace with no final report
//   ──▶ failed ("no report from the agent")
//
// Finished jobs are kept for history, the newest keep_finished per member.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/types.hpp"

namespace balctl {

enum class job_status : std::uint8_t { queued, dispatched, running, succeeded, failed, cancelled };
const char* to_string(job_status s);
bool from_string(const std::string& s, job_status& out);
inline bool finished(job_status s) {
  return s == job_status::succeeded || s == job_status::failed || s == job_status::cancelled;
}

struct job {
  std::string id;     // unique in its pool: "j-<n>"
  member_id member = 0;
  std::string kind;   // command | replicate_package | replicate_restore | post_failover_hook
  std::string params; // a JSON object, as the agent receives it
  int timeout_s = 3600;
  std::string owner;  // "account:<id>" for replication's jobs; "" = an operator's
  std::string requested_by; // the token's name, for an operator's
  job_status status = job_status::queued;
  std::int64_t created_ms = 0;
  std::int64_t dispatched_ms = 0;
  std::int64_t started_ms = 0;
  std::int64_t finished_ms = 0;
  int exit_code = -1;
  std::string output; // the tail, at most job_book::max_output bytes
  std::string error;
};

/// Text form (store records): every field.
std::string to_json_text(const job& j);
std::optional<job> job_from_json_text(const std::string& text, std::string* error);
/// The object the agent receives (docs/protocol.md): id, kind, created_ms,
/// timeout_s, params.
std::string agent_job_json(const job& j);

class job_book {
public:
  static constexpr std::size_t max_output = 64 * 1024;
  static constexpr std::int64_t redispatch_ms = 60'000;
  static constexpr std::int64_t report_grace_ms = 120'000;
  static constexpr std::size_t max_fetch = 16;

  explicit job_book(std::size_t keep_finished = 50) : keep_finished_(keep_finished) {}

  /// Queues j (its id, status and times are set here); returns it.
  const job& queue(job j, std::int64_t now_ms);
  /// Restores a job read back from the store as it was.
  void restore(job j);

  /// The agent of member m asks for work: its queued jobs (and those
  /// dispatched without a "running" report for redispatch_ms), oldest
  /// first, at most max_fetch; they become dispatched.
  std::vector<const job*> fetch(member_id m, std::int64_t now_ms);

  enum class report_result { accepted, not_found, finished };
  /// An agent's report: status running | succeeded | failed. output is cut
  /// to its tail. *changed: the job as it is now (to store).
  report_result report(member_id m, const std::string& id, job_status status,
                       int exit_code, std::string output, std::string error,
                       std::int64_t now_ms, const job** changed);

  /// An operator's or an owner's cancel: false when unknown or finished.
  bool cancel(const std::string& id, std::int64_t now_ms, const job** changed);

  /// Jobs past their timeout + grace without a final report become failed;
  /// returns them (to store and to tell their owners).
  std::vector<const job*> expire(std::int64_t now_ms);
  /// When expire must run next, if any job is out with an agent.
  std::optional<std::int64_t> next_deadline_ms() const;

  /// Finished jobs beyond keep_finished per member: removed from the book,
  /// their ids returned (to delete from the store).
  std::vector<std::string> prune();
  /// A member's jobs are gone with it: their ids.
  std::vector<std::string> forget_member(member_id m);

  const job* find(const std::string& id) const;
  /// A member's jobs, newest first (member 0: the pool's).
  std::vector<const job*> list(member_id m) const;

  struct counts {
    std::uint64_t queued = 0;  // queued
    std::uint64_t running = 0; // dispatched or running
    std::uint64_t failed = 0;  // finished failed, still in the history
  };
  counts count(member_id m = 0) const;

private:
  std::string next_id();

  std::size_t keep_finished_;
  std::uint64_t next_ = 1;
  std::map<std::string, job> jobs_; // by id
};

/// The tail of text, at most max bytes, not starting inside a UTF-8 sequence.
std::string output_tail(std::string text, std::size_t max);

} // namespace balctl
