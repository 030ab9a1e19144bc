#pragma once

// A faithful stand-in of cPanel WHM API 1's DNS functions, for tests: the
// real adapters/dns/whm_provider talks to it over loopback HTTP exactly as
// it would talk to WHM on port 2087, and tests read the zones back through
// the hooks below. It runs on the project's own HTTP server
// (transport/http_server, its own loop thread) on 127.0.0.1, port chosen at
// start.
//
// What it keeps of WHM:
//   GET or POST /json-api/<function>?api.version=1&...  (a leading
//   /cpsessNNN/ is accepted too), answered with
//   {"metadata":{"command":..,"reason":..,"result":1|0,"version":1},"data":..}
//   listzones         data.zone[] = {domain, zonefile}
//   dumpzone          domain= ; data.zone[0].record[] as WHM dumps a BIND
//                     zone file: ":RAW" comment lines, "$TTL", the SOA
//                     (Line 4, Lines 7), the NS lines, then the records,
//                     each with its Line; values read from the file are
//                     JSON strings ("ttl":"300"), Line/Lines are numbers
//   addzonerecord     domain= (or zone=), name (absolute with its dot, or
//                     relative to the zone), type, class=IN, ttl (default
//                     86400), and address | exchange+preference |
//                     priority+weight+port+target | cname | txtdata | nsdname;
//                     appended at the end of the file
//   editzonerecord    domain= (or zone=), line=, then any of the above
//   removezonerecord  zone= (or domain=), line=; every later line moves up
//   Every change raises the SOA serial by one. Bad input (no such zone,
//   unknown type, bad address, no record at that line) is HTTP 200 with
//   metadata.result 0 and the reason.
//   Authorization: whm USER:TOKEN; anything else (or a revoked token) is
//   HTTP 403 with cpsrvd's {"cpanelresult":{..."error":"Access denied"...}}.
// What it adds for tests: a sliding-window rate limit (off by default; 429
// with Retry-After in seconds), injected failures, counters.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace balctl::http {
class server;
struct request;
struct response;
} // namespace balctl::http

namespace balctl::test {

/// One resource record of a stand-in zone, in the engine's presentation
/// form (adapters/dns/provider.hpp): A/AAAA an address, MX "10 mail.x.y",
/// SRV "10 5 5060 sip.x.y", NS/CNAME a host name, TXT the text.
struct whm_record {
  std::string name;    // absolute, lower case, no trailing dot
  std::string type;    // "A", "AAAA", "MX", "SRV", "NS", "CNAME", "TXT"
  std::string content;
  int ttl_s = 14400;
  int line = 0;        // records(): the line dumpzone reports; seed() ignores it
};

struct whm_counters {
  std::uint64_t requests = 0;     // every HTTP request received
  std::uint64_t writes = 0;       // successful add/edit/removezonerecord
  std::uint64_t rate_limited = 0; // 429 answers
  std::uint64_t auth_refused = 0; // 401 and 403 answers
};

class whm_standin {
public:
  struct options {
    std::string user = "root";
    std::string token = "WHMSTANDINTOKEN0123456789ABCDEF";
    /// Requests allowed per sliding window; 0 = no limit.
    std::size_t rate_limit_requests = 0;
    std::int64_t rate_limit_window_ms = 60'000;
    /// Milliseconds, monotonic; empty = std::chrono::steady_clock.
    std::function<std::int64_t()> clock_ms;
  };

  whm_standin();
  explicit whm_standin(options o);
  /// stop().
  ~whm_standin();
  whm_standin(const whm_standin&) = delete;
  whm_standin& operator=(const whm_standin&) = delete;

  /// Listens on 127.0.0.1, port chosen by the kernel. "" or why not.
  std::string start();
  /// Idempotent.
  void stop();
  std::uint16_t port() const;
  /// "http://127.0.0.1:PORT", what whm_options::api_base takes.
  std::string api_base() const;
  const std::string& user() const { return opt_.user; }
  const std::string& token() const { return opt_.token; }

  // Test hooks: thread-safe, callable before start() and while serving.

  /// A zone as WHM creates it: header comments, $TTL 14400, SOA, NS
  /// ns1.ZONE and ns2.ZONE. Lines 1..13; records start at line 14.
  void add_zone(const std::string& zone);
  /// Appends a record to the end of the zone's file, as addzonerecord
  /// would (no write counted, serial raised). "" or why it was refused.
  std::string seed(const std::string& zone, const whm_record& r);
  /// The zone's resource records other than the SOA, in file order, with
  /// their lines; empty when the zone does not exist.
  std::vector<whm_record> records(const std::string& zone) const;
  /// Those of one name (absolute, any case and dot) and type.
  std::vector<whm_record> records(const std::string& zone, const std::string& name,
                                  const std::string& type) const;
  /// The SOA serial; 0 when the zone does not exist.
  std::uint32_t serial(const std::string& zone) const;
  whm_counters counters() const;
  /// The next n requests are answered with http_status (before the rate
  /// limit and auth): 401/403 with WHM's access-denied body, 429 with
  /// Retry-After: retry_after_s, others with a plain error page.
  void fail_next(int n, int http_status, int retry_after_s = 1);
  /// Revokes every API token: every later request gets HTTP 403.
  void revoke_tokens();
  /// Adds an accepted USER:TOKEN pair (after revoke_tokens, for instance).
  void add_token(const std::string& user, const std::string& token);
  /// Changes the rate limit (0 requests = off); forgets the window.
  void set_rate_limit(std::size_t requests, std::int64_t window_ms);

  struct entry;    // one item of a zone file (public for the .cpp's helpers)
  struct zone_file;

private:
  void handle(http::request&& req, http::response& out);
  std::int64_t now_ms() const;

  options opt_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<zone_file>> zones_;
  std::set<std::pair<std::string, std::string>> tokens_;
  std::vector<std::int64_t> window_; // times of the requests admitted, oldest first
  int fail_count_ = 0;
  int fail_status_ = 0;
  int fail_retry_after_s_ = 1;
  whm_counters counters_;
  std::unique_ptr<http::server> server_;
  std::uint16_t port_ = 0;
};

} // namespace balctl::test
