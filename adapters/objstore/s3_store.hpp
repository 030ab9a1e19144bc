#pragma once

// Replication chunks in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW,
// Backblaze B2, Cloudflare R2, ...). The engine only signs: every chunk
// URL is a SigV4 presigned URL (sigv4.hpp) for one method and one object,
// and the agent moves the bytes itself.
//
// Object names: <prefix><key>, e.g. prefix "balctl/" and key
// "web/r-17/3" → balctl/web/r-17/3, in
//   path style:           <endpoint>/<bucket>/<name>
//   virtual-hosted style: <scheme>://<bucket>.<endpoint host>[/<base>]/<name>

#include <string>

#include "adapters/objstore/object_store.hpp"
#include "adapters/objstore/sigv4.hpp"
#include "config/config.hpp"

namespace balctl::objstore {

class s3_store final : public object_store {
public:
  /// cfg as config/ validated it; the secret key and session token already
  /// read from their files. timeout_ms bounds each blocking request of
  /// remove(). Throws store_error naming the protection.s3 key at fault.
  s3_store(s3_config cfg, std::string secret_access_key, std::string session_token = "",
           long timeout_ms = 30'000);

  std::string presign(const std::string& method, const std::string& key, int ttl_s,
                      std::int64_t now_ms) const override;
  /// "s3 <endpoint> bucket <bucket> prefix <prefix> (path-style|virtual-hosted)".
  std::string describe() const override;
  /// A DELETE of a freshly presigned URL through libcurl, blocking up to
  /// timeout_ms. 2xx and 404 are success (S3 answers 204 for an absent
  /// object too); anything else throws store_error with the status and S3's
  /// error code.
  void remove(const std::string& key) override;
  /// Does nothing: deleting by prefix needs ListObjectsV2 and one DELETE per
  /// object, which the engine does not need. It removes a run's chunks one
  /// by one with remove() (it knows them from the manifest), and agents
  /// DELETE theirs after a restore. For leftovers of abandoned runs, give
  /// the bucket a lifecycle rule that expires objects under the prefix
  /// (docs/config.md).
  void remove_prefix(const std::string& prefix) override;

private:
  s3_config cfg_;
  sigv4::credentials creds_;
  std::string scheme_;    // "http" | "https"
  std::string host_;      // the Host header: bucket-qualified when virtual-hosted
  std::string base_path_; // the endpoint's path, no trailing '/' ("" or "/base")
  long timeout_ms_;
};

} // namespace balctl::objstore
