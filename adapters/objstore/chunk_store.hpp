#pragma once

// The embedded chunk store: replication chunks as files in a directory of
// the engine's, served by its admin HTTP listener at /v1/chunks/{key} to
// URLs it presigned itself: ?expires=<unix s>&sig=<hex HMAC-SHA256(secret,
// METHOD "\n" key "\n" expires)>, under a 32-byte secret kept in the
// directory (0600), so URLs outlive an engine restart. The default object
// store for a single node.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "adapters/objstore/object_store.hpp"

namespace balctl {

class chunk_store final : public object_store {
public:
  /// Opens (creating, 0700) dir and its secret; nullptr and *error when it
  /// cannot. public_url: the engine's base URL as agents reach it.
  static std::unique_ptr<chunk_store> open(const std::string& dir, const std::string& public_url,
                                           std::int64_t max_chunk_bytes, std::string* error);

  std::string presign(const std::string& method, const std::string& key, int ttl_s,
                      std::int64_t now_ms) const override;
  void remove(const std::string& key) override;
  std::string describe() const override { return "embedded chunk store at " + dir_; }
  /// The engine's base URL once its admin listener has bound its port.
  void set_public_url(std::string url);

  struct answer {
    int status = 200;
    std::string body; // the chunk (GET) or a JSON error
    bool json = false;
  };
  /// One request to /v1/chunks/{key}?{query}: checks the signature and its
  /// expiry, then PUT (atomically), GET, HEAD or DELETE.
  answer handle(const std::string& method, const std::string& key, const std::string& query,
                const std::string& body, std::int64_t now_ms);

  /// Whether key is a chunk key: 1 to 4 segments of [A-Za-z0-9._-], none
  /// "." or "..", at most 256 characters.
  static bool valid_key(const std::string& key);

private:
  chunk_store(std::string dir, std::string public_url, std::string secret,
              std::int64_t max_chunk_bytes)
    : dir_(std::move(dir)),
      public_url_(std::move(public_url)),
      secret_(std::move(secret)),
      max_chunk_bytes_(max_chunk_bytes) {}
  std::string sign(const std::string& method, const std::string& key,
                   const std::string& expires) const;
  std::string path_of(const std::string& key) const;

  std::string dir_;
  mutable std::mutex mu_; // public_url_: set once the listener is bound
  std::string public_url_;
  std::string secret_;
  std::int64_t max_chunk_bytes_;
};

} // namespace balctl
