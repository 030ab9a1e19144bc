#pragma once

// The notify_service (notifier.hpp) as balctld runs it: a bounded queue in
// front of one libuv loop thread (transport/loop_thread) that runs the
// channels' transfers on libcurl's multi interface (transport/curl_multi)
// and their retries on one timer. make_notify_service() builds and starts
// one; this header is for what needs the steps apart (tests fill the queue
// before start()).
//
//   fresh ──start()──> running ──stop()──> stopped
//     │  post(): queued     post(): queued, sent
//     └──────────────stop()──────────────────^   post(): dropped

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>

#include <uv.h>

#include "adapters/notify/channel.hpp"
#include "adapters/notify/notifier.hpp"
#include "adapters/notify/rules.hpp"
#include "engine/log.hpp"
#include "transport/curl_multi.hpp"
#include "transport/loop_thread.hpp"

namespace balctl::notify {

class notify_service_impl final : public notify_service {
public:
  /// time must outlive the service.
  notify_service_impl(notify_config cfg, clock& time);
  ~notify_service_impl() override;
  notify_service_impl(const notify_service_impl&) = delete;
  notify_service_impl& operator=(const notify_service_impl&) = delete;

  /// Starts the loop thread; alerts posted before are sent from now on.
  /// Once only. Returns "" or "notify: <call>: <reason>".
  std::string start();
  bool post(alert a) override;
  notify_counters counters() const override;
  void stop() override;

private:
  struct atomic_channel {
    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> retried{0};
    std::atomic<std::uint64_t> gave_up{0};
    channel_counters load() const;
  };
  struct delivery;
  enum class state : std::uint8_t { fresh, running, stopped };

  atomic_channel& count(channel c) { return c == channel::email ? email_ : webhook_; }
  void log_dropped(const alert& a, const char* reason);

  // Loop thread.
  static void on_wake(uv_async_t* h);
  static void on_retry_timer(uv_timer_t* t);
  void add_deliveries(alert a);
  void start_attempt(delivery& d);
  void on_done(std::uint64_t id, CURLcode rc);
  void outcome(delivery& d, verdict v, const std::string& why);
  void arm_retry_timer();
  void close_all();
  void log_delivery(log::level l, const char* event, const delivery& d, const std::string& why,
                    const std::string& retry_in_ms = "-") const;

  const notify_config cfg_;
  clock& clock_;
  std::string domain_; // Message-ID's right-hand side

  std::atomic<std::uint64_t> posted_{0};
  std::atomic<std::uint64_t> suppressed_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> abandoned_{0};
  atomic_channel email_;
  atomic_channel webhook_;
  log::rate_limiter drop_log_{1.0, 10.0}; // a full queue must not flood the log too

  mutable std::mutex mu_;
  dedup dedup_;               // guarded by mu_
  std::deque<alert> queue_;   // guarded by mu_
  state state_ = state::fresh; // guarded by mu_

  loop_thread lt_{"notify", "-"};
  uv_async_t wake_{};
  uv_timer_t retry_timer_{};
  curl_multi cm_;
  // Loop thread only, once running.
  std::unordered_map<std::uint64_t, std::unique_ptr<delivery>> deliveries_;
  std::multimap<std::uint64_t, std::uint64_t> waiting_; // uv_now due → delivery id
  std::uint64_t next_id_ = 1;
  std::minstd_rand rng_;
};

} // namespace balctl::notify
