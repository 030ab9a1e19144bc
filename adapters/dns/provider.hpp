#pragma once

// The DNS provider interface (DESIGN.md principle 6). A provider turns "make
// this record hold this value" into a short exchange of HTTP requests or DNS
// messages: read the live record, compare, write only when it differs, and
// count the change as done only when the provider confirms it. Providers do
// no I/O themselves: an operation hands back the next request as a step,
// the caller (actors/dns_executor through adapters/dns/dns_io) performs it
// on a libuv loop and feeds the answer back. So every provider is a pure
// state machine, tested with scripted answers, and the executor decides
// rate limits, retries and ordering for all of them alike.
//
//   start() ──> step{http|dns} ──caller performs it──> on_http()/on_dns()
//                  ^                                         │
//                  └────────────── step{http|dns} ───────────┤
//                                  step{done|failed} <───────┘

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace balctl::dns {

/// The record types a cut-over can move (the seed's Managed DNS: A by
/// default; AAAA, MX and SRV when the operator adds them).
enum class record_type : std::uint8_t { a, aaaa, mx, srv };
const char* to_string(record_type t); // "A", "AAAA", "MX", "SRV"
bool from_string(const std::string& s, record_type& out); // case-insensitive

/// One record set as the engine wants it (or as a provider reports it).
/// Names are absolute without the trailing dot, lower case
/// ("www.example.com"); zone is the zone apex ("example.com"), empty when
/// the provider must find it (the longest suffix of name it serves).
/// content is the record's value in presentation form, one value per set:
///   A     "192.0.2.10"
///   AAAA  "2001:db8::10"
///   MX    "10 mail.example.com"          (preference, exchange)
///   SRV   "10 5 5060 sip.example.com"    (priority, weight, port, target)
/// Host names inside content carry no trailing dot; providers add it where
/// their API wants one.
struct record {
  std::string zone;
  std::string name;
  record_type type = record_type::a;
  std::string content;
  int ttl_s = 300;
  /// Cloudflare only: the orange cloud. nullopt = leave as it is; false on a
  /// cut-over of a record marked "DNS only".
  std::optional<bool> proxied;
};

struct header {
  std::string name;
  std::string value;
};

/// An HTTP request as a provider wants it sent (https or http URL; the
/// caller sets timeouts and TLS verification from the provider's config).
struct http_request {
  std::string method; // GET, POST, PATCH, PUT, DELETE
  std::string url;
  std::vector<header> headers;
  std::string body;
};

struct http_response {
  /// "" when an HTTP answer came (any status); else why none did
  /// ("connect: Connection refused", "timeout after 10000 ms").
  std::string transport_error;
  long status = 0;
  std::vector<header> headers; // names as received
  std::string body;
  /// The value of a header, case-insensitively; "" when absent.
  std::string header_value(const std::string& name) const;
};

/// A DNS message to one server ("127.0.0.1:5300", "[::1]:53"). The caller
/// sends it over UDP, or TCP when tcp is set or the UDP answer is truncated,
/// and returns the answer's wire bytes.
struct dns_request {
  std::string server;
  std::vector<std::uint8_t> wire;
  bool tcp = false;
};

struct dns_response {
  std::string transport_error; // "" when an answer came
  std::vector<std::uint8_t> wire;
};

/// Why an operation failed, which decides what the executor does next.
enum class failure : std::uint8_t {
  transient,    // network, timeout, 5xx: retry with back-off
  rate_limited, // 429 / provider says slow down: pause this credential
  auth,         // credentials refused (401/403, TSIG BADKEY): alert, retry slowly
  permanent,    // the request itself is wrong (no such zone, bad content): alert, stop
};
const char* to_string(failure f);

struct step {
  enum class kind : std::uint8_t { http, dns, done, failed };
  kind k = kind::failed;
  http_request http; // kind::http
  dns_request dns;   // kind::dns
  // kind::done
  bool wrote = false;          // apply(): a write was needed and confirmed
  std::optional<record> live;  // read(): the live record, nullopt = none
  std::vector<record> records; // list(): every record read
  // kind::failed
  failure why = failure::transient;
  std::string message;          // for logs and the activity log; no secrets
  std::int64_t retry_after_ms = 0; // rate_limited: the provider's hint, 0 = none

  static step send(http_request r) {
    step s;
    s.k = kind::http;
    s.http = std::move(r);
    return s;
  }
  static step send(dns_request r) {
    step s;
    s.k = kind::dns;
    s.dns = std::move(r);
    return s;
  }
  static step done_write(bool wrote) {
    step s;
    s.k = kind::done;
    s.wrote = wrote;
    return s;
  }
  static step fail(failure why, std::string message, std::int64_t retry_after_ms = 0) {
    step s;
    s.k = kind::failed;
    s.why = why;
    s.message = std::move(message);
    s.retry_after_ms = retry_after_ms;
    return s;
  }
};

/// One exchange with a provider. Not thread-safe; one caller drives it from
/// start() until it returns done or failed. An answer of the other kind
/// than the step asked for is a programming error: return failed.
class operation {
public:
  virtual ~operation() = default;
  virtual step start() = 0;
  virtual step on_http(const http_response& r);
  virtual step on_dns(const dns_response& r);
};

/// One provider credential (a Cloudflare API token, a WHM DNS cluster key,
/// a PowerDNS API key, a TSIG key). Implementations end in _provider and
/// live one per file in adapters/dns/.
class provider {
public:
  virtual ~provider() = default;
  /// "cloudflare" | "whm" | "powerdns" | "rfc2136".
  virtual const char* kind() const = 0;
  /// Read-compare-write: reads the record set (zone looked up if empty),
  /// done with wrote=false when content, ttl and proxied (when set) already
  /// match, else replaces the set with exactly `desired` (creating it when
  /// missing) and is done with wrote=true once the provider confirms.
  virtual std::unique_ptr<operation> apply(const record& desired) = 0;
  /// Reads one record set: done with live = the record (first value when
  /// several), or nullopt when the name has no record of that type.
  virtual std::unique_ptr<operation> read(const record& key) = 0;
  /// Every record of the given types in a zone (Import from Cloudflare,
  /// Sync WHM→Cloudflare): done with records.
  virtual std::unique_ptr<operation> list(const std::string& zone) = 0;
};

/// A content's words ("10 mail.example.com" → {"10", "mail.example.com"}).
std::vector<std::string> content_words(const std::string& content);

/// Canonical form of a name: lower case, no trailing dot.
std::string canonical_name(const std::string& name);

/// Whether two contents of type t denote the same value (case of host
/// names, trailing dots and IPv6 spelling ignored).
bool same_content(record_type t, const std::string& a, const std::string& b);

} // namespace balctl::dns
