// The WHM provider through a real dns_io against the WHM API 1 stand-in on
// loopback, and the stand-in's own rules.

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "adapters/dns/whm_provider.hpp"
#include "tests/standins/whm_standin.hpp"
#include "tests/support/run_operation.hpp"

using namespace balctl;
using json = nlohmann::json;

namespace {

dns::record rec(const std::string& name, dns::record_type t, const std::string& content,
                int ttl = 60) {
  dns::record r;
  r.name = name;
  r.type = t;
  r.content = content;
  r.ttl_s = ttl;
  return r;
}

dns::record a_record(const std::string& ip, int ttl = 60) {
  return rec("www.example.com", dns::record_type::a, ip, ttl);
}

// A stand-in serving example.com, a dns_io, and a provider with the right
// token.
struct whm_env {
  explicit whm_env(test::whm_standin::options o = {}) : whm(std::move(o)) {
    whm.add_zone("example.com");
    REQUIRE(whm.start().empty());
    REQUIRE(io.start().empty());
    p = dns::make_whm_provider({whm.api_base(), whm.user(), whm.token()});
  }
  dns::step run(std::unique_ptr<dns::operation> op) { return test::run_operation(*op, io); }

  test::whm_standin whm;
  dns::dns_io io;
  std::unique_ptr<dns::provider> p;
};

std::vector<std::tuple<std::string, int>> values(const std::vector<test::whm_record>& rs) {
  std::vector<std::tuple<std::string, int>> out;
  for (const auto& r : rs) {
    out.emplace_back(r.content, r.ttl_s);
  }
  return out;
}

// One raw WHM API call to the stand-in (query already encoded).
struct raw_answer {
  long status = 0;
  json body;
  std::string retry_after;
};

raw_answer call(whm_env& env, const std::string& function, const std::string& query,
                const std::string& auth = "") {
  dns::http_request r;
  r.method = "GET";
  r.url = env.whm.api_base() + "/json-api/" + function + "?api.version=1" +
          (query.empty() ? "" : "&" + query);
  r.headers.push_back(
      {"Authorization", auth.empty() ? "whm " + env.whm.user() + ":" + env.whm.token() : auth});
  std::promise<dns::http_response> done;
  auto f = done.get_future();
  env.io.submit(std::move(r), {}, [&done](dns::http_response a) { done.set_value(std::move(a)); });
  auto a = f.get();
  INFO(a.transport_error);
  REQUIRE(a.transport_error.empty());
  return {a.status, json::parse(a.body, nullptr, false), a.header_value("Retry-After")};
}

int result_of(const raw_answer& a) {
  return a.body.is_object() && a.body.contains("metadata") ? a.body["metadata"]["result"].get<int>()
                                                           : -1;
}

} // namespace

TEST_CASE("whm apply creates and moves a record and writes nothing when it is in place",
          "[whm][dns]") {
  whm_env env;
  auto s = env.run(env.p->apply(a_record("192.0.2.1")));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  CHECK(values(env.whm.records("example.com", "www.example.com", "A")) ==
        std::vector<std::tuple<std::string, int>>{{"192.0.2.1", 60}});
  CHECK(env.whm.counters().writes == 1);

  auto writes = env.whm.counters().writes;
  auto serial = env.whm.serial("example.com");
  s = env.run(env.p->apply(a_record("192.0.2.1")));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK_FALSE(s.wrote);
  CHECK(env.whm.counters().writes == writes);
  CHECK(env.whm.serial("example.com") == serial);

  s = env.run(env.p->apply(a_record("192.0.2.2", 30)));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  CHECK(values(env.whm.records("example.com", "www.example.com", "A")) ==
        std::vector<std::tuple<std::string, int>>{{"192.0.2.2", 30}});
  CHECK(env.whm.counters().writes == writes + 1);
  CHECK(env.whm.serial("example.com") == serial + 1);
  // The NS lines WHM made are untouched.
  CHECK(env.whm.records("example.com", "example.com", "NS").size() == 2);
}

