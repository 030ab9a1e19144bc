#pragma once

// One protected account's replication (the seed's Protection tab,
// "Replication Transfer"): the engine coordinates, the agents work
// (docs/protocol.md, "The agent API"). Plain code: no CAF, no I/O, time
// passed in; the account actor (actors/account) queues the jobs it asks
// for and stores it after every step.
//
//            start (schedule | Replicate now)
//   idle ─────────────────────────────▶ packaging: replicate_package job on
//    ▲  ▲                                 the source; manifest → chunks to
//    │  │                                 upload; each stored chunk noted
//    │  │   package job succeeded,        │
//    │  │   every chunk stored            ▼
//    │  └──── restore job succeeded ── restoring: replicate_restore job on
//    │        (last sync; chunks gone)    the standby
//    │                                     │ either job failed / timed out
//    └── retries exhausted ── failed ◀─────┘
//                             (the run and its stored chunks are kept: a
//                              retry resumes where it stopped)
//
// - No overlap: a start while a run goes is skipped (logged) or, with
//   overlap "wait", remembered and taken when the run ends.
// - A failed run is retried after 60 s, doubling to 1 h, at most
//   max_attempts times; the next scheduled start also resumes it. A run
//   whose package is older than max_resume_age_ms starts over.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/accounts.hpp"
#include "engine/jobs.hpp"

namespace balctl {

struct chunk_info {
  std::int64_t size = 0;
  std::string sha256; // lowercase hex
  bool stored = false;
};

enum class replication_phase : std::uint8_t { idle, packaging, restoring, failed };
const char* to_string(replication_phase p);

struct replication_state {
  std::string account;
  // The current run ("" = none), kept while failed so a retry resumes it.
  std::string run;
  replication_phase phase = replication_phase::idle;
  std::string trigger; // schedule | manual | retry
  std::int64_t run_started_ms = 0;  // this attempt
  std::int64_t run_created_ms = 0;  // the run's first attempt (its package)
  member_id source = 0, standby = 0;
  std::string job; // the job out for the current phase
  int attempts = 0;
  // The package's manifest as the source's agent sent it.
  std::int64_t size = 0;
  std::int64_t chunk_size = 0;
  std::string sha256;
  std::vector<chunk_info> chunks;
  // History.
  std::int64_t last_sync_ms = 0;     // last run that restored
  std::int64_t last_duration_ms = 0; // of that run
  std::int64_t last_failure_ms = 0;
  std::string last_error;
  std::uint64_t runs_ok = 0, runs_failed = 0, starts_skipped = 0;
  // Scheduling.
  std::int64_t next_due_ms = 0; // next scheduled start, 0 = none
  std::int64_t retry_at_ms = 0; // failed run's next attempt, 0 = none
  bool waiting = false;         // overlap "wait": start when the run ends
  std::uint64_t runs_started = 0; // run ids: "<account>-<n>"
};

std::string to_json_text(const replication_state& s);
std::optional<replication_state> replication_from_json_text(const std::string& text,
                                                            std::string* error);

/// What an account's replication wants done after a step.
struct replication_effects {
  std::optional<job> queue;              // a job to queue (member, kind, params set)
  std::vector<std::string> log;          // replication log lines: sync events
  std::vector<std::string> transfer;     // replication log lines: transfer events
  std::vector<std::string> failures;     // replication log lines (failure), alerted
  std::vector<std::string> delete_keys;  // object-store keys to remove
  bool changed = false;                  // store the state
};

class replication {
public:
  static constexpr int max_attempts = 5;
  static constexpr std::int64_t first_retry_ms = 60'000;
  static constexpr std::int64_t max_retry_ms = 3'600'000;
  static constexpr std::int64_t max_resume_age_ms = 24 * 3'600'000LL;
  static constexpr int package_timeout_s = 6 * 3600;
  static constexpr int restore_timeout_s = 6 * 3600;

  /// chunk_size: what package jobs ask for (protection.chunk_size_bytes).
  replication(std::string pool, replication_state s, std::int64_t chunk_size)
    : pool_(std::move(pool)), s_(std::move(s)), chunk_size_(chunk_size) {}

  const replication_state& state() const { return s_; }
  /// The job queued for the current phase (its id comes from the job book).
  void set_job(const std::string& id) { s_.job = id; }
  /// The object-store key of one chunk of this run.
  std::string chunk_key(std::size_t index) const;

  /// The account's settings changed (or were read at start): schedules the
  /// next start from the last one when none is due.
  replication_effects configure(const protected_account& a, std::int64_t now_ms);
  /// A start: trigger "schedule" or "manual". A run going: skipped or
  /// waiting (overlap). A failed run: resumed.
  replication_effects start(const protected_account& a, const std::string& trigger,
                            std::int64_t now_ms);
  /// Timers: a scheduled start or a retry due at now_ms.
  replication_effects tick(const protected_account& a, std::int64_t now_ms);
  std::optional<std::int64_t> next_deadline_ms() const;
  /// A scheduled start due now that cannot start (why): the schedule moves
  /// on and the failure is logged; nothing runs.
  replication_effects skip_due(const protected_account& a, const std::string& why,
                               std::int64_t now_ms);

  struct manifest {
    std::int64_t size = 0;
    std::int64_t chunk_size = 0;
    std::string sha256;
    std::vector<chunk_info> chunks;
  };
  /// The source's manifest for run: the indexes to upload (those not
  /// stored with that hash). nullopt and *why when it is not this run's or
  /// is inconsistent.
  std::optional<std::vector<std::size_t>> on_manifest(const std::string& run, manifest m,
                                                      std::string* why,
                                                      replication_effects& fx);
  /// A chunk stored by the source's agent. false and *why when unknown.
  bool on_chunk(const std::string& run, std::size_t index, const std::string& sha256,
                std::string* why, replication_effects& fx);
  /// One of this account's jobs finished (succeeded, failed or cancelled).
  replication_effects on_job(const job& j, const protected_account& a, std::int64_t now_ms);

  /// healthy | running | failing | stale | never | manual
  std::string health(const protected_account& a, std::int64_t now_ms) const;

private:
  void begin(const protected_account& a, const std::string& trigger, std::int64_t now_ms,
             replication_effects& fx);
  void queue_restore(std::int64_t now_ms, replication_effects& fx);
  void fail(const std::string& why, std::int64_t now_ms, replication_effects& fx);
  void finish_ok(const protected_account& a, std::int64_t now_ms, replication_effects& fx);
  bool running() const {
    return s_.phase == replication_phase::packaging || s_.phase == replication_phase::restoring;
  }

  std::string pool_;
  replication_state s_;
  std::int64_t chunk_size_;
};

} // namespace balctl
