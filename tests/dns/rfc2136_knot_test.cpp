#include "adapters/dns/rfc2136_provider.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "adapters/dns/dns_io.hpp"
#include "tests/support/knot_server.hpp"
#include "tests/support/run_operation.hpp"

// The real RFC 2136 provider through the real dns_io against a real knotd
// on loopback (tests/support/knot_server.hpp), checked with kdig.

using namespace balctl;
using namespace balctl::dns;

namespace {

rfc2136_options options_for(const test::knot_server& k) {
  rfc2136_options o;
  o.server = k.server();
  o.tsig_name = k.key_name();
  o.tsig_secret_base64 = k.secret();
  return o;
}

record rec(const std::string& name, record_type t, const std::string& content, int ttl_s = 60) {
  record r;
  r.zone = "example.test";
  r.name = name;
  r.type = t;
  r.content = content;
  r.ttl_s = ttl_s;
  return r;
}

step apply(provider& p, dns_io& io, const record& r) {
  auto op = p.apply(r);
  auto s = test::run_operation(*op, io);
  INFO(s.message);
  return s;
}

struct fixture {
  test::knot_server knot;
  dns_io io;
  std::unique_ptr<provider> p;
  fixture() : p(make_rfc2136_provider(options_for(knot))) { REQUIRE(io.start().empty()); }
};

} // namespace

TEST_CASE("rfc2136 apply creates an A record, re-applying writes nothing, a change moves it",
          "[rfc2136][dns]") {
  fixture f;
  CHECK(f.knot.dig("app.example.test", "A").empty());

  auto s = apply(*f.p, f.io, rec("app.example.test", record_type::a, "192.0.2.20"));
  INFO(s.message << "\n" << f.knot.log());
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);
  CHECK(f.knot.dig("app.example.test", "A") == std::vector<std::string>{"192.0.2.20"});

  s = apply(*f.p, f.io, rec("app.example.test", record_type::a, "192.0.2.20"));
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.wrote);

  // The zone file's www record moves too (a cut-over of an existing set).
  s = apply(*f.p, f.io, rec("www.example.test", record_type::a, "192.0.2.30"));
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);
  CHECK(f.knot.dig("www.example.test", "A") == std::vector<std::string>{"192.0.2.30"});

  s = apply(*f.p, f.io, rec("app.example.test", record_type::a, "192.0.2.21"));
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);
  CHECK(f.knot.dig("app.example.test", "A") == std::vector<std::string>{"192.0.2.21"});

  // A TTL change alone is a write.
  s = apply(*f.p, f.io, rec("app.example.test", record_type::a, "192.0.2.21", 120));
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);

  auto rd = f.p->read(rec("app.example.test", record_type::a, ""));
  s = test::run_operation(*rd, f.io);
  REQUIRE(s.k == step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->content == "192.0.2.21");
  CHECK(s.live->ttl_s == 120);
}

TEST_CASE("rfc2136 apply writes AAAA, MX and SRV records", "[rfc2136][dns]") {
  fixture f;
  struct row {
    const char* name;
    record_type type;
    const char* content;
    const char* dig_type;
    const char* dig_says;
  };
  const std::vector<row> rows = {
    {"app.example.test", record_type::aaaa, "2001:db8::20", "AAAA", "2001:db8::20"},
    {"example.test", record_type::mx, "10 mail.example.test", "MX", "10 mail.example.test."},
    {"_sip._tcp.example.test", record_type::srv, "10 5 5060 sip.example.test", "SRV",
     "10 5 5060 sip.example.test."},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name, r.dig_type);
    auto s = apply(*f.p, f.io, rec(r.name, r.type, r.content));
    INFO(s.message);
    REQUIRE(s.k == step::kind::done);
    CHECK(s.wrote);
    CHECK(f.knot.dig(r.name, r.dig_type) == std::vector<std::string>{r.dig_says});
    // Same value spelled differently (IPv6 form, case, trailing dot): no write.
    std::string again = r.content;
    if (r.type == record_type::aaaa) {
      again = "2001:0db8:0:0::20";
    } else {
      again += ".";
    }
    s = apply(*f.p, f.io, rec(r.name, r.type, again));
    REQUIRE(s.k == step::kind::done);
    CHECK_FALSE(s.wrote);
  }
}

TEST_CASE("rfc2136 with a wrong TSIG secret is an auth failure and changes nothing", "[rfc2136][dns]") {
  fixture f;
  auto o = options_for(f.knot);
  o.tsig_secret_base64 = "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc=";
  auto wrong = make_rfc2136_provider(o);
  auto s = apply(*wrong, f.io, rec("www.example.test", record_type::a, "192.0.2.99"));
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::auth);
  CHECK(s.message.find("balctl-key") != std::string::npos);
  CHECK(s.message.find(o.tsig_secret_base64) == std::string::npos);
  CHECK(f.knot.dig("www.example.test", "A") == std::vector<std::string>{"192.0.2.10"});

  auto o2 = options_for(f.knot);
  o2.tsig_name = "no-such-key";
  auto unknown = make_rfc2136_provider(o2);
  s = apply(*unknown, f.io, rec("www.example.test", record_type::a, "192.0.2.99"));
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::auth);
  CHECK(s.message.find("no-such-key") != std::string::npos);
  CHECK(f.knot.dig("www.example.test", "A") == std::vector<std::string>{"192.0.2.10"});
}

TEST_CASE("rfc2136 finds the zone by SOA when the record names none", "[rfc2136][dns]") {
  fixture f;
  auto r = rec("deep.sub.example.test", record_type::a, "192.0.2.40");
  r.zone.clear();
  auto s = apply(*f.p, f.io, r);
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);
  CHECK(f.knot.dig("deep.sub.example.test", "A") == std::vector<std::string>{"192.0.2.40"});

  // The apex itself, and a name in no zone the server serves.
  auto apex = rec("example.test", record_type::a, "192.0.2.41");
  apex.zone.clear();
  s = apply(*f.p, f.io, apex);
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);

  auto outside = rec("www.other.test", record_type::a, "192.0.2.42");
  outside.zone.clear();
  s = apply(*f.p, f.io, outside);
  REQUIRE(s.k == step::kind::failed);
  CHECK((s.why == failure::auth || s.why == failure::permanent));
}

TEST_CASE("rfc2136 apply works over TCP", "[rfc2136][dns]") {
  fixture f;
  auto o = options_for(f.knot);
  o.tcp = true;
  auto p = make_rfc2136_provider(o);
  auto s = apply(*p, f.io, rec("tcp.example.test", record_type::a, "192.0.2.50"));
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);
  CHECK(f.knot.dig("tcp.example.test", "A") == std::vector<std::string>{"192.0.2.50"});
  s = apply(*p, f.io, rec("tcp.example.test", record_type::a, "192.0.2.50"));
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.wrote);
}
