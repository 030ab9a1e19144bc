#include "transport/loop_thread.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <system_error>

#include "engine/log.hpp"

namespace balctl {

loop_thread::loop_thread(std::string name, std::string listen)
  : name_(std::move(name)), listen_(std::move(listen)),
    stop_failed_event_(name_ + "_stop_failed"),
    loop_close_failed_event_(name_ + "_loop_close_failed"), lag_ms_(own_lag_ms_),
    lag_max_ms_(own_lag_max_ms_) {}

loop_thread::loop_thread(std::string name, std::string listen,
                         std::atomic<std::int64_t>& lag_ms,
                         std::atomic<std::int64_t>& lag_max_ms)
  : name_(std::move(name)), listen_(std::move(listen)),
    stop_failed_event_(name_ + "_stop_failed"),
    loop_close_failed_event_(name_ + "_loop_close_failed"), lag_ms_(lag_ms),
    lag_max_ms_(lag_max_ms) {}

loop_thread::~loop_thread() { stop(); }

std::string loop_thread::init() {
  int rc = uv_loop_init(&loop_);
  if (rc != 0) {
    return std::string("uv_loop_init: ") + uv_strerror(rc);
  }
  // From here on stop() closes the loop, and start() is refused.
  loop_ready_ = true;
  if ((rc = uv_async_init(&loop_, &stop_async_, on_stop)) != 0) {
    return std::string("uv_async_init: ") + uv_strerror(rc);
  }
  stop_async_.data = this;
  if ((rc = uv_timer_init(&loop_, &lag_timer_)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    return std::string("uv_timer_init: ") + uv_strerror(rc);
  }
  lag_timer_.data = this;
  handles_ready_ = true;
  return {};
}

void loop_thread::abandon(const std::function<void()>& close_own) {
  if (!loop_ready_) {
    return;
  }
  if (close_own) {
    close_own();
  }
  if (handles_ready_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&lag_timer_), nullptr);
    handles_ready_ = false;
  }
  // No thread exists yet: the close callbacks run here.
  uv_run(&loop_, UV_RUN_DEFAULT);
}

std::string loop_thread::start(std::function<void()> on_stop_in_loop, bool block_sigpipe) {
  if (!handles_ready_ || running_ || stopping_) {
    return "start(): init() must succeed first, once";
  }
  on_stop_in_loop_ = std::move(on_stop_in_loop);
  // The timer is re-armed from the loop's cached time: start from a fresh one.
  uv_update_time(&loop_);
  lag_expected_ms_ = static_cast<std::int64_t>(uv_now(&loop_) + lag_interval_ms);
  int rc = uv_timer_start(&lag_timer_, on_lag_timer, lag_interval_ms, lag_interval_ms);
  if (rc != 0) {
    abandon(on_stop_in_loop_);
    return std::string("uv_timer_start: ") + uv_strerror(rc);
  }
  try {
    thread_ = std::thread([this, block_sigpipe] {
      if (block_sigpipe) {
        // A write to a peer that has gone raises SIGPIPE, which would end
        // the process; blocked on this thread, the write fails with EPIPE.
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, nullptr);
      }
      uv_run(&loop_, UV_RUN_DEFAULT);
    });
  } catch (const std::exception& e) {
    abandon(on_stop_in_loop_);
    return std::string("std::thread: ") + e.what();
  }
  running_ = true;
  return {};
}

void loop_thread::stop(const std::function<void()>& before_wake) {
  // Serialised with start() and with itself: a second, concurrent stop()
  // returns only once the loop thread has been joined.
  std::lock_guard<std::mutex> guard(life_mu_);
  if (!stopping_) {
    stopping_ = true;
    if (before_wake) {
      before_wake();
    }
    if (running_) {
      int rc = uv_async_send(&stop_async_);
      if (rc != 0) {
        log::error(stop_failed_event_.c_str(),
                   {{"listen", listen_}, {"error", uv_strerror(rc)}});
      }
    }
  }
  if (thread_.joinable() && thread_.get_id() == std::this_thread::get_id()) {
    // Called on the loop thread (from a callback): it cannot join itself.
    // The loop is woken and runs dry; a later stop() from another thread
    // (the owner's destructor) joins it and closes the loop.
    return;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  if (loop_ready_) {
    // UV_EBUSY here would mean a handle was never closed: a bug.
    int rc = uv_loop_close(&loop_);
    if (rc != 0) {
      log::error(loop_close_failed_event_.c_str(),
                 {{"listen", listen_}, {"error", uv_strerror(rc)}});
    }
    loop_ready_ = false;
  }
  handles_ready_ = false;
  running_ = false;
}

void loop_thread::on_stop(uv_async_t* a) {
  auto* self = static_cast<loop_thread*>(a->data);
  // The owner's handles first (its connections leave in their close
  // callbacks, later in this run), then ours.
  try {
    if (self->on_stop_in_loop_) {
      self->on_stop_in_loop_();
    }
  } catch (...) {
    // Whatever the owner left open would keep the loop (and the join in
    // stop()) alive for ever: close it here, it is freed by its owner once
    // the loop has run dry. No allocation on this path (the event name was
    // built at construction).
    uv_walk(&self->loop_,
            [](uv_handle_t* h, void* arg) {
              auto* lt = static_cast<loop_thread*>(arg);
              if (!uv_is_closing(h) && h != reinterpret_cast<uv_handle_t*>(&lt->lag_timer_) &&
                  h != reinterpret_cast<uv_handle_t*>(&lt->stop_async_)) {
                uv_close(h, nullptr);
              }
            },
            self);
    try {
      log::error(self->stop_failed_event_.c_str(),
                 {{"listen", self->listen_}, {"error", "exception while closing handles"}});
    } catch (...) {
      // Out of memory while logging: the handles are closed, that matters.
    }
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&self->lag_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&self->stop_async_), nullptr);
}

void loop_thread::on_lag_timer(uv_timer_t* t) {
  // How late this 100 ms timer fired: the time the owner's I/O waited
  // behind the loop's other work (a burst of input, a slow callback).
  auto* self = static_cast<loop_thread*>(t->data);
  auto now_ms = static_cast<std::int64_t>(uv_hrtime() / 1'000'000);
  std::int64_t lag = std::max<std::int64_t>(0, now_ms - self->lag_expected_ms_);
  self->lag_ms_.store(lag, std::memory_order_relaxed);
  if (lag > self->lag_max_ms_.load(std::memory_order_relaxed)) {
    self->lag_max_ms_.store(lag, std::memory_order_relaxed);
  }
  // libuv re-armed the timer from the loop's cached time before calling us.
  self->lag_expected_ms_ = static_cast<std::int64_t>(uv_now(&self->loop_) + lag_interval_ms);
}

} // namespace balctl
