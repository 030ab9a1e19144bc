#pragma once

// A stand-in of Amazon S3's REST API (the object part of it) on the
// project's own HTTP server, for tests of adapters/objstore/s3_store.
// No S3-compatible server ships in Debian 12, and npm's s3rver (3.7.1)
// parses SigV4 but does not check it ("Signature version 4 calculation is
// unimplemented" in its authentication middleware), so it would pass a
// tampered URL. This one checks presigned URLs the way S3 documents them
// ("Authenticating Requests: Using Query Parameters (AWS Signature Version
// 4)"), with its own canonical request, independent of the presigner under
// test.
//
// What it serves (path style /<bucket>/<key>, or virtual-hosted with the
// bucket as the first label of Host):
//   PUT    Object   200, ETag
//   GET    Object   200 with the bytes, ETag; 404 NoSuchKey
//   HEAD   Object   the same without the body
//   DELETE Object   204, also when absent (as S3)
// Authentication: SigV4 query parameters only (X-Amz-Algorithm,
// -Credential, -Date, -Expires, -SignedHeaders, -Signature, optional
// -Security-Token); a request without them is 403 AccessDenied (the bucket
// is private). Errors are S3's XML body
//   <Error><Code>..</Code><Message>..</Message><RequestId>..</RequestId></Error>
// with S3's status:
//   unknown access key id                   403 InvalidAccessKeyId
//   signature differs                       403 SignatureDoesNotMatch
//   X-Amz-Date + X-Amz-Expires in the past  403 AccessDenied "Request has expired"
//   X-Amz-Expires > 604800, bad parameters  400 AuthorizationQueryParametersError
//   session token missing or wrong          403 InvalidToken
//   slow_down (a test's throttle) says so   503 SlowDown
//   unknown bucket                          404 NoSuchBucket
//   absent object                           404 NoSuchKey
//   other methods                           405 MethodNotAllowed
//
// Thread-safe: the server's loop answers while the test reads counters.
// The clock is injectable so tests expire URLs without sleeping.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace balctl::test {

struct s3_standin_options {
  std::string listen = "127.0.0.1:0"; // loopback only
  std::string region = "us-east-1";
  std::vector<std::string> buckets = {"chunks"};
  std::string access_key_id = "AKIDSTANDIN";
  std::string secret_access_key = "standin/secret+key";
  std::string session_token;          // "" = none required
  std::size_t max_object_bytes = 64 * 1024 * 1024;
  /// Unix time in ms; default the system clock.
  std::function<std::int64_t()> now_ms;
  /// Called for each authenticated request with its method and
  /// "bucket/key"; true answers 503 SlowDown, as S3 does when it throttles
  /// (a client retries). Called on the server's loop thread.
  std::function<bool(const std::string& method, const std::string& name)> slow_down;
};

class s3_standin {
public:
  explicit s3_standin(s3_standin_options opt);
  ~s3_standin();
  s3_standin(const s3_standin&) = delete;
  s3_standin& operator=(const s3_standin&) = delete;

  /// "" on success.
  std::string start();
  void stop();
  /// "http://127.0.0.1:<port>".
  std::string endpoint() const;

  /// Requests by method ("PUT", "GET", ...), answered or refused.
  std::uint64_t requests(const std::string& method) const;
  /// Requests refused with this S3 error code.
  std::uint64_t errors(const std::string& code) const;
  /// The object's bytes, if present.
  std::optional<std::string> object(const std::string& bucket, const std::string& key) const;
  std::size_t object_count() const;
  /// PUTs that stored an object, by "bucket/key".
  std::uint64_t puts_stored(const std::string& name) const;
  /// PUTs that stored an object, in all.
  std::uint64_t puts_stored() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace balctl::test
