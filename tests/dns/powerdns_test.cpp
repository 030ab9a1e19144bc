// The PowerDNS provider through dns_io against a real pdns_server.

#include <catch2/catch.hpp>

#include "adapters/dns/powerdns_provider.hpp"
#include "tests/support/pdns_server.hpp"
#include "tests/support/run_operation.hpp"

using namespace balctl;

namespace {

dns::record a_record(const std::string& ip, int ttl = 60) {
  dns::record r;
  r.name = "www.e2e.test";
  r.type = dns::record_type::a;
  r.content = ip;
  r.ttl_s = ttl;
  return r;
}

} // namespace

TEST_CASE("powerdns apply creates and moves a record and writes nothing when it is in place",
          "[powerdns][dns]") {
  test::pdns_server ns;
  dns::dns_io io;
  REQUIRE(io.start().empty());
  auto p = dns::make_powerdns_provider({ns.api_base(), "localhost", ns.api_key()});

  auto op = p->apply(a_record("192.0.2.1"));
  auto s = test::run_operation(*op, io);
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  CHECK(ns.dig("www.e2e.test", "A") == std::vector<std::string>{"192.0.2.1"});

  auto again = p->apply(a_record("192.0.2.1"));
  s = test::run_operation(*again, io);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK_FALSE(s.wrote);

  auto move = p->apply(a_record("192.0.2.2", 30));
  s = test::run_operation(*move, io);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  CHECK(ns.dig("www.e2e.test", "A") == std::vector<std::string>{"192.0.2.2"});

  auto rd = p->read(a_record(""));
  s = test::run_operation(*rd, io);
  REQUIRE(s.k == dns::step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->content == "192.0.2.2");
  CHECK(s.live->ttl_s == 30);
  CHECK(s.live->zone == "e2e.test");

  dns::record mx;
  mx.name = "e2e.test";
  mx.type = dns::record_type::mx;
  mx.content = "10 mail.e2e.test";
  auto mxop = p->apply(mx);
  s = test::run_operation(*mxop, io);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(ns.dig("e2e.test", "MX") == std::vector<std::string>{"10 mail.e2e.test."});

  auto ls = p->list("e2e.test");
  s = test::run_operation(*ls, io);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.records.size() >= 2);
}

TEST_CASE("powerdns refusing the API key is an auth failure that names no key", "[powerdns][dns]") {
  test::pdns_server ns;
  dns::dns_io io;
  REQUIRE(io.start().empty());
  auto p = dns::make_powerdns_provider({ns.api_base(), "localhost", "wrong-key-abc"});
  auto op = p->apply(a_record("192.0.2.9"));
  auto s = test::run_operation(*op, io);
  CHECK(s.k == dns::step::kind::failed);
  CHECK(s.why == dns::failure::auth);
  CHECK(s.message.find("wrong-key-abc") == std::string::npos);
  auto missing = dns::make_powerdns_provider({ns.api_base(), "localhost", ns.api_key()});
  dns::record r = a_record("192.0.2.9");
  r.name = "www.other.invalid";
  auto op2 = missing->apply(r);
  s = test::run_operation(*op2, io);
  CHECK(s.k == dns::step::kind::failed);
  CHECK(s.why == dns::failure::permanent);
}
