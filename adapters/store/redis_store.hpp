#pragma once

// The Redis store: the same store interface as the SQLite default
// (store.hpp), on a Redis connection (redis_client: its own libuv socket,
// hiredis's protocol, TLS for rediss://). Selected by the config's
// "store": "redis://..." or "rediss://...". See redis_store.cpp for the
// keys; docs/design/redis-and-cluster.md for the design.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "adapters/store/redis_client.hpp"
#include "adapters/store/store.hpp"

namespace balctl {

struct redis_store_options {
  redis::client_options client;
  /// Every key starts with it: engines (or tests) sharing a database.
  std::string prefix = "balctl:";
  /// Tests only: runs just before a write transaction (MULTI/EXEC or a
  /// fenced script) is sent, with the operation's name.
  std::function<void(const char* op)> before_write;
};

/// redis://[user[:password]@]host[:port][/db], or rediss://... for TLS
/// (client.tls set; default port 6379 as well); nullopt and *error (naming
/// the part at fault, never the password) when it is not one.
std::optional<redis_store_options> parse_redis_url(const std::string& url, std::string* error);

/// Connects (within the connect timeout) or throws store_error with the
/// reason: a Redis that is down at start is a clear error.
std::unique_ptr<store> open_redis_store(const redis_store_options& o);

/// The config's Redis (store, store_password_file, store_prefix,
/// store_timeout_ms, store_tls_*); throws store_error naming the key at
/// fault.
redis_store_options redis_options_for(const engine_config& cfg);

} // namespace balctl