TEST_CASE("whm apply writes MX and SRV records and finds them in place", "[whm][dns]") {
  whm_env env;
  auto mx = rec("example.com", dns::record_type::mx, "10 mail.example.com", 3600);
  auto srv = rec("_sip._udp.example.com", dns::record_type::srv, "10 5 5060 sip.example.com");
  auto aaaa = rec("v6.example.com", dns::record_type::aaaa, "2001:db8:0::10");
  for (const auto& r : {mx, srv, aaaa}) {
    auto s = env.run(env.p->apply(r));
    INFO(s.message);
    REQUIRE(s.k == dns::step::kind::done);
    CHECK(s.wrote);
  }
  CHECK(values(env.whm.records("example.com", "example.com", "MX")) ==
        std::vector<std::tuple<std::string, int>>{{"10 mail.example.com", 3600}});
  CHECK(values(env.whm.records("example.com", "_sip._udp.example.com", "SRV")) ==
        std::vector<std::tuple<std::string, int>>{{"10 5 5060 sip.example.com", 60}});
  CHECK(values(env.whm.records("example.com", "v6.example.com", "AAAA")) ==
        std::vector<std::tuple<std::string, int>>{{"2001:db8::10", 60}});

  auto writes = env.whm.counters().writes;
  for (const auto& r : {mx, srv, aaaa}) {
    auto s = env.run(env.p->apply(r));
    REQUIRE(s.k == dns::step::kind::done);
    CHECK_FALSE(s.wrote);
  }
  CHECK(env.whm.counters().writes == writes);
}

TEST_CASE("whm apply reduces duplicates to the one desired record", "[whm][dns]") {
  whm_env env;
  auto seed = [&](const std::string& name, const std::string& ip) {
    REQUIRE(env.whm.seed("example.com", {name, "A", ip, 60}).empty());
  };
  seed("www.example.com", "192.0.2.1");
  seed("mail.example.com", "192.0.2.100");
  seed("www.example.com", "192.0.2.2");
  seed("ftp.example.com", "192.0.2.101");
  seed("www.example.com", "192.0.2.3");

  SECTION("no duplicate holds the value") {
    auto s = env.run(env.p->apply(a_record("192.0.2.9")));
    INFO(s.message);
    REQUIRE(s.k == dns::step::kind::done);
    CHECK(s.wrote);
    CHECK(values(env.whm.records("example.com", "www.example.com", "A")) ==
          std::vector<std::tuple<std::string, int>>{{"192.0.2.9", 60}});
    CHECK(env.whm.counters().writes == 3); // one edit, two removals
  }
  SECTION("the last duplicate holds the value") {
    auto s = env.run(env.p->apply(a_record("192.0.2.3")));
    REQUIRE(s.k == dns::step::kind::done);
    CHECK(s.wrote);
    CHECK(values(env.whm.records("example.com", "www.example.com", "A")) ==
          std::vector<std::tuple<std::string, int>>{{"192.0.2.3", 60}});
    CHECK(env.whm.counters().writes == 2); // two removals, no edit
  }
  // The records between the duplicates survive the line shifts.
  CHECK(values(env.whm.records("example.com", "mail.example.com", "A")) ==
        std::vector<std::tuple<std::string, int>>{{"192.0.2.100", 60}});
  CHECK(values(env.whm.records("example.com", "ftp.example.com", "A")) ==
        std::vector<std::tuple<std::string, int>>{{"192.0.2.101", 60}});
}

TEST_CASE("whm finds the zone of a name by the longest suffix the server has", "[whm][dns]") {
  whm_env env;
  env.whm.add_zone("sub.example.com");
  auto s = env.run(env.p->apply(rec("www.sub.example.com", dns::record_type::a, "192.0.2.5")));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(env.whm.records("sub.example.com", "www.sub.example.com", "A").size() == 1);
  CHECK(env.whm.records("example.com", "www.sub.example.com", "A").empty());

  s = env.run(env.p->apply(rec("host.deep.example.com", dns::record_type::a, "192.0.2.6")));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(env.whm.records("example.com", "host.deep.example.com", "A").size() == 1);

  s = env.run(env.p->read(rec("www.sub.example.com", dns::record_type::a, "")));
  REQUIRE(s.k == dns::step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->zone == "sub.example.com");
}

