#pragma once

// The DNS executors' I/O (DESIGN.md principle 2): one libuv loop on its own
// thread (transport/loop_thread) that runs libcurl's multi interface for the
// HTTP providers and UDP/TCP exchanges for RFC 2136, with no thread per
// request and no blocking call anywhere. Requests come from any thread
// through a uv_async_t and a queue; each completion callback runs on the
// loop thread (actors turn it into a message with caf::anon_send).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "adapters/dns/provider.hpp"

namespace balctl::dns {

/// Per-request HTTP settings (from the provider's configuration).
struct http_options {
  std::int64_t connect_timeout_ms = 5'000;
  std::int64_t timeout_ms = 15'000; // whole request
  std::string ca_file;               // "" = the system trust store
  bool verify_tls = true;            // only a test stand-in turns it off
  std::size_t max_response_bytes = 8 * 1024 * 1024; // larger: transport_error
};

struct dns_io_counters {
  std::atomic<std::uint64_t> http_requests{0};
  std::atomic<std::uint64_t> http_transport_errors{0};
  std::atomic<std::uint64_t> dns_requests{0};
  std::atomic<std::uint64_t> dns_transport_errors{0};
  std::atomic<std::int64_t> loop_lag_ms{0};
  std::atomic<std::int64_t> loop_lag_max_ms{0};
};

/// What executors need of the I/O: two ways to send a request. dns_io is
/// the real one; tests drive executors with a fake that answers in memory.
class transport {
public:
  using http_done = std::function<void(http_response)>;
  using dns_done = std::function<void(dns_response)>;
  virtual ~transport() = default;
  virtual void submit(http_request r, http_options o, http_done cb) = 0;
  virtual void submit(dns_request r, std::int64_t timeout_ms, dns_done cb) = 0;
};

class dns_io final : public transport {
public:

  dns_io();
  /// stop().
  ~dns_io();
  dns_io(const dns_io&) = delete;
  dns_io& operator=(const dns_io&) = delete;

  /// Starts the loop thread. Returns "" or "<call>: <reason>".
  std::string start();
  /// Thread-safe, idempotent. Requests still queued or in flight complete
  /// with transport_error "stopped" (their callbacks run before stop()
  /// returns, on the loop thread or on the caller's thread).
  void stop();

  /// Thread-safe. cb runs exactly once, on the loop thread (or, after
  /// stop(), on the calling thread with transport_error "stopped").
  void submit(http_request r, http_options o, http_done cb) override;
  /// Thread-safe. UDP unless r.tcp; a truncated (TC) UDP answer is retried
  /// over TCP once. timeout_ms bounds the whole exchange.
  void submit(dns_request r, std::int64_t timeout_ms, dns_done cb) override;

  const dns_io_counters& counters() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace balctl::dns
