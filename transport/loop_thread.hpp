#pragma once

// One libuv loop on its own thread, as the listeners (udp, tls, http) run
// it: the loop, a uv_async_t that stops it from any thread, a 100 ms timer
// that measures loop lag, and the life cycle around them.
//
//   fresh ──init()──> initialised ──start()──> running
//     │                   │  owner's handle fails:      │
//     │                   │  abandon() runs it dry      │ stop(): on the loop thread
//     │                   v                             v on_stop_in_loop, then ours
//     └──stop()──────> stopped <──join, uv_loop_close───┘
//
// Once only: start() after start() or after stop() is refused, because it
// would leave a loop thread that nothing stops. The owner opens its own
// handles on loop() between init() and start(), holding lock_life() from
// before init() until start() returns, so a concurrent stop() waits for a
// start in progress and then undoes all of it.

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <uv.h>

namespace balctl {

class loop_thread {
public:
  /// name: the owner's log prefix ("udp", "tls", "http"), so the events
  /// are <name>_stop_failed and <name>_loop_close_failed; listen: its
  /// address, logged with them. Lag goes to the loop_thread's own atomics.
  loop_thread(std::string name, std::string listen);
  /// The same, with lag written to the owner's atomics (a public counters
  /// struct) instead.
  loop_thread(std::string name, std::string listen, std::atomic<std::int64_t>& lag_ms,
              std::atomic<std::int64_t>& lag_max_ms);
  /// stop(). The owner stops first when on_stop_in_loop uses its members.
  ~loop_thread();
  loop_thread(const loop_thread&) = delete;
  loop_thread& operator=(const loop_thread&) = delete;

  /// Serialises the owner's start() with stop(): held from before init()
  /// until start() (or abandon()) has returned.
  std::unique_lock<std::mutex> lock_life() { return std::unique_lock<std::mutex>(life_mu_); }
  /// False once init() or stop() has run. With lock_life() held.
  bool startable() const { return !stopping_ && !loop_ready_; }

  /// uv_loop_init, the stop async and the lag timer (not started). Returns
  /// "" or "<call>: <reason>". On failure nothing is left open and the
  /// loop, if it was initialised, is closed by stop(). With lock_life().
  std::string init();
  /// Valid from a successful init() until stop() has returned.
  uv_loop_t* loop() { return &loop_; }

  /// For a failed start after init(): close_own closes the owner's handles
  /// opened so far, then ours are closed and the loop is run dry on the
  /// calling thread (close callbacks run, memory can go). With lock_life().
  void abandon(const std::function<void()>& close_own);

  /// Starts the lag timer and the loop thread (SIGPIPE blocked on it when
  /// block_sigpipe: a write to a vanished TCP peer then fails with EPIPE
  /// instead of ending the process). on_stop_in_loop runs once on the loop
  /// thread when stop() is called and must close every handle of the
  /// owner's (ours are closed after it); it must not throw. Returns "" or
  /// "<call>: <reason>", after abandon(on_stop_in_loop). With lock_life().
  std::string start(std::function<void()> on_stop_in_loop, bool block_sigpipe);

  /// Thread-safe and idempotent: wakes the loop, which closes every handle
  /// and runs dry; joins the thread and closes the loop. A concurrent
  /// second stop() returns once the thread is joined. before_wake runs on
  /// the first stop() only, under the life lock, before the loop is woken:
  /// for closing a door other threads use to reach the loop. From the loop
  /// thread itself it only wakes the loop (a thread cannot join itself); a
  /// later stop() from another thread, such as the owner's destructor,
  /// joins it and closes the loop.
  void stop(const std::function<void()>& before_wake = {});

  /// How late the 100 ms timer fired, in ms: latest and largest.
  const std::atomic<std::int64_t>& lag_ms() const { return lag_ms_; }
  const std::atomic<std::int64_t>& lag_max_ms() const { return lag_max_ms_; }

private:
  static void on_stop(uv_async_t* a);
  static void on_lag_timer(uv_timer_t* t);
  static constexpr std::uint64_t lag_interval_ms = 100;

  std::string name_;
  std::string listen_;
  std::string stop_failed_event_;       // built once: on_stop must not allocate
  std::string loop_close_failed_event_;
  std::atomic<std::int64_t> own_lag_ms_{0};
  std::atomic<std::int64_t> own_lag_max_ms_{0};
  std::atomic<std::int64_t>& lag_ms_;
  std::atomic<std::int64_t>& lag_max_ms_;

  uv_loop_t loop_{};
  uv_async_t stop_async_{};
  uv_timer_t lag_timer_{};
  std::int64_t lag_expected_ms_ = 0; // loop thread only, once running
  std::function<void()> on_stop_in_loop_;

  std::thread thread_;
  std::mutex life_mu_;
  // Guarded by life_mu_.
  bool loop_ready_ = false;    // uv_loop_init succeeded, uv_loop_close not yet
  bool handles_ready_ = false; // stop async and lag timer open
  bool running_ = false;       // the thread was started
  bool stopping_ = false;      // stop() was called
};

} // namespace balctl
