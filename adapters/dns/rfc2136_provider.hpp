#pragma once

// The RFC 2136 provider: dynamic updates signed with a TSIG key (RFC 8945),
// sent to the zone's primary server (Knot, BIND, PowerDNS with DNS update
// on). All wire work is ldns: queries, the UPDATE, TSIG signing of the
// request and verification of the answer's TSIG against the request MAC.
//
// apply():
//
//   start ──zone empty?──yes──> SOA query(name) ──apex = owner of the SOA──┐
//     │no                                                                  │
//     └───────────────────────> query(name, type) <────────────────────────┘
//                                  │ same content and ttl ──> done(wrote=false)
//                                  └ differs ──> UPDATE (delete set, add RR, TSIG)
//                                                  │ NOERROR + TSIG verifies
//                                                  v
//                                  query(name, type) ── desired ──> done(wrote=true)
//
// Queries go unsigned with RD off (the server is the primary, answering
// authoritatively); only the UPDATE carries the key. list() is not
// supported (it would need AXFR, which a primary allows only to its
// secondaries as a rule): it fails permanent.

#include <memory>
#include <string>

#include "adapters/dns/provider.hpp"

namespace balctl::dns {

struct rfc2136_options {
  /// The primary: "127.0.0.1:53", "[::1]:53".
  std::string server = "127.0.0.1:53";
  /// The TSIG key's name as the server knows it ("balctl-key").
  std::string tsig_name;
  /// "hmac-sha256" (default), "hmac-sha512" or "hmac-sha1".
  std::string tsig_algorithm = "hmac-sha256";
  /// The shared secret, base64. Never written into a message or a log.
  std::string tsig_secret_base64;
  /// Send every message over TCP (else UDP, TCP when truncated).
  bool tcp = false;
};

/// Options are checked when an operation starts: a bad algorithm or secret
/// makes every operation fail permanent with the reason.
std::unique_ptr<provider> make_rfc2136_provider(rfc2136_options o);

} // namespace balctl::dns
