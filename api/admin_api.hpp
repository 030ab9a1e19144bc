#pragma once

// The admin HTTP API (docs/openapi.yaml): routing, bearer-token auth,
// request validation, JSON rendering, agent enrollment with per-source
// rate limiting, /metrics. Sits between transport/http_server (bytes) and
// api::control (the engine). Runs on the HTTP loop thread; answers come
// back through the responder from wherever the engine answers.
//
// Every refusal has the one error shape of http::error_response: status,
// a machine-readable code, the field at fault and a sentence. A request is
// validated completely before the engine is asked anything, so nothing is
// ever half-applied.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "api/auth.hpp"
#include "adapters/objstore/chunk_store.hpp"
#include "api/control.hpp"
#include "api/rate_limit.hpp"
#include "engine/clock.hpp"
#include "engine/metrics.hpp"
#include "engine/registry.hpp"
#include "transport/http_server.hpp"
#include "transport/tls_listener.hpp"
#include "transport/udp_listener.hpp"

namespace balctl::notify {
class notify_service;
}
namespace balctl::objstore {
class store_handle;
}

namespace balctl::api {

class chunk_routes;

/// The admin section of the config (config/config.hpp, one place for every
/// key), with the values whose "" means "derive it" already derived by
/// balctld once it has bound its ports: public_url and the heartbeat
/// endpoints are never empty here, except heartbeat_tls_endpoint without a
/// TLS listener.
using admin_options = admin_config;

/// Where /metrics reads from; any may be null (left out).
struct metrics_sources {
  const ingest_counters* ingest = nullptr;
  const engine_metrics* engine = nullptr;
  const http::server_counters* http = nullptr;
  // The heartbeat loop's lag (udp_listener), latest and largest.
  const std::atomic<std::int64_t>* ingest_lag_ms = nullptr;
  const std::atomic<std::int64_t>* ingest_lag_max_ms = nullptr;
  // Acknowledgements sent over UDP, and the TLS heartbeat listener.
  const udp_listener* udp = nullptr;
  const tls_listener* tls = nullptr;
  // Alerts by e-mail and webhook (adapters/notify).
  const notify::notify_service* notify = nullptr;
  // Protection's object store, as the actors use it (adapters/objstore).
  const objstore::store_handle* chunks = nullptr;
};

/// Outcomes of enrollment attempts, by reason (/metrics).
enum class enroll_outcome : std::uint8_t {
  accepted,
  invalid_secret,
  hostname_mismatch,
  source_not_allowed,
  rate_limited,
  malformed,
  error,
  count_
};
const char* to_string(enroll_outcome o);

// Unauthenticated downloads of the agent binary (about 10 MB), for all
// sources together: a burst of agent_binary_burst, then one every
// agent_binary_refill_ms; beyond that, 429 rate_limited with Retry-After.
// Each 200 holds its own copy of the binary until the client has read it,
// and the HTTP server closes a connection that has not taken its response
// within admin.idle_timeout_s of it being queued. So however many slow
// readers connect, at most burst + idle_timeout_s / 2 binaries are in
// flight: 10 + 60 / 2 = 40 (about 400 MB) with the defaults, where without
// the bucket it was one per connection (1024 x 10 MB). install-agent.sh
// retries a 429 after its Retry-After; fleets that install faster than one
// server per 2 s set admin.agent_binary_url to serve it from elsewhere.
constexpr int agent_binary_burst = 10;
constexpr std::int64_t agent_binary_refill_ms = 2'000;

/// GET /agent/{install-agent.sh,balctl-agent}: the two files of
/// admin.agent_dist_dir, served without a token. Each file is read once
/// and kept in memory; every request stat()s it and reads it again only
/// when it changed (inode, size, mtime or ctime), so a replaced binary is
/// served at once. The binary goes through the agent_binary_* bucket.
/// Thread-safe.
class agent_files {
public:
  agent_files(std::string dist_dir, const clock& clk,
              int binary_burst = agent_binary_burst,
              std::int64_t binary_refill_ms = agent_binary_refill_ms);

  http::response get(const std::string& name);

private:
  struct file_stamp {
    std::uint64_t dev = 0, ino = 0, size = 0;
    std::int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const file_stamp& o) const {
      return dev == o.dev && ino == o.ino && size == o.size &&
             mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
    }
  };
  struct cached {
    std::shared_ptr<const std::string> body; // null: not loaded
    file_stamp stamp;
    bool unavailable_logged = false;
  };
  /// The file's current bytes, from the cache or read anew; null when it
  /// cannot be read (logged once until it can again).
  std::shared_ptr<const std::string> load(const std::string& name, cached& c);

  std::string dist_dir_;
  const clock& clk_;
  int binary_burst_;
  std::int64_t binary_refill_ms_;
  token_bucket binary_bucket_;
  std::mutex mu_; // guards script_ and binary_
  cached script_;
  cached binary_;
};

class admin_api {
public:
  admin_api(admin_options opts, control& engine, const clock& clk,
            metrics_sources metrics);

  /// The http::server handler.
  void handle(http::request&& req, http::responder respond);

  std::uint64_t enrollments(enroll_outcome o) const {
    return (*enroll_counts_)[static_cast<std::size_t>(o)].load();
  }

  /// The Prometheus text of /metrics.
  std::string metrics_text() const;

  /// Serves the embedded chunk store at /v1/chunks/ (api/chunk_routes; no
  /// token: each URL's signature authorises it). Call before the first
  /// request.
  void serve_chunks(std::shared_ptr<chunk_routes> routes) { chunks_ = std::move(routes); }

private:
  using counts = std::array<std::atomic<std::uint64_t>,
                            static_cast<std::size_t>(enroll_outcome::count_)>;

  void route(http::request& req, http::responder& respond);
  void enroll(http::request& req, http::responder& respond);

  admin_options opts_;
  control& engine_;
  const clock& clk_;
  metrics_sources metrics_;
  token_auth auth_;
  // Shared with the callbacks, which may run on engine threads after this
  // object is gone (the HTTP server stops before the engine).
  std::shared_ptr<failure_limiter> limiter_;
  std::shared_ptr<counts> enroll_counts_;
  agent_files agent_files_;
  std::shared_ptr<chunk_routes> chunks_; // null: no embedded chunk store
};

/// The one-line install command for a member (the seed's "Install the
/// agent"), for its Linux family ("rhel" or "debian"): fetch
/// deploy/install-agent.sh from install_url and run it with the enrolment
/// arguments; with a binary_url (admin.agent_binary_url), the script
/// downloads the agent from there (--binary) instead of from api_base.
/// Every value is single-quoted for the shell.
std::string install_command(const std::string& family,
                            const std::string& install_url,
                            const std::string& secret,
                            const std::string& hostname,
                            const std::string& api_base,
                            const std::string& binary_url = "");

/// Where install commands fetch install-agent.sh: admin.agent_install_url,
/// else the engine itself (<public_url>/agent/install-agent.sh).
std::string agent_install_url(const admin_options& opts);

/// The HTTP status of an API error code.
int status_of(const std::string& code);

} // namespace balctl::api