TEST_CASE("whm list and read return what the zone holds", "[whm][dns]") {
  whm_env env;
  REQUIRE(env.whm.seed("example.com", {"www.example.com", "A", "192.0.2.1", 120}).empty());
  REQUIRE(env.whm.seed("example.com", {"www.example.com", "AAAA", "2001:db8::1", 120}).empty());
  REQUIRE(env.whm.seed("example.com", {"example.com", "MX", "10 mail.example.com", 3600}).empty());
  REQUIRE(env.whm.seed("example.com", {"_ldap._tcp.example.com", "SRV", "0 1 389 ldap.example.com",
                                       300})
              .empty());
  REQUIRE(env.whm.seed("example.com", {"example.com", "TXT", "v=spf1 -all", 300}).empty());

  auto s = env.run(env.p->list("example.com"));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  std::set<std::tuple<std::string, std::string, std::string, int>> got;
  for (const auto& r : s.records) {
    got.emplace(r.name, dns::to_string(r.type), r.content, r.ttl_s);
  }
  CHECK(got == std::set<std::tuple<std::string, std::string, std::string, int>>{
                   {"www.example.com", "A", "192.0.2.1", 120},
                   {"www.example.com", "AAAA", "2001:db8::1", 120},
                   {"example.com", "MX", "10 mail.example.com", 3600},
                   {"_ldap._tcp.example.com", "SRV", "0 1 389 ldap.example.com", 300}});

  s = env.run(env.p->read(rec("www.example.com", dns::record_type::aaaa, "")));
  REQUIRE(s.k == dns::step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->content == "2001:db8::1");
  CHECK(s.live->ttl_s == 120);
  CHECK(s.live->zone == "example.com");

  s = env.run(env.p->read(rec("nothing.example.com", dns::record_type::a, "")));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK_FALSE(s.live);
}

TEST_CASE("whm a refused token is an auth failure that names no token", "[whm][dns]") {
  whm_env env;
  SECTION("wrong token") {
    auto bad = dns::make_whm_provider({env.whm.api_base(), "root", "WRONGTOKEN42"});
    auto s = env.run(bad->apply(a_record("192.0.2.9")));
    REQUIRE(s.k == dns::step::kind::failed);
    CHECK(s.why == dns::failure::auth);
    CHECK(s.message.find("WRONGTOKEN42") == std::string::npos);
    CHECK(s.message.find("403") != std::string::npos);
  }
  SECTION("revoked token") {
    env.whm.revoke_tokens();
    auto s = env.run(env.p->read(a_record("")));
    REQUIRE(s.k == dns::step::kind::failed);
    CHECK(s.why == dns::failure::auth);
    CHECK(s.message.find(env.whm.token()) == std::string::npos);
  }
  CHECK(env.whm.counters().auth_refused == 1);
  CHECK(env.whm.counters().writes == 0);
  CHECK(env.whm.records("example.com", "www.example.com", "A").empty());
}

