#pragma once

// Object storage for Protection's replication chunks (DESIGN.md: adapters
// behind small interfaces). Agents move the bytes with plain HTTP to URLs
// the engine presigns; the engine never proxies a chunk it does not store
// itself.

#include <cstdint>
#include <string>

namespace balctl {

class object_store {
public:
  virtual ~object_store() = default;
  /// A URL that lets its holder do method (PUT | GET | DELETE | HEAD) on
  /// key until now + ttl_s.
  virtual std::string presign(const std::string& method, const std::string& key, int ttl_s,
                              std::int64_t now_ms) const = 0;
  /// Removes key if it is there (the engine's own cleanup). May touch the
  /// disk: not for a libuv loop thread.
  virtual void remove(const std::string& key) = 0;
  /// Where it is, for logs; never a secret.
  virtual std::string describe() const = 0;
};

} // namespace balctl
