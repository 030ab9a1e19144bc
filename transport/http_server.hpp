#pragma once

// The admin HTTP endpoint's transport: HTTP/1.1 with keep-alive on one libuv
// loop on its own thread, parsed by Debian's http-parser (nodejs/http-parser
// 2.9), TLS through OpenSSL memory BIOs when a certificate is configured.
// It only moves requests and responses: routing, auth and JSON live in
// api/ (admin_api), which gets each request through the handler.
//
// Limits (server_limits) are enforced here, before the handler sees
// anything: header bytes, body bytes, the time a request may take to
// arrive, idle keep-alive time and open connections. A request that breaks
// one gets a JSON error and the connection is closed; nothing reaches the
// handler half-read.
//
// Responses may come later and from any thread: the handler gets a
// responder it may move to an actor and call once from there; the response
// is handed to the loop through a uv_async_t. Responses on one connection
// go out in request order (pipelining is answered in order).

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "engine/registry.hpp" // ip_address

namespace balctl::http {

struct request {
  std::string method; // "GET", "POST", ...
  std::string path;   // decoded of nothing: the raw path, without the query
  std::string query;  // raw query string without '?', "" when none
  // Header names lower-cased, values as sent (trimmed), in arrival order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  ip_address peer; // the TCP peer's address
  bool tls = false;

  /// The first header with this (lower-case) name, or nullptr.
  const std::string* header(std::string_view lower_name) const;
};

struct response {
  int status = 200;
  std::string content_type = "application/json";
  // Extra headers (Content-Length, Connection, Date are the server's).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// A JSON error body in the API's one error shape:
/// {"error":{"status":400,"code":"...","field":"...","message":"..."}}.
/// field may be empty (then it is null).
response error_response(int status, std::string_view code,
                        std::string_view field, std::string_view message);

class server;

/// Answers one request, once, from any thread. Copies share the one answer:
/// the first call wins, later calls are ignored. Calling after the server
/// stopped or the connection closed is harmless.
class responder {
public:
  responder() = default;
  void operator()(response r) const;

private:
  friend class server;
  struct slot;
  std::shared_ptr<slot> slot_;
};

using handler = std::function<void(request&& req, responder respond)>;

struct server_limits {
  std::size_t max_header_bytes = 16 * 1024;  // request line + headers
  std::size_t max_body_bytes = 1024 * 1024;
  std::int64_t request_timeout_ms = 10'000;  // first byte → whole request
  std::int64_t idle_timeout_ms = 60'000;     // keep-alive between requests
  std::size_t max_connections = 1024;        // beyond: accepted and closed with 503
  /// Other limits for requests whose path starts with path_prefix (the
  /// embedded chunk store's multi-MiB PUTs under "/v1/chunks/"), decided
  /// when the request's headers are complete; the first match wins. Every
  /// other request keeps max_body_bytes and request_timeout_ms. A body
  /// with a Content-Length is read into one buffer of that size: however
  /// big, it is copied once, from the socket, and moved from there.
  struct route_limit {
    std::string path_prefix;
    std::size_t max_body_bytes = 0;
    std::int64_t request_timeout_ms = 0;
    /// When set, called on the loop with the request's method, path, query
    /// and headers (no body yet) as soon as its headers are complete: a
    /// response refuses the request there, before any of its body is read
    /// or room made for it, and the connection closes.
    std::function<std::optional<response>(const request& head)> admit;
  };
  std::vector<route_limit> routes;
};

struct tls_files {
  std::string cert_file; // PEM, may hold the chain
  std::string key_file;  // PEM
};

/// Per-server counters, relaxed atomics, read by /metrics and tests.
struct server_counters {
  // Responses sent, by status code (index = code, 100..599).
  std::array<std::atomic<std::uint64_t>, 600> responses{};
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_rejected{0}; // over max_connections
  std::atomic<std::uint64_t> connections_open{0};
  std::atomic<std::uint64_t> parse_errors{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> tls_handshake_errors{0};
  // Event-loop lag: how late a 100 ms repeating timer fired, in ms. The
  // latest sample and the largest since start.
  std::atomic<std::int64_t> loop_lag_ms{0};
  std::atomic<std::int64_t> loop_lag_max_ms{0};
};

class server {
public:
  /// listen: "host:port" or "[v6]:port"; port 0 picks a free port.
  /// tls: when set, every connection must speak TLS.
  server(std::string listen, server_limits limits, handler h,
         std::optional<tls_files> tls = std::nullopt);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Loads the certificate (if any), binds, listens and starts the loop
  /// thread. Returns "" on success, else an error naming the address or
  /// file. The socket is listening when start() returns.
  std::string start();
  std::uint16_t bound_port() const { return port_; }
  /// Thread-safe and idempotent: closes every connection and handle, runs
  /// the loop dry and joins the thread. Pending responders become no-ops.
  void stop();

  const server_counters& counters() const { return counters_; }

  struct impl;

private:
  // Before impl_, which writes to it: built before it, destroyed after it.
  server_counters counters_;
  std::unique_ptr<impl> impl_;
  std::uint16_t port_ = 0;
};

} // namespace balctl::http