TEST_CASE("whm a 429 pauses with the server's Retry-After, a 503 is transient", "[whm][dns]") {
  std::atomic<std::int64_t> now{1'000'000};
  test::whm_standin::options o;
  o.clock_ms = [&now] { return now.load(); };
  o.rate_limit_requests = 2;
  o.rate_limit_window_ms = 60'000;
  whm_env env(o);
  auto key = a_record("");
  key.zone = "example.com"; // one request per read

  SECTION("rate limit window") {
    CHECK(env.run(env.p->read(key)).k == dns::step::kind::done);
    now += 10'000;
    CHECK(env.run(env.p->read(key)).k == dns::step::kind::done);
    auto s = env.run(env.p->read(key));
    REQUIRE(s.k == dns::step::kind::failed);
    CHECK(s.why == dns::failure::rate_limited);
    CHECK(s.retry_after_ms == 50'000); // the first request leaves the window then
    CHECK(env.whm.counters().rate_limited == 1);
    now += 50'000;
    CHECK(env.run(env.p->read(key)).k == dns::step::kind::done);
  }
  SECTION("injected 429") {
    env.whm.fail_next(1, 429, 7);
    auto s = env.run(env.p->read(key));
    REQUIRE(s.k == dns::step::kind::failed);
    CHECK(s.why == dns::failure::rate_limited);
    CHECK(s.retry_after_ms == 7'000);
  }
  SECTION("503") {
    env.whm.set_rate_limit(0, 0); // an apply takes more than two requests
    env.whm.fail_next(1, 503);
    auto s = env.run(env.p->apply(a_record("192.0.2.1")));
    REQUIRE(s.k == dns::step::kind::failed);
    CHECK(s.why == dns::failure::transient);
    CHECK(s.message.find("503") != std::string::npos);
    // The next attempt goes through.
    s = env.run(env.p->apply(a_record("192.0.2.1")));
    INFO(s.message);
    CHECK(s.k == dns::step::kind::done);
    CHECK(env.whm.records("example.com", "www.example.com", "A").size() == 1);
  }
  SECTION("server gone") {
    env.whm.stop();
    auto s = env.run(env.p->read(key));
    REQUIRE(s.k == dns::step::kind::failed);
    CHECK(s.why == dns::failure::transient);
  }
}

TEST_CASE("whm a zone the server does not have is a permanent failure", "[whm][dns]") {
  whm_env env;
  auto named = a_record("192.0.2.1");
  named.zone = "nosuch.example";
  auto s = env.run(env.p->apply(named));
  REQUIRE(s.k == dns::step::kind::failed);
  CHECK(s.why == dns::failure::permanent);
  CHECK(s.message.find("Zone does not exist.") != std::string::npos);

  s = env.run(env.p->apply(rec("www.example.org", dns::record_type::a, "192.0.2.1")));
  REQUIRE(s.k == dns::step::kind::failed);
  CHECK(s.why == dns::failure::permanent);
  CHECK(env.whm.counters().writes == 0);
}

TEST_CASE("whm stand-in numbers lines like the zone file and shifts them on removal",
          "[whm][dns][standin]") {
  whm_env env;
  // Lines 1-3 comments and $TTL, 4-10 the SOA, 11 blank, 12-13 NS.
  auto ns = env.whm.records("example.com", "example.com", "NS");
  REQUIRE(ns.size() == 2);
  CHECK(ns[0].line == 12);
  CHECK(ns[1].line == 13);
  REQUIRE(env.whm.seed("example.com", {"a.example.com", "A", "192.0.2.1", 60}).empty());
  REQUIRE(env.whm.seed("example.com", {"b.example.com", "A", "192.0.2.2", 60}).empty());
  REQUIRE(env.whm.seed("example.com", {"c.example.com", "A", "192.0.2.3", 60}).empty());
  CHECK(env.whm.records("example.com", "c.example.com", "A").at(0).line == 16);

  auto dump = call(env, "dumpzone", "domain=example.com");
  REQUIRE(dump.status == 200);
  REQUIRE(result_of(dump) == 1);
  const auto& recs = dump.body["data"]["zone"][0]["record"];
  CHECK(recs[3]["type"] == "SOA");
  CHECK(recs[3]["Line"] == 4);
  CHECK(recs[3]["Lines"] == 7);
  CHECK(recs.back()["name"] == "c.example.com.");
  CHECK(recs.back()["Line"] == 16);
  CHECK(recs.back()["ttl"] == "60");

  auto serial = env.whm.serial("example.com");
  auto rm = call(env, "removezonerecord", "zone=example.com&line=15");
  CHECK(result_of(rm) == 1);
  CHECK(env.whm.records("example.com", "b.example.com", "A").empty());
  CHECK(env.whm.records("example.com", "c.example.com", "A").at(0).line == 15);
  CHECK(env.whm.serial("example.com") == serial + 1);
  CHECK(env.whm.counters().writes == 1);

  // Lines that hold no record, and the SOA, are refused.
  for (const char* line : {"4", "16", "0", "x"}) {
    CAPTURE(line);
    auto bad = call(env, "removezonerecord", std::string("zone=example.com&line=") + line);
    CHECK(bad.status == 200);
    CHECK(result_of(bad) == 0);
  }
  CHECK(env.whm.serial("example.com") == serial + 1);
  CHECK(env.whm.counters().writes == 1);
}

TEST_CASE("whm stand-in refuses bad input with WHM's envelope and bad tokens with 403",
          "[whm][dns][standin]") {
  whm_env env;
  auto [query, in_reason] = GENERATE(table<std::string, std::string>({
      {"domain=nosuch.example&name=www&type=A&address=192.0.2.1", "Zone does not exist."},
      {"domain=example.com&name=www&type=BOGUS&address=192.0.2.1", "not a valid record type"},
      {"domain=example.com&name=www&type=A&address=300.1.1.1", "not a valid IPv4 address"},
      {"domain=example.com&name=www&type=AAAA&address=192.0.2.1", "not a valid IPv6 address"},
      {"domain=example.com&name=www.other.net.&type=A&address=192.0.2.1", "not a valid name"},
      {"domain=example.com&name=www&type=MX&exchange=mail.example.com", "preference"},
  }));
  CAPTURE(query);
  auto a = call(env, "addzonerecord", query);
  CHECK(a.status == 200);
  CHECK(result_of(a) == 0);
  CHECK(a.body["metadata"]["command"] == "addzonerecord");
  CHECK(a.body["metadata"]["reason"].get<std::string>().find(in_reason) != std::string::npos);
  CHECK(env.whm.counters().writes == 0);

  auto denied = call(env, "listzones", "", "whm root:NOT-THE-TOKEN");
  CHECK(denied.status == 403);
  CHECK(denied.body["cpanelresult"]["error"] == "Access denied");
  auto basic = call(env, "listzones", "", "Basic cm9vdDp4");
  CHECK(basic.status == 403);
  CHECK(env.whm.counters().auth_refused == 2);

  // Relative names are relative to the zone, as in a zone file.
  auto added = call(env, "addzonerecord", "domain=example.com&name=rel&type=A&address=192.0.2.4");
  CHECK(result_of(added) == 1);
  CHECK(env.whm.records("example.com", "rel.example.com", "A").size() == 1);
}

TEST_CASE("whm stand-in rate window slides with the injected clock", "[whm][dns][standin]") {
  std::atomic<std::int64_t> now{0};
  test::whm_standin::options o;
  o.clock_ms = [&now] { return now.load(); };
  whm_env env(o);
  env.whm.set_rate_limit(3, 1'000);
  auto listzones = [&] { return call(env, "listzones", ""); };

  CHECK(listzones().status == 200); // t=0
  now = 600;
  CHECK(listzones().status == 200);
  now = 900;
  CHECK(listzones().status == 200);
  auto limited = listzones();
  CHECK(limited.status == 429);
  CHECK(limited.retry_after == "1"); // 100 ms until t=0 leaves: rounded up
  now = 999;
  CHECK(listzones().status == 429);
  // t=0 left the window; 600 and 900 are still in it, and the two refused
  // requests never entered it (else this one would be refused too).
  now = 1'000;
  CHECK(listzones().status == 200);
  CHECK(listzones().status == 429);
  now = 1'600;
  CHECK(listzones().status == 200);
  CHECK(env.whm.counters().rate_limited == 3);
  CHECK(env.whm.counters().requests == 8);
}
