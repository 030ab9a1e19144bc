#pragma once

// libcurl's multi interface driven by a libuv loop: curl's socket callback
// becomes uv_poll handles, its timer callback one uv_timer. Shared by the
// loops that make outgoing requests (adapters/dns/dns_io for the DNS
// providers, adapters/notify for SMTP and webhooks), so there is one
// curl-on-libuv integration to get right.
//
// Not thread-safe: every call but global_init() is made on the loop's
// thread (or before the loop thread starts). The owner configures each
// CURL* easy handle itself, keeps it alive until its done callback has run
// (or it was removed), and cleans it up.

#include <functional>
#include <string>
#include <unordered_map>

#include <curl/curl.h>
#include <uv.h>

namespace balctl {

class curl_multi {
public:
  /// Runs once per transfer with curl's result; on the loop thread, never
  /// from inside add().
  using done_fn = std::function<void(CURLcode)>;

  curl_multi() = default;
  /// close() must have run (on the loop thread) before.
  ~curl_multi() = default;
  curl_multi(const curl_multi&) = delete;
  curl_multi& operator=(const curl_multi&) = delete;

  /// curl_global_init, once per process, from any thread.
  static void global_init();

  /// Opens the timer on loop and the multi handle. Returns "" or
  /// "<call>: <reason>"; on failure nothing is left open.
  std::string open(uv_loop_t* loop);

  /// Starts a configured transfer. On failure done is not called and the
  /// error is returned as "curl_multi_add_handle: <reason>".
  std::string add(CURL* easy, done_fn done);
  /// Ends a transfer without calling its done (the owner is abandoning it).
  void remove(CURL* easy);
  /// Transfers started and not yet done or removed.
  std::size_t active() const { return done_.size(); }

  /// Removes what is left (done not called), cleans up the multi handle and
  /// closes the timer. The loop must then run for the close callbacks.
  void close();

private:
  static void on_poll(uv_poll_t* p, int status, int events);
  static int on_socket(CURL*, curl_socket_t s, int action, void* userp, void* socketp);
  static void on_timeout(uv_timer_t* t);
  static int on_timer(CURLM*, long timeout_ms, void* userp);
  void check_done();

  uv_loop_t* loop_ = nullptr;
  uv_timer_t timer_{};
  bool timer_open_ = false;
  CURLM* multi_ = nullptr;
  std::unordered_map<CURL*, done_fn> done_;
};

} // namespace balctl
