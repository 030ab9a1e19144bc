#pragma once

// AWS Signature Version 4, query-string form (a presigned URL), as S3
// documents it in "Authenticating Requests: Using Query Parameters (AWS
// Signature Version 4)". Pure functions: the time is passed in.
//
//   canonical request = METHOD \n canonical URI \n canonical query \n
//                       "host:" host \n \n "host" \n "UNSIGNED-PAYLOAD"
//   string to sign    = "AWS4-HMAC-SHA256" \n amz_date \n scope \n
//                       hex(SHA-256(canonical request))
//   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" secret, yyyymmdd),
//                       region), service), "aws4_request")
//
// Only the host header is signed and the payload is UNSIGNED-PAYLOAD, so an
// agent may send the URL with any other header and any body.

#include <cstdint>
#include <string>
#include <string_view>

namespace balctl::objstore::sigv4 {

struct credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token; // "" = none (X-Amz-Security-Token left out)
};

struct presign_request {
  std::string method;       // "GET", "PUT", "DELETE", "HEAD"
  std::string scheme;       // "http" | "https"
  std::string host;         // as the Host header: "h" or "h:port" (non-default port)
  std::string path;         // the object's path, not yet encoded: "/bucket/a/b"
  std::string region;       // "us-east-1"
  std::string service = "s3";
  int expires_s = 3600;     // X-Amz-Expires, 1..604800
  std::int64_t now_s = 0;   // signing time, Unix seconds (UTC)
};

/// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters
/// (A-Z a-z 0-9 - . _ ~) as they are, every other byte as %XX (upper-case
/// hex); '/' kept when keep_slash (paths), encoded otherwise (query values).
std::string uri_encode(std::string_view s, bool keep_slash);

/// "20130524T000000Z" for Unix time s.
std::string amz_date(std::int64_t unix_s);

/// The whole URL: scheme://host + encoded path + '?' + the X-Amz-* query,
/// X-Amz-Signature last.
std::string presign_url(const presign_request& req, const credentials& creds);

} // namespace balctl::objstore::sigv4
