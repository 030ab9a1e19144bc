#pragma once

// Alerts to operators (DESIGN.md: events ──▶ adapters/notify/{smtp,webhook}):
// e-mail over SMTP and webhooks (JSON POST), both through libcurl's multi
// interface on the service's own libuv loop thread. post() never blocks: it
// de-duplicates (same key within notify.dedup_window_s), queues (bounded by
// notify.max_queue) and wakes the loop; the loop sends, retries with
// back-off and gives up after notify.retry_give_up_s. Everything is
// counted; nothing is retried forever or queued without bound.
//
// Each recipient list is one delivery (one message to every address of
// the alert) and each webhook URL is its own delivery, retried on its own:
//
//   queued ──attempt──> in flight ──2xx / 250──────────> sent
//                          │  │ ──4xx (not 429) / 5xx SMTP──> failed
//                          │  └─5xx / 429 / transport──> waiting
//                          │                              │ back-off (jitter)
//                          └────────<──────attempt────────┘
//                     waiting past retry_give_up_s ──> failed (gave up)

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "engine/clock.hpp"
#include "engine/types.hpp"

namespace balctl::notify {

/// One thing an operator should hear about.
struct alert {
  /// De-duplication key: alerts with the same key within the window are
  /// suppressed ("member_down/<pool>/<member>").
  std::string key;
  std::string pool;
  member_id member = 0; // 0 = the pool itself
  /// member_down, member_up, failover, cpu, disk, service,
  /// replication_failed, ...
  std::string kind;
  std::string subject; // one line; CR/LF are replaced in the e-mail header
  std::string text;    // body, UTF-8
  std::int64_t at_ms = 0; // when it happened (wall clock, ms since the epoch)
  std::vector<std::string> emails;   // one message to all of them
  std::vector<std::string> webhooks; // http(s) URLs, each its own delivery
};

/// Outcomes of one channel's deliveries.
struct channel_counters {
  std::uint64_t sent = 0;
  std::uint64_t failed = 0;  // for good: refused (4xx, 5xx SMTP), not configured, gave up
  std::uint64_t retried = 0; // attempts after the first
  std::uint64_t gave_up = 0; // of failed: still failing after retry_give_up_s
};

/// A snapshot of the service's counters.
struct notify_counters {
  std::uint64_t posted = 0;     // post() calls
  std::uint64_t suppressed = 0; // de-duplicated (same key within the window)
  std::uint64_t dropped = 0;    // the queue was full
  std::uint64_t abandoned = 0;  // deliveries unfinished when the service stopped
  channel_counters email;
  channel_counters webhook;
};

/// What the engine needs of its alerting: post and count. The real one is
/// make_notify_service()'s; tests of the callers use tests/fakes/notify_fake.hpp.
class notify_service {
public:
  virtual ~notify_service() = default;
  /// Thread-safe, never blocks (no I/O, one short lock): de-duplicates,
  /// queues or drops. Returns false when the alert was suppressed or
  /// dropped. After stop() alerts are dropped (counted).
  virtual bool post(alert a) = 0;
  /// Thread-safe.
  virtual notify_counters counters() const = 0;
  /// Thread-safe and idempotent: abandons what is queued, in flight or
  /// waiting to be retried (counted as abandoned, logged), closes every
  /// handle and joins the loop thread. The destructor calls it.
  virtual void stop() = 0;
};

/// Starts a notify_service on its own loop thread: alerts' times (the
/// de-duplication window, giving up) read `time`, which must outlive it.
/// Returns nullptr when the loop cannot start, with the reason in *error.
std::unique_ptr<notify_service> make_notify_service(const notify_config& config, clock& time,
                                                    std::string* error = nullptr);

} // namespace balctl::notify
