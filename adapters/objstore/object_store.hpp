#pragma once

// Where Protection's replication chunks live while a run moves an account
// from one member to another. Agents never talk to the store with the
// engine's credentials: the engine presigns a URL per chunk and method, and
// the agent does a plain HTTP PUT/GET/DELETE on it (docs/protocol.md, "The
// agent API"). The engine never carries chunk bytes for S3; for the
// embedded store (chunk_store) its own admin listener serves them.
//
//   object_store ─┬─ chunk_store  embedded, files under protection.chunk_dir
//                 └─ s3_store     any S3-compatible bucket, SigV4 presigned
//
// No libuv, no CAF: presign is pure (time passed in) and cheap; remove and
// remove_prefix may block (disk, or an HTTP round trip) and are called only
// from a store or worker thread, never from a libuv loop or an actor.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace balctl {
struct engine_config;
}

namespace balctl::objstore {

/// Longest a presigned URL may stay valid: S3's limit for SigV4 query
/// authentication (7 days); the embedded store keeps the same bound.
constexpr int max_url_ttl_s = 604800;

/// A refused argument or an unusable configuration (the message names the
/// key or value at fault; never a secret).
class store_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class object_store {
public:
  virtual ~object_store() = default;

  /// A full URL that lets its holder do `method` ("PUT", "GET", "DELETE"
  /// or "HEAD") on object `key` until now_ms / 1000 + ttl_s. Keys are
  /// relative paths of segments [A-Za-z0-9_-][A-Za-z0-9._-]* joined by
  /// '/', e.g. "<pool>/<run>/<index>" (valid_key). Throws store_error for
  /// an invalid method, key or ttl_s (outside 1..max_url_ttl_s).
  virtual std::string presign(const std::string& method, const std::string& key, int ttl_s,
                              std::int64_t now_ms) const = 0;

  /// What and where, for logs and /readyz: no secret, no signature.
  virtual std::string describe() const = 0;

  /// Removes one object; absent is not an error. Blocking. Throws
  /// store_error when the backend refuses or cannot be reached.
  virtual void remove(const std::string& key) = 0;

  /// Removes every object whose key is `prefix` or starts with
  /// `prefix + "/"` (whole segments: "pool/run" removes "pool/run/0",
  /// never "pool/run2/0"). Blocking. What each backend does is documented
  /// on it (S3: nothing; see s3_store).
  virtual void remove_prefix(const std::string& prefix) = 0;
};

/// True for a key as object_store documents it: 1..512 bytes of segments
/// of [A-Za-z0-9_-][A-Za-z0-9._-]* (at most 128 bytes each) joined by '/'.
/// No leading or trailing '/', no empty, "." or ".." segment, nothing that
/// needs escaping in a URL or can leave the store's directory.
bool valid_key(const std::string& key);

/// The store protection.object_store names, built from the config:
/// "embedded" → chunk_store in protection.chunk_dir (created, with its
/// secret, when missing; with store_path ":memory:" and no chunk_dir, a
/// temporary directory removed with the store) serving at
/// protection.public_url; "s3" →
/// s3_store (reads the secret files now). Throws store_error whose message
/// starts with the config key at fault, e.g.
/// "protection.s3.secret_access_key_file = \"/x\": cannot read: ...".
std::unique_ptr<object_store> make_object_store(const engine_config& cfg);

} // namespace balctl::objstore
