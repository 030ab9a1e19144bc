#pragma once

// The embedded chunk store: replication chunks as files under one
// directory, served by the engine's own admin listener at /v1/chunks/<key>
// (api/chunk_routes), for single-node set-ups without a bucket.
//
// URLs carry their own authorisation, like S3's presigned URLs:
//   <public_url>/v1/chunks/<key>?expires=<unix s>&sig=<hex>
//   sig = HMAC-SHA256(secret, METHOD "\n" key "\n" expires)
// where secret is 32 random bytes the store makes once and keeps in
// <dir>/.secret (0600), so URLs handed out survive an engine restart. A GET
// URL also allows HEAD.
//
// Layout: <dir>/<key> (directories 0700, files 0600). A PUT goes to
// <dir>/<key's dir>/.tmp-<random>, is fsynced and renamed over the key, so
// a reader sees the old chunk or the new one, never half of one. Names
// starting with '.' are never keys (valid_key), so the secret and temporary
// files cannot be reached through a URL; leftover temporary files of a
// crash are removed when the store opens.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "adapters/objstore/object_store.hpp"
#include "transport/http_server.hpp"

namespace balctl::objstore {

struct chunk_store_stats {
  std::uint64_t files = 0; // chunks held
  std::uint64_t bytes = 0; // their total size
};

class chunk_store final : public object_store {
public:
  /// Opens dir (creating it 0700, with parents, when missing), reads or
  /// creates its secret, removes stale temporary files and counts what it
  /// holds. public_url: the engine's base URL as agents reach it ("http://
  /// 10.0.0.5:7947"; a trailing '/' is dropped). max_object_bytes: the
  /// largest chunk a PUT may store. remove_on_close: the directory goes
  /// with the store (a ":memory:" engine's chunks). Throws store_error
  /// naming the path.
  chunk_store(std::string dir, std::string public_url, std::size_t max_object_bytes,
              bool remove_on_close = false);
  ~chunk_store() override;
  chunk_store(const chunk_store&) = delete;
  chunk_store& operator=(const chunk_store&) = delete;

  std::string presign(const std::string& method, const std::string& key, int ttl_s,
                      std::int64_t now_ms) const override;
  /// "embedded <dir> at <public_url>/v1/chunks/".
  std::string describe() const override;
  /// Unlinks the chunk's file; absent is fine.
  void remove(const std::string& key) override;
  /// Removes the file or the directory tree at prefix (whole segments).
  void remove_prefix(const std::string& prefix) override;

  /// One request of the /v1/chunks/ route: method, the key (the path after
  /// "/v1/chunks/", raw), the raw query string and the body. Checks the
  /// signature and expiry (403, JSON error codes chunk_signature_invalid and
  /// chunk_url_expired), then: PUT stores the body (201; 413 over
  /// max_object_bytes), GET returns it (200 application/octet-stream; 404
  /// chunk_not_found), HEAD the same without the body, DELETE removes it
  /// (204, also when absent). A key that is not valid_key: 400 invalid_key.
  /// Blocking file I/O: call it off the HTTP loop. Thread-safe.
  http::response handle(const std::string& method, const std::string& key,
                        const std::string& query, std::string&& body,
                        std::int64_t now_ms);
  /// handle()'s checks without the body: the refusal it would answer, or
  /// nothing when the URL allows the request. Cheap (one HMAC, no I/O): the
  /// HTTP loop asks it as soon as a request's headers are in, so a forged
  /// or expired URL never gets room for its body. Thread-safe.
  std::optional<http::response> authorise(const std::string& method, const std::string& key,
                                          const std::string& query, std::int64_t now_ms) const;

  chunk_store_stats stats() const;
  const std::string& dir() const { return dir_; }
  std::size_t max_object_bytes() const { return max_object_bytes_; }

  /// The route's path prefix.
  static constexpr const char* route_prefix = "/v1/chunks/";

private:
  std::string signature(const std::string& method, const std::string& key,
                        const std::string& expires) const;
  std::string path_of(const std::string& key) const { return dir_ + "/" + key; }
  http::response put(const std::string& key, const std::string& body);
  http::response get(const std::string& key, bool head);
  http::response del(const std::string& key);

  std::string dir_;
  std::string public_url_;
  std::size_t max_object_bytes_;
  bool remove_on_close_;
  std::string secret_; // 32 bytes, raw

  // Guards the counters and makes the replace/remove of a file and its
  // accounting one step.
  mutable std::mutex mu_;
  chunk_store_stats stats_;
};

} // namespace balctl::objstore
