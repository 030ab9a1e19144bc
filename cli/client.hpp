#pragma once

// The one HTTP exchange a balctl command makes. http_transport is the seam:
// curl_transport_impl does it with libcurl, tests use a fake that answers in
// memory (no sockets).

#include <atomic>
#include <optional>
#include <string>
#include <vector>

namespace balctl::cli {

struct http_call {
  std::string method;                 // GET, POST, PUT, PATCH, DELETE
  std::string url;                    // absolute
  std::optional<std::string> body;    // sent with Content-Type (any bytes)
  std::string content_type = "application/json";
  /// When set and it turns true, the transfer stops (unreachable,
  /// "aborted"): a job told to stop does not wait out a slow upload.
  const std::atomic<bool>* abort = nullptr;
  std::string token;                  // "" = no Authorization header
  long timeout_s = 30;
  std::string cacert;                 // "" = system CA store
  bool insecure = false;
  std::vector<std::string> headers;   // more, each "Name: value"
};

struct http_reply {
  enum class kind {
    answered,    // an HTTP status came back (any status)
    unreachable, // no answer: connect, DNS, TLS, timeout (curl_easy_perform)
    failed,      // our side: setup, allocation, oversized body
  };
  kind what = kind::failed;
  std::string error;         // unless answered: what went wrong (curl's message)
  bool tls_verify_failed = false; // unreachable because the certificate did not verify
  long status = 0;
  std::string body;
  std::string retry_after;   // Retry-After header value, "" when absent
};

/// Performs one request. Never throws; never puts the token in error.
class http_transport {
public:
  virtual ~http_transport() = default;
  virtual http_reply perform(const http_call& call) = 0;
};

/// libcurl. Redirects are not followed (the token must not travel to
/// another host); only http and https are allowed. The caller owns
/// curl_global_init/cleanup (curl_global_guard).
class curl_transport_impl final : public http_transport {
public:
  http_reply perform(const http_call& call) override;
};

/// curl_global_init for the process's lifetime; ok() false if it failed.
class curl_global_guard {
public:
  curl_global_guard();
  ~curl_global_guard();
  curl_global_guard(const curl_global_guard&) = delete;
  curl_global_guard& operator=(const curl_global_guard&) = delete;
  bool ok() const { return ok_; }

private:
  bool ok_ = false;
};

} // namespace balctl::cli
