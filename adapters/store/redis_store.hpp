#pragma once

// The Redis store: the same store interface as the SQLite default
// (store.hpp), on a Redis connection (redis_client: hiredis async on a
// libuv loop). Selected by the config's "store": "redis://...". See
// redis_store.cpp for the keys; docs/design/redis-and-cluster.md for what
// is still to come (write-behind while Redis is down, the cluster).

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

/// redis://[user[:password]@]host[:port][/db]; nullopt and *error (naming
/// the part at fault, never the password) when it is not one.
std::optional<redis_store_options> parse_redis_url(const std::string& url, std::string* error);

/// Connects (within the connect timeout) or throws store_error with the
/// reason: a Redis that is down at start is a clear error.
std::unique_ptr<store> open_redis_store(const redis_store_options& o);

/// The config's Redis (store, store_password_file, store_prefix,
/// store_timeout_ms); throws store_error naming the key at fault.
redis_store_options redis_options_for(const engine_config& cfg);

} // namespace balctl
