#pragma once

// PowerDNS Authoritative HTTP API (X-API-Key): the zone (with its rrsets)
// is read with GET /api/v1/servers/{server_id}/zones/{zone}., a record set
// replaced with PATCH ... {"rrsets": [{"changetype": "REPLACE", ...}]}
// (204), and the change confirmed by reading the zone again.
//
//   [find zone: GET zones/<suffix>. longest first, cached]
//        │ 200: the zone and its rrsets
//        v
//   compare ── same ──> done(wrote=false)
//        │ differs
//        v
//   PATCH REPLACE ──204──> GET zone ── same ──> done(wrote=true)
//                                    └ differs ─> failed(transient)

#include <memory>
#include <string>

#include "adapters/dns/provider.hpp"

namespace balctl::dns {

struct powerdns_options {
  std::string api_base;                // "http://127.0.0.1:8081"
  std::string server_id = "localhost";
  std::string api_key;                 // never in a message
};

std::unique_ptr<provider> make_powerdns_provider(powerdns_options o);

} // namespace balctl::dns
