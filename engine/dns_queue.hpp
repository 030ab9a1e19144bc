#pragma once

// What a DNS executor decides, apart from CAF and I/O (time passed in): the
// order changes run in, one at a time per record, how many requests a
// provider credential may get, and how long a failed change waits.
//
// dns_queue
// - Serialised per record: at most one change of a record runs; a change
//   queued behind a running one waits for it.
// - Newest wins: a change of a record supersedes every older change of that
//   record not yet started, and a change older (lower journal id) than one
//   already taken for its record is superseded at once: a resumed change can
//   never move a record back behind a newer decision.
// - Priority, then round, then age: priority 0 (pool failover records) runs
//   before 1 (protected-account records) before 2 (reads and lists: Refresh
//   DNS, drift, Import, Sync). Within a priority, batches interleave: the
//   first change of every waiting batch (one decision's changes at one
//   credential) runs before any batch's second, so in a storm every pool's
//   cut-over starts at once instead of waiting for the batches before it.
// - A retried change waits until its not_before time.
//
// rate_window
// - A sliding window: at most `limit` requests in any `window_ms`, so a
//   provider counting over a fixed or sliding window (Cloudflare: 1,200 per
//   5 minutes) never sees more; a token bucket would allow a full bucket on
//   top of the refill. `reserve` requests of each window are kept for
//   priority 0, so a pool's failover record is never stuck behind a storm
//   of account records that took the whole window.
// - Paced: requests that are not urgent are spread evenly, one every
//   (window + margin) / (limit - reserve), instead of taking a window's
//   budget in a burst at its start. A storm then drains at the allowed
//   rate, and the decisions that arrive while it drains (their pool
//   records, the first changes of their batches) find the window with room
//   instead of waiting for it to slide. Urgent requests are not paced.
// - A request leaves the window a margin after window_ms (a twentieth of
//   the window, 50 ms to 2 s): the provider counts it when it arrives, a
//   little after it was sent, and a request sent exactly one window later
//   can arrive less than a window after it (the storm benchmark saw 1,201
//   in a window of 1,200 without the margin, and the 429 that followed).
// - pause_until: a 429 stops every request of the credential until then.

#include <cstdint>
#include <climits>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "adapters/dns/provider.hpp"

namespace balctl {

/// What a job asks of the provider: make the record so (a change, which is
/// journaled), or read it, or list a zone (Refresh DNS, Import, Sync: not
/// journaled, they change nothing).
enum class dns_op : std::uint8_t { apply, read, list };

/// One job for an executor: the record as it must be (or the record or
/// zone to read), and where it came from. id is a change's journal id (0
/// until journaled); reads and lists get negative ids of the executor's.
struct dns_job {
  dns_op op = dns_op::apply;
  std::int64_t id = 0;
  std::int64_t decision = 0;
  std::string pool;
  int priority = 1;
  dns::record desired;
  int round = 0;               // its place in its batch (interleaving)
  int attempts = 0;            // failed attempts so far
  std::int64_t not_before_ms = 0;
  std::int64_t queued_ms = 0;  // when the executor took it (latency figures)
};

/// Ids at and above this are changes the store could not journal (the
/// executor acts anyway): they take no part in newest-wins by id, which
/// only orders journaled changes (a resumed change behind a newer one).
constexpr std::int64_t unjournaled_id_base = INT64_MAX / 2;

/// The record a change is serialised on: name and type.
std::string record_key(const dns::record& r);
/// What a job is serialised on: its record for a change; each read and list
/// has a key of its own, so it never waits for, nor supersedes, another job.
std::string job_key(const dns_job& j);

class dns_queue {
public:
  /// Takes j. Returns the ids superseded by it (j.id itself when j is older
  /// than a change already taken for its record).
  std::vector<std::int64_t> add(dns_job j);
  /// The next change to start at now_ms, if any may: its record is not
  /// running, its not_before has come and its priority is at most
  /// max_priority. It counts as running until finish() or retry().
  std::optional<dns_job> pop(std::int64_t now_ms, int max_priority = INT_MAX);
  /// The running change of j's record is over (done, failed for good or
  /// superseded); a change waiting behind it becomes ready.
  void finish(const dns_job& j);
  /// The running change j failed and runs again at j.not_before_ms, unless
  /// a newer change of its record arrived meanwhile: then j is superseded
  /// and its id returned.
  std::optional<std::int64_t> retry(dns_job j);
  /// The earliest not_before of a waiting change, if any.
  std::optional<std::int64_t> next_wake_ms() const;

  std::size_t queued() const { return jobs_.size(); }
  std::size_t running() const { return running_.size(); }

private:
  using order = std::tuple<int, int, std::int64_t>; // (priority, round, id)
  static order order_of(const dns_job& j) { return {j.priority, j.round, j.id}; }
  void make_ready(const dns_job& j);

  std::unordered_map<std::int64_t, dns_job> jobs_; // queued, by id
  std::set<order> ready_;
  std::set<std::pair<std::int64_t, std::int64_t>> waiting_; // (not_before, id)
  std::unordered_map<std::string, std::int64_t> queued_for_;  // key → queued id
  std::unordered_map<std::string, std::int64_t> running_;     // key → running id
  std::unordered_map<std::string, std::int64_t> newest_;      // key → newest id taken
};

class rate_window {
public:
  /// limit 0 = unlimited. reserve: requests of each window only priority 0
  /// may use (clamped below limit).
  rate_window(int limit = 0, std::int64_t window_ms = 300'000, int reserve = 0);

  /// Takes one request slot at now_ms if one is free for this priority.
  bool try_acquire(std::int64_t now_ms, bool urgent);
  /// When try_acquire can next succeed (now_ms if it can now).
  std::int64_t next_free_ms(std::int64_t now_ms, bool urgent);
  void pause_until(std::int64_t until_ms);
  std::int64_t paused_until_ms() const { return paused_until_ms_; }
  std::size_t in_window(std::int64_t now_ms);

private:
  void expire(std::int64_t now_ms);
  std::size_t cap(bool urgent) const;

  int limit_;
  std::int64_t window_ms_;
  std::int64_t margin_ms_; // see the class comment
  int reserve_;
  std::deque<std::int64_t> sent_ms_;
  std::int64_t paused_until_ms_ = 0;
  std::int64_t next_paced_us_ = 0; // the next non-urgent request, µs
  std::int64_t gap_us() const;
};

/// How long a change waits before attempt `attempts` + 1 after failing with
/// `why`: exponential from 1 s (auth: 30 s) to 5 minutes, with jitter in
/// [half, full] drawn from rnd01 in [0, 1); a provider's Retry-After hint
/// is honoured when longer.
std::int64_t dns_retry_delay_ms(int attempts, dns::failure why,
                                std::int64_t retry_after_ms, double rnd01);

} // namespace balctl
