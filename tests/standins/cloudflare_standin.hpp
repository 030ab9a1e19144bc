#pragma once

// A stand-in of Cloudflare's API v4 (the DNS part of it) on the project's
// own HTTP server, for tests of adapters/dns/cloudflare_provider and for the
// cut-over storm benchmark (tests/standins/cloudflare_main.cpp runs it as a
// process). Cloudflare cannot run here; this answers the way its documented
// API does, so a test that passes against it says something about the real
// one.
//
// What it serves, under /client/v4 (Bearer tokens only):
//   GET    /zones[?name=&status=&page=&per_page=]   per_page 5..50, default 20
//   GET    /zones/{zone_id}
//   GET    /zones/{zone_id}/dns_records[?type=&name=&content=&proxied=
//                                         &page=&per_page=&order=&direction=&match=]
//          per_page 1..max_per_page (documented maximum 5,000,000), default 100
//   POST   /zones/{zone_id}/dns_records              create
//   GET    /zones/{zone_id}/dns_records/{id}
//   PATCH  /zones/{zone_id}/dns_records/{id}         fields given replace fields
//   PUT    /zones/{zone_id}/dns_records/{id}         the whole record
//   DELETE /zones/{zone_id}/dns_records/{id}         result {"id": ...}
// Every answer is Cloudflare's envelope:
//   {"success":bool,"errors":[{"code":int,"message":str}],"messages":[],
//    "result":...,"result_info":{"page","per_page","count","total_count","total_pages"}}
//
// Cloudflare's rules it keeps (the error code and HTTP status each answers):
//   no Authorization header                 400  9106
//   Authorization not "Bearer <token>"      400  6003 (error_chain 6111)
//   token unknown, or all tokens revoked    403 10000 Authentication error
//   over the per-user rate limit            429   971, Retry-After: seconds, rounded up
//   unknown zone id                         404  7003 (+7000)
//   unknown record id                       404 81044 Record does not exist.
//   body not a JSON object                  400  9207
//   type missing or not one we keep         400  9020
//   name not a valid host name              400  9000
//   A content not an IPv4 address           400  9005
//   AAAA content not an IPv6 address        400  9006
//   CNAME content not a host name           400  9007
//   ttl not 1 (automatic) nor 60..86400     400  9021
//   proxied on a type other than A/AAAA/CNAME 400 9004
//   MX priority / SRV data missing or bad   400  1004 DNS Validation Error
//   an identical record exists              400 81058
//   A/AAAA/CNAME next to a CNAME (or the reverse) 400 81053
// and what it does silently, as Cloudflare does: a name outside the zone is
// taken as relative to it ("www.other.org" in example.com becomes
// "www.other.org.example.com"), "@" is the apex, names are stored lower
// case without the trailing dot, AAAA content in canonical form, and a
// proxied record's ttl is 1 (Auto) whatever was asked. Writes answer 200.
//
// Rate limit: Cloudflare's is 1200 requests per 5 minutes per user; here
// all valid tokens are one user, the window slides (a request is admitted
// when fewer than rate_limit_requests were admitted in the last
// rate_limit_window_ms) and Retry-After says when the oldest admitted
// request leaves the window. Refused credentials are answered before the
// limit and do not count in it. The clock is injectable so tests move time
// without sleeping.
//
// Everything here is thread-safe: the server's loop thread answers requests
// while the test's thread seeds records and reads counters.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace balctl::test {

struct cloudflare_standin_options {
  /// "host:port"; only loopback addresses are accepted (start() refuses others).
  std::string listen = "127.0.0.1:0";
  /// The API tokens that authenticate (one user).
  std::vector<std::string> tokens;
  /// At most this many requests per window; 0 = no limit.
  std::uint64_t rate_limit_requests = 1200;
  /// The sliding window, ms (Cloudflare: 300 s). Also the window of
  /// max_requests_in_window when there is no limit.
  std::int64_t rate_limit_window_ms = 300'000;
  /// Milliseconds on any monotonic scale; empty = std::chrono::steady_clock.
  std::function<std::int64_t()> clock_ms;
  /// Largest per_page of a dns_records list (larger values are clamped).
  std::int64_t max_per_page = 5'000'000;
  /// Serve GET /__standin/stats and POST /__standin/seed (no auth, outside
  /// /client/v4): the standalone binary turns them on.
  bool control_endpoints = false;
};

