#pragma once

// cPanel WHM API 1 provider (a WHM or cPanel DNS cluster API token, sent as
// "Authorization: whm USER:TOKEN"). Every call is
// GET {api_base}/json-api/<function>?api.version=1&... and answers
// {"metadata":{"result":1|0,"reason":"...","version":1,"command":"..."},
//  "data":{...}}; result 0 is a refusal with its reason. WHM addresses a
// record by its line in the zone file (dumpzone's "Line"), so a write names
// the line it read, and removing a line moves every later record up one.
//
//   [find zone: listzones, longest suffix of the name, cached]
//        │ (or the record's zone when given)
//        v
//   dumpzone ── set is exactly {desired} ──> done(wrote=false)
//        │ differs / duplicates / missing
//        v
//   editzonerecord(the set's first line; skipped when a line already
//        │          holds the desired value)   or addzonerecord (no line)
//        v
//   removezonerecord(every other line of the set, highest line first, so
//        │           the lines still to remove do not move)
//        v
//   dumpzone ── set is exactly {desired} ──> done(wrote=true)
//            └ differs ─────────────────────> failed(transient)
//
// read() is listzones? + dumpzone; list() is dumpzone of the given zone.
// The token appears only in the Authorization header, never in a URL or a
// step message. `proxied` does not exist at WHM and is ignored.

#include <memory>
#include <string>

#include "adapters/dns/provider.hpp"

namespace balctl::dns {

struct whm_options {
  std::string api_base;       // "https://whm.example.net:2087" (no /json-api)
  std::string user = "root";  // root or a reseller that owns the zones
  std::string api_token;      // never in a message
};

std::unique_ptr<provider> make_whm_provider(whm_options o);

} // namespace balctl::dns