/// One DNS record as Cloudflare stores it.
struct cloudflare_record {
  std::string id;      // 32 hex digits, set by the stand-in
  std::string zone;    // zone name ("example.com")
  std::string name;    // absolute, lower case, no trailing dot
  std::string type;    // "A", "AAAA", "CNAME", "MX", "SRV", "TXT", "NS"
  /// A/AAAA: the address; CNAME/NS/MX: the host; SRV: "weight port target"
  /// (Cloudflare's own form; priority is separate); TXT: the text.
  std::string content;
  int ttl = 1;         // 1 = automatic
  bool proxied = false;
  std::optional<int> priority; // MX, SRV
  /// SRV: {"priority","weight","port","target"}; null for other types.
  nlohmann::json data;
};

/// Counters since start (a snapshot).
struct cloudflare_standin_counters {
  std::uint64_t requests = 0;          // /client/v4 requests, any outcome
  std::uint64_t writes = 0;            // POST/PATCH/PUT/DELETE that succeeded
  std::uint64_t rate_limited = 0;      // 429 answers sent
  std::uint64_t unauthorized = 0;      // credentials refused (400 9106/6003, 403 10000)
  std::uint64_t injected_failures = 0; // answers forced by fail_next()
  std::map<std::string, std::uint64_t> by_method; // "GET" -> n, all /client/v4 requests
  std::map<int, std::uint64_t> by_status;         // HTTP status -> n
  /// The most /client/v4 requests (any outcome, refused ones too) that
  /// arrived within one rate_limit_window_ms: what a client really sent.
  std::uint64_t max_requests_in_window = 0;
};

class cloudflare_standin {
public:
  explicit cloudflare_standin(cloudflare_standin_options o = {});
  /// stop().
  ~cloudflare_standin();
  cloudflare_standin(const cloudflare_standin&) = delete;
  cloudflare_standin& operator=(const cloudflare_standin&) = delete;

  /// Binds (loopback only) and serves. Returns "" or why not.
  std::string start();
  /// Idempotent; also run by the destructor.
  void stop();
  std::uint16_t port() const;
  /// "http://127.0.0.1:PORT/client/v4".
  std::string api_base() const;

  // --- test hooks (none goes through the API, the rate limit or the counters)

  /// Adds a zone (idempotent) and returns its id: 32 hex digits derived
  /// from the name, so the same name always has the same id.
  std::string add_zone(const std::string& name);
  /// The zone's id, "" when there is no such zone.
  std::string zone_id(const std::string& name) const;
  /// Accepts and revokes tokens.
  void add_token(const std::string& token);
  /// true: every token is refused with 403 10000 (credentials revoked).
  void refuse_all_tokens(bool refuse);

  /// Stores a record in zone `r.zone` with the API's validation of its
  /// fields (type, name, content, ttl, proxied) but without the duplicate
  /// checks, so tests can set up duplicates. MX may give priority, or
  /// content "10 mail.example.com"; SRV may give data, or content
  /// "10 5 5060 sip.example.com". Returns the new id; throws
  /// std::invalid_argument naming the field when the record is refused.
  std::string seed(const cloudflare_record& r);
  /// seed() for each element of a JSON array of
  /// {"zone","name","type","content","ttl","proxied"[,"priority","data"]};
  /// a missing zone is added. All or nothing. Returns how many.
  std::size_t seed_json(const nlohmann::json& records);
  /// The zone's records in creation order (empty for an unknown zone).
  std::vector<cloudflare_record> records(const std::string& zone) const;

  /// The next n /client/v4 requests that pass authentication and the rate
  /// limit are answered with this HTTP status and an error envelope (a 429
  /// also carries Retry-After: 1), as Cloudflare's edge does in an outage.
  void fail_next(int n, int http_status);

  cloudflare_standin_counters counters() const;
  /// What GET /__standin/stats answers:
  /// {"requests","writes","rate_limited","unauthorized","injected_failures",
  ///  "by_method":{"GET":n,...},"by_status":{"200":n,...},
  ///  "max_requests_in_window","rate_limit":{"requests","window_ms"},
  ///  "zones","records"}
  nlohmann::json stats() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace balctl::test
