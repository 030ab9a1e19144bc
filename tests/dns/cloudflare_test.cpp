// The Cloudflare provider through a real dns_io against the Cloudflare API v4
// stand-in (tests/standins/cloudflare_standin), and the stand-in's own rules,
// which the cut-over storm benchmark trusts for its counts.

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "adapters/dns/cloudflare_provider.hpp"
#include "tests/e2e/process.hpp"
#include "tests/standins/cloudflare_standin.hpp"
#include "tests/support/run_operation.hpp"
#include "tests/support/temp_dir.hpp"

using namespace balctl;
using json = nlohmann::json;

namespace {

const std::string good_token = "tok-good-0123456789";

test::cloudflare_standin_options with_token(test::cloudflare_standin_options o) {
  o.tokens.push_back(good_token);
  return o;
}

dns::http_response call_url(dns::dns_io& io, const std::string& method, const std::string& url,
                            const std::string& body = "",
                            const std::optional<std::string>& authorization = "Bearer " + good_token) {
  dns::http_request rq;
  rq.method = method;
  rq.url = url;
  if (authorization) {
    rq.headers.push_back({"Authorization", *authorization});
  }
  if (!body.empty()) {
    rq.headers.push_back({"Content-Type", "application/json"});
  }
  rq.body = body;
  std::promise<dns::http_response> p;
  auto f = p.get_future();
  io.submit(std::move(rq), dns::http_options{}, [&p](dns::http_response r) { p.set_value(std::move(r)); });
  return f.get();
}

json body_of(const dns::http_response& r) {
  auto j = json::parse(r.body, nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

int first_code(const dns::http_response& r) {
  auto j = body_of(r);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    return j["errors"][0].value("code", -1);
  }
  return -1;
}

std::uint64_t count_of(const test::cloudflare_standin_counters& c, const std::string& method) {
  auto it = c.by_method.find(method);
  return it == c.by_method.end() ? 0 : it->second;
}

// A stand-in serving example.com, a dns_io, and the real provider.
struct cf_env {
  explicit cf_env(test::cloudflare_standin_options o = {}) : cf(with_token(std::move(o))) {
    auto err = cf.start();
    INFO(err);
    REQUIRE(err.empty());
    REQUIRE(io.start().empty());
    zone_id = cf.add_zone("example.com");
  }

  std::unique_ptr<dns::provider> provider(const std::string& token = good_token, int per_page = 100) {
    dns::cloudflare_options o;
    o.api_base = cf.api_base();
    o.api_token = token;
    o.per_page = per_page;
    return dns::make_cloudflare_provider(o);
  }

  dns::step run(std::unique_ptr<dns::operation> op) { return test::run_operation(*op, io); }

  /// A request to the API, path relative to /client/v4.
  dns::http_response call(const std::string& method, const std::string& path,
                          const std::string& body = "",
                          const std::optional<std::string>& authorization = "Bearer " + good_token) {
    return call_url(io, method, cf.api_base() + path, body, authorization);
  }

  std::vector<test::cloudflare_record> records(const std::string& type, const std::string& name,
                                               const std::string& zone = "example.com") const {
    std::vector<test::cloudflare_record> out;
    for (auto& r : cf.records(zone)) {
      if (r.type == type && r.name == name) {
        out.push_back(r);
      }
    }
    return out;
  }

  std::string seed(const std::string& name, const std::string& type, const std::string& content,
                   int ttl = 300, bool proxied = false) {
    test::cloudflare_record r;
    r.zone = "example.com";
    r.name = name;
    r.type = type;
    r.content = content;
    r.ttl = ttl;
    r.proxied = proxied;
    return cf.seed(r);
  }

  test::cloudflare_standin cf; // before io: io stops first
  dns::dns_io io;
  std::string zone_id;
};

dns::record a_record(const std::string& name, const std::string& ip, int ttl = 300) {
  dns::record r;
  r.name = name;
  r.type = dns::record_type::a;
  r.content = ip;
  r.ttl_s = ttl;
  return r;
}

} // namespace

// --- our provider against the stand-in --------------------------------------

TEST_CASE("cloudflare apply finds the zone by suffix, creates a missing record, moves it and "
          "writes nothing when it is in place",
          "[cloudflare][dns]") {
  cf_env env;
  env.cf.add_zone("sub.example.com");
  env.cf.add_zone("example.org");
  auto p = env.provider();

  auto r = a_record("app.sub.example.com", "192.0.2.1");
  auto s = env.run(p->apply(r));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  auto live = env.records("A", "app.sub.example.com", "sub.example.com");
  REQUIRE(live.size() == 1);
  CHECK(live[0].content == "192.0.2.1");
  CHECK(live[0].ttl == 300);
  CHECK_FALSE(live[0].proxied);
  // The longest suffix served wins: nothing went to example.com.
  CHECK(env.cf.records("example.com").empty());
  auto c = env.cf.counters();
  CHECK(c.writes == 1);
  // app.sub.example.com (no zone), sub.example.com (zone), read, create.
  CHECK(count_of(c, "GET") == 3);
  CHECK(count_of(c, "POST") == 1);

  r.content = "192.0.2.2";
  r.ttl_s = 120;
  s = env.run(p->apply(r));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  auto moved = env.records("A", "app.sub.example.com", "sub.example.com");
  REQUIRE(moved.size() == 1);
  CHECK(moved[0].id == live[0].id); // changed in place, not deleted and recreated
  CHECK(moved[0].content == "192.0.2.2");
  CHECK(moved[0].ttl == 120);
  CHECK(env.cf.counters().writes == 2);

  auto before = env.cf.counters();
  s = env.run(p->apply(r));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK_FALSE(s.wrote);
  auto after = env.cf.counters();
  CHECK(after.writes == before.writes);
  // The zone id is cached: a record in place costs one read.
  CHECK(after.requests == before.requests + 1);
}

TEST_CASE("cloudflare turns the orange cloud off for a DNS-only cut-over and leaves it alone when "
          "proxied is unset",
          "[cloudflare][dns]") {
  cf_env env;
  auto p = env.provider();
  env.seed("www.example.com", "A", "192.0.2.10", 300, true);
  REQUIRE(env.records("A", "www.example.com").at(0).ttl == 1); // proxied: TTL Auto

  auto r = a_record("www.example.com", "192.0.2.11", 300); // proxied = nullopt
  auto s = env.run(p->apply(r));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  auto live = env.records("A", "www.example.com");
  REQUIRE(live.size() == 1);
  CHECK(live[0].content == "192.0.2.11");
  CHECK(live[0].proxied);
  CHECK(live[0].ttl == 1);

  // A proxied record keeps TTL Auto whatever ttl_s says: in place, no write.
  auto before = env.cf.counters().writes;
  s = env.run(p->apply(r));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK_FALSE(s.wrote);
  CHECK(env.cf.counters().writes == before);

  r.proxied = false; // the pool's record is marked "DNS only"
  s = env.run(p->apply(r));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  live = env.records("A", "www.example.com");
  REQUIRE(live.size() == 1);
  CHECK_FALSE(live[0].proxied);
  CHECK(live[0].ttl == 300);
  CHECK(live[0].content == "192.0.2.11");

  before = env.cf.counters().writes;
  s = env.run(p->apply(r));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK_FALSE(s.wrote);
  CHECK(env.cf.counters().writes == before);
}

TEST_CASE("cloudflare MX and SRV records round-trip through Cloudflare's field shapes",
          "[cloudflare][dns]") {
  cf_env env;
  auto p = env.provider();

  dns::record mx;
  mx.name = "example.com";
  mx.type = dns::record_type::mx;
  mx.content = "10 mail.example.com";
  mx.ttl_s = 3600;
  auto s = env.run(p->apply(mx));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  auto live = env.records("MX", "example.com");
  REQUIRE(live.size() == 1);
  CHECK(live[0].content == "mail.example.com");
  REQUIRE(live[0].priority);
  CHECK(*live[0].priority == 10);

  s = env.run(p->read(mx));
  REQUIRE(s.k == dns::step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->content == "10 mail.example.com");
  CHECK(s.live->ttl_s == 3600);
  s = env.run(p->apply(mx));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK_FALSE(s.wrote);

  mx.content = "20 mx2.example.com";
  s = env.run(p->apply(mx));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  live = env.records("MX", "example.com");
  REQUIRE(live.size() == 1);
  CHECK(live[0].content == "mx2.example.com");
  CHECK(live[0].priority == std::optional<int>(20));

  dns::record srv;
  srv.name = "_sip._udp.example.com";
  srv.type = dns::record_type::srv;
  srv.content = "10 5 5060 sip.example.com";
  s = env.run(p->apply(srv));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  auto srvs = env.records("SRV", "_sip._udp.example.com");
  REQUIRE(srvs.size() == 1);
  CHECK(srvs[0].data == json({{"priority", 10}, {"weight", 5}, {"port", 5060}, {"target", "sip.example.com"}}));
  CHECK(srvs[0].content == "5 5060 sip.example.com");

  s = env.run(p->read(srv));
  REQUIRE(s.k == dns::step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->content == "10 5 5060 sip.example.com");
  s = env.run(p->apply(srv));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK_FALSE(s.wrote);

  srv.content = "10 5 5061 sip.example.com";
  s = env.run(p->apply(srv));
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  srvs = env.records("SRV", "_sip._udp.example.com");
  REQUIRE(srvs.size() == 1);
  CHECK(srvs[0].data["port"] == 5061);
}

TEST_CASE("cloudflare apply reduces duplicates of a record set to one", "[cloudflare][dns]") {
  cf_env env;
  auto p = env.provider();
  env.seed("www.example.com", "A", "192.0.2.1");
  auto keep = env.seed("www.example.com", "A", "192.0.2.2");
  env.seed("www.example.com", "A", "192.0.2.3");
  env.seed("www.example.com", "AAAA", "2001:db8::1"); // another type: untouched

  SECTION("one of them already holds the value: the others are deleted") {
    auto s = env.run(p->apply(a_record("www.example.com", "192.0.2.2")));
    INFO(s.message);
    REQUIRE(s.k == dns::step::kind::done);
    CHECK(s.wrote);
    auto live = env.records("A", "www.example.com");
    REQUIRE(live.size() == 1);
    CHECK(live[0].id == keep);
    auto c = env.cf.counters();
    CHECK(count_of(c, "DELETE") == 2);
    CHECK(count_of(c, "PATCH") == 0);
    CHECK(c.writes == 2);
  }
  SECTION("none does: the others are deleted and one is changed") {
    auto s = env.run(p->apply(a_record("www.example.com", "192.0.2.9")));
    INFO(s.message);
    REQUIRE(s.k == dns::step::kind::done);
    CHECK(s.wrote);
    auto live = env.records("A", "www.example.com");
    REQUIRE(live.size() == 1);
    CHECK(live[0].content == "192.0.2.9");
    auto c = env.cf.counters();
    CHECK(count_of(c, "DELETE") == 2);
    CHECK(count_of(c, "PATCH") == 1);
    CHECK(c.writes == 3);
  }
  CHECK(env.records("AAAA", "www.example.com").size() == 1);
}

TEST_CASE("cloudflare read returns the live record, or nothing when the name has none",
          "[cloudflare][dns]") {
  cf_env env;
  auto p = env.provider();
  dns::record key;
  key.name = "v6.example.com";
  key.type = dns::record_type::aaaa;

  auto s = env.run(p->read(key));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK_FALSE(s.live);

  env.seed("v6.example.com", "AAAA", "2001:DB8:0:0::10", 120);
  s = env.run(p->read(key));
  REQUIRE(s.k == dns::step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->content == "2001:db8::10");
  CHECK(s.live->ttl_s == 120);
  CHECK(s.live->zone == "example.com");
  CHECK(s.live->name == "v6.example.com");
  CHECK(s.live->proxied == std::optional<bool>(false));
  CHECK(env.cf.counters().writes == 0);
}

TEST_CASE("cloudflare list walks every page of a zone", "[cloudflare][dns]") {
  cf_env env;
  std::set<std::string> want;
  for (int i = 0; i < 23; ++i) {
    auto name = "host-" + std::to_string(i) + ".example.com";
    env.seed(name, "A", "192.0.2." + std::to_string(i + 1));
    want.insert(name);
  }
  env.seed("txt.example.com", "TXT", "v=spf1 -all");
  env.seed("txt2.example.com", "TXT", "hello");
  env.seed("alias.example.com", "CNAME", "host-1.example.com");

  auto p = env.provider(good_token, 5);
  auto s = env.run(p->list("example.com"));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  std::set<std::string> got;
  for (const auto& r : s.records) {
    CHECK(r.type == dns::record_type::a);
    CHECK(r.zone == "example.com");
    got.insert(r.name);
  }
  CHECK(s.records.size() == 23); // TXT and CNAME are not types a cut-over moves
  CHECK(got == want);
  // One zone lookup, then 26 records at 5 a page.
  CHECK(env.cf.counters().requests == 1 + 6);
}

TEST_CASE("cloudflare refusing the token is an auth failure whose message does not name it",
          "[cloudflare][dns]") {
  cf_env env;
  std::string token;
  int code = 0;
  SECTION("an unknown token: 403 10000") {
    token = "tok-wrong-secret-42";
    code = 10000;
  }
  SECTION("credentials revoked: 403 10000") {
    token = good_token;
    env.cf.refuse_all_tokens(true);
    code = 10000;
  }
  SECTION("a token Cloudflare cannot read: 400 6003") {
    token = "secret with spaces";
    code = 6003;
  }
  CAPTURE(token);
  auto p = env.provider(token);
  auto s = env.run(p->apply(a_record("www.example.com", "192.0.2.7")));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::failed);
  CHECK(s.why == dns::failure::auth);
  CHECK(s.message.find(token) == std::string::npos);
  CHECK(s.message.find(std::to_string(code)) != std::string::npos);
  CHECK(env.cf.counters().unauthorized == 1);
  CHECK(env.cf.records("example.com").empty());
}

TEST_CASE("cloudflare answering 429 is rate_limited with the Retry-After hint", "[cloudflare][dns]") {
  std::atomic<std::int64_t> now_ms{1'000'000};
  test::cloudflare_standin_options o;
  o.rate_limit_requests = 4;
  o.rate_limit_window_ms = 60'000;
  o.clock_ms = [&now_ms] { return now_ms.load(); };
  cf_env env(o);
  auto p = env.provider();

  // Two zone lookups, a read and a create: the window is full.
  auto s = env.run(p->apply(a_record("www.example.com", "192.0.2.1")));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  REQUIRE(env.cf.counters().requests == 4);

  now_ms += 12'500;
  s = env.run(p->apply(a_record("www.example.com", "192.0.2.2")));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::failed);
  CHECK(s.why == dns::failure::rate_limited);
  // The oldest request leaves the window in 47.5 s: Retry-After rounds up.
  CHECK(s.retry_after_ms == 48'000);
  CHECK(env.cf.counters().rate_limited == 1);
  CHECK(env.records("A", "www.example.com").at(0).content == "192.0.2.1");

  now_ms = 1'000'000 + 60'000;
  s = env.run(p->apply(a_record("www.example.com", "192.0.2.2")));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
  CHECK(env.records("A", "www.example.com").at(0).content == "192.0.2.2");
}

TEST_CASE("cloudflare answering 5xx is a transient failure, and the next attempt succeeds",
          "[cloudflare][dns]") {
  auto status = GENERATE(500, 502, 503, 504);
  CAPTURE(status);
  cf_env env;
  auto p = env.provider();
  env.cf.fail_next(1, status);
  auto s = env.run(p->apply(a_record("www.example.com", "192.0.2.1")));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::failed);
  CHECK(s.why == dns::failure::transient);
  CHECK(s.message.find("HTTP " + std::to_string(status)) != std::string::npos);
  CHECK(env.cf.counters().injected_failures == 1);
  CHECK(env.cf.records("example.com").empty());

  s = env.run(p->apply(a_record("www.example.com", "192.0.2.1")));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote);
}

TEST_CASE("cloudflare refusing the content is a permanent failure", "[cloudflare][dns]") {
  using row = std::tuple<dns::record_type, std::string, int, std::optional<bool>, int>;
  auto [type, content, ttl, proxied, code] = GENERATE(table<dns::record_type, std::string, int,
                                                            std::optional<bool>, int>({
    row{dns::record_type::a, "192.0.2.300", 300, std::nullopt, 9005},
    row{dns::record_type::a, "2001:db8::1", 300, std::nullopt, 9005},
    row{dns::record_type::aaaa, "192.0.2.1", 300, std::nullopt, 9006},
    row{dns::record_type::a, "192.0.2.1", 30, std::nullopt, 9021},
    row{dns::record_type::a, "192.0.2.1", 90000, std::nullopt, 9021},
    row{dns::record_type::mx, "10 mail.example.com", 300, true, 9004},
  }));
  CAPTURE(dns::to_string(type), content, ttl, code);
  cf_env env;
  auto p = env.provider();
  dns::record r;
  r.name = "www.example.com";
  r.type = type;
  r.content = content;
  r.ttl_s = ttl;
  r.proxied = proxied;
  auto s = env.run(p->apply(r));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::failed);
  CHECK(s.why == dns::failure::permanent);
  CHECK(s.message.find(std::to_string(code)) != std::string::npos);
  CHECK(env.cf.records("example.com").empty());
  CHECK(env.cf.counters().writes == 0);
}

TEST_CASE("cloudflare refuses a name outside the zone it was given, before any request",
          "[cloudflare][dns]") {
  cf_env env;
  env.cf.add_zone("example.org");
  auto p = env.provider();
  auto r = a_record("www.example.org", "192.0.2.1");
  r.zone = "example.com";
  auto s = env.run(p->apply(r));
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::failed);
  CHECK(s.why == dns::failure::permanent);
  CHECK(s.message.find("www.example.org") != std::string::npos);
  CHECK(env.cf.counters().requests == 0);
  CHECK(env.cf.records("example.com").empty());
}

// --- the stand-in's own rules -----------------------------------------------

TEST_CASE("the cloudflare stand-in admits N requests per sliding window and counts all it saw",
          "[cloudflare][dns][standin]") {
  std::atomic<std::int64_t> now_ms{0};
  test::cloudflare_standin_options o;
  o.rate_limit_requests = 3;
  o.rate_limit_window_ms = 1'000;
  o.clock_ms = [&now_ms] { return now_ms.load(); };
  cf_env env(o);

  // Refused credentials are answered first and take no slot.
  for (int i = 0; i < 2; ++i) {
    CHECK(env.call("GET", "/zones", "", std::string("Bearer tok-unknown")).status == 403);
  }
  for (int i = 0; i < 3; ++i) {
    CHECK(env.call("GET", "/zones").status == 200);
  }
  auto r = env.call("GET", "/zones");
  CHECK(r.status == 429);
  CHECK(first_code(r) == 971);
  CHECK(r.header_value("Retry-After") == "1");
  CHECK(body_of(r)["success"] == false);

  now_ms = 999;
  CHECK(env.call("GET", "/zones").status == 429);
  now_ms = 1'000; // the three admitted at 0 leave the window
  CHECK(env.call("GET", "/zones").status == 200);

  auto c = env.cf.counters();
  CHECK(c.requests == 8);
  CHECK(c.rate_limited == 2);
  CHECK(c.unauthorized == 2);
  CHECK(c.by_status[429] == 2);
  CHECK(c.by_status[200] == 4);
  // 0,0,0,0,0,0 then 999: seven requests arrived within one window.
  CHECK(c.max_requests_in_window == 7);

  SECTION("Retry-After is the wait for the oldest admitted request, rounded up") {
    now_ms = 2'000; // the request admitted at 1000 has left the window
    CHECK(env.call("GET", "/zones").status == 200);
    CHECK(env.call("GET", "/zones").status == 200);
    now_ms = 2'100;
    CHECK(env.call("GET", "/zones").status == 200);
    auto limited = env.call("GET", "/zones");
    CHECK(limited.status == 429);
    CHECK(limited.header_value("Retry-After") == "1"); // 2000 + 1000 - 2100 = 900 ms
  }
}

TEST_CASE("the cloudflare stand-in's Retry-After counts whole seconds", "[cloudflare][dns][standin]") {
  std::atomic<std::int64_t> now_ms{0};
  test::cloudflare_standin_options o;
  o.rate_limit_requests = 1;
  o.rate_limit_window_ms = 10'000;
  o.clock_ms = [&now_ms] { return now_ms.load(); };
  cf_env env(o);
  CHECK(env.call("GET", "/zones").status == 200);
  now_ms = 2'500;
  auto r = env.call("GET", "/zones");
  CHECK(r.status == 429);
  CHECK(r.header_value("Retry-After") == "8");
}

TEST_CASE("the cloudflare stand-in paginates and filters like Cloudflare", "[cloudflare][dns][standin]") {
  cf_env env;
  for (int i = 0; i < 12; ++i) {
    env.seed("host-" + std::to_string(100 + i) + ".example.com", "A", "192.0.2." + std::to_string(i + 1));
  }
  env.seed("example.com", "MX", "10 mail.example.com");
  const std::string base = "/zones/" + env.zone_id + "/dns_records";

  auto page = [&](const std::string& query) {
    auto r = env.call("GET", base + query);
    REQUIRE(r.status == 200);
    auto j = body_of(r);
    REQUIRE(j["success"] == true);
    return j;
  };
  auto j = page("?type=A&per_page=5&page=1");
  CHECK(j["result_info"] == json({{"page", 1}, {"per_page", 5}, {"count", 5}, {"total_count", 12},
                                  {"total_pages", 3}}));
  CHECK(j["result"][0]["name"] == "host-100.example.com");
  CHECK(j["result"][4]["name"] == "host-104.example.com");
  j = page("?type=A&per_page=5&page=3");
  CHECK(j["result_info"]["count"] == 2);
  CHECK(j["result"][1]["name"] == "host-111.example.com");
  j = page("?type=A&per_page=5&page=4");
  CHECK(j["result"].empty());
  CHECK(j["result_info"]["total_pages"] == 3);

  j = page("");
  CHECK(j["result_info"]["per_page"] == 100);
  CHECK(j["result_info"]["total_count"] == 13);
  j = page("?name=HOST-103.example.com.");
  REQUIRE(j["result"].size() == 1);
  CHECK(j["result"][0]["content"] == "192.0.2.4");
  j = page("?type=MX");
  REQUIRE(j["result"].size() == 1);
  CHECK(j["result"][0]["priority"] == 10);
  CHECK(j["result"][0]["content"] == "mail.example.com");
  CHECK(j["result"][0]["proxiable"] == false);
  j = page("?name=host-103.example.com&type=MX");
  CHECK(j["result"].empty());
  j = page("?name=host-103.example.com&type=MX&match=any");
  CHECK(j["result"].size() == 2);
  j = page("?type=A&per_page=5&order=content&direction=desc");
  CHECK(j["result"][0]["content"] == "192.0.2.9");

  env.cf.add_zone("empty.example");
  auto e = env.call("GET", "/zones/" + env.cf.zone_id("empty.example") + "/dns_records");
  CHECK(body_of(e)["result_info"] ==
        json({{"page", 1}, {"per_page", 100}, {"count", 0}, {"total_count", 0}, {"total_pages", 1}}));

  j = body_of(env.call("GET", "/zones?name=example.com"));
  REQUIRE(j["result"].size() == 1);
  CHECK(j["result"][0]["id"] == env.zone_id);
  CHECK(j["result"][0]["status"] == "active");
  j = body_of(env.call("GET", "/zones?name=nowhere.example"));
  CHECK(j["success"] == true);
  CHECK(j["result"].empty());
  j = body_of(env.call("GET", "/zones"));
  CHECK(j["result_info"]["total_count"] == 2);
  CHECK(j["result_info"]["per_page"] == 20);
  CHECK(env.cf.counters().writes == 0);
}

TEST_CASE("the cloudflare stand-in refuses bodies as Cloudflare does", "[cloudflare][dns][standin]") {
  auto [body, code] = GENERATE(table<std::string, int>({
    {R"({"type":"A","name":"www","content":"192.0.2.300"})", 9005},
    {R"({"type":"A","name":"www","content":"192.0.2"})", 9005},
    {R"({"type":"AAAA","name":"www","content":"192.0.2.1"})", 9006},
    {R"({"type":"A","name":"www","content":"192.0.2.1","ttl":30})", 9021},
    {R"({"type":"A","name":"www","content":"192.0.2.1","ttl":86401})", 9021},
    {R"({"type":"A","name":"www","content":"192.0.2.1","ttl":"300"})", 9021},
    {R"({"type":"MX","name":"@","content":"mail.example.com","priority":10,"proxied":true})", 9004},
    {R"({"type":"TXT","name":"t","content":"x","proxied":true})", 9004},
    {R"({"type":"SPF","name":"www","content":"v=spf1"})", 9020},
    {R"({"name":"www","content":"192.0.2.1"})", 9020},
    {R"({"type":"A","name":"bad name!","content":"192.0.2.1"})", 9000},
    {R"({"type":"CNAME","name":"c","content":"not a host!"})", 9007},
    {R"({"type":"MX","name":"@","content":"mail.example.com"})", 1004},
    {R"({"type":"SRV","name":"_sip._udp","content":"5 5060 sip.example.com"})", 1004},
    {R"(not json)", 9207},
    {R"([1,2])", 9207},
  }));
  CAPTURE(body, code);
  cf_env env;
  auto r = env.call("POST", "/zones/" + env.zone_id + "/dns_records", body);
  CHECK(r.status == 400);
  CHECK(first_code(r) == code);
  CHECK(body_of(r)["success"] == false);
  CHECK(body_of(r)["result"].is_null());
  CHECK(env.cf.records("example.com").empty());
  CHECK(env.cf.counters().writes == 0);
}

TEST_CASE("the cloudflare stand-in stores, changes and deletes records as Cloudflare does",
          "[cloudflare][dns][standin]") {
  cf_env env;
  const std::string base = "/zones/" + env.zone_id + "/dns_records";
  auto post = [&](const json& b) { return env.call("POST", base, b.dump()); };

  // Names: relative, apex, outside the zone (taken as relative, silently).
  auto r = post({{"type", "A"}, {"name", "www"}, {"content", "192.0.2.1"}, {"ttl", 300}});
  REQUIRE(r.status == 200);
  auto www = body_of(r)["result"];
  CHECK(www["name"] == "www.example.com");
  CHECK(www["zone_id"] == env.zone_id);
  CHECK(www["zone_name"] == "example.com");
  CHECK(www["proxied"] == false);
  CHECK(www["proxiable"] == true);
  CHECK(www["id"].get<std::string>().size() == 32);
  CHECK(body_of(post({{"type", "A"}, {"name", "@"}, {"content", "192.0.2.2"}}))["result"]["name"] ==
        "example.com");
  auto outside = body_of(post({{"type", "A"}, {"name", "www.example.org"}, {"content", "192.0.2.3"}}));
  CHECK(outside["result"]["name"] == "www.example.org.example.com");
  // Proxied: TTL Auto whatever was asked; default TTL is Auto too.
  auto px = body_of(post({{"type", "A"}, {"name", "px"}, {"content", "192.0.2.4"}, {"ttl", 300}, {"proxied", true}}));
  CHECK(px["result"]["ttl"] == 1);
  auto dflt = body_of(post({{"type", "AAAA"}, {"name", "v6"}, {"content", "2001:DB8::0:1"}}));
  CHECK(dflt["result"]["ttl"] == 1);
  CHECK(dflt["result"]["content"] == "2001:db8::1");
  CHECK(env.cf.counters().writes == 5);

  // Refusals next to existing records.
  r = post({{"type", "A"}, {"name", "www.example.com"}, {"content", "192.0.2.1"}});
  CHECK(r.status == 400);
  CHECK(first_code(r) == 81058);
  r = post({{"type", "CNAME"}, {"name", "www"}, {"content", "example.net"}});
  CHECK(r.status == 400);
  CHECK(first_code(r) == 81053);
  CHECK(post({{"type", "A"}, {"name", "www"}, {"content", "192.0.2.9"}}).status == 200); // a second A is fine
  CHECK(env.cf.counters().writes == 6);

  const std::string id = www["id"];
  // PATCH changes only what it names.
  r = env.call("PATCH", base + "/" + id, R"({"content":"192.0.2.50"})");
  REQUIRE(r.status == 200);
  CHECK(body_of(r)["result"]["content"] == "192.0.2.50");
  CHECK(body_of(r)["result"]["ttl"] == 300);
  CHECK(body_of(r)["result"]["name"] == "www.example.com");
  // PUT replaces the whole record: what it leaves out is back to defaults.
  r = env.call("PUT", base + "/" + id, R"({"type":"A","name":"www","content":"192.0.2.51"})");
  REQUIRE(r.status == 200);
  CHECK(body_of(r)["result"]["ttl"] == 1);
  CHECK(body_of(r)["result"]["id"] == id);
  r = env.call("PATCH", base + "/" + id, R"({"content":"bad"})");
  CHECK(r.status == 400);
  CHECK(first_code(r) == 9005);
  r = env.call("GET", base + "/" + id);
  CHECK(body_of(r)["result"]["content"] == "192.0.2.51");

  r = env.call("DELETE", base + "/" + id);
  REQUIRE(r.status == 200);
  CHECK(body_of(r)["result"] == json({{"id", id}}));
  r = env.call("DELETE", base + "/" + id);
  CHECK(r.status == 404);
  CHECK(first_code(r) == 81044);
  r = env.call("PATCH", base + "/" + id, R"({"content":"192.0.2.1"})");
  CHECK(r.status == 404);
  CHECK(first_code(r) == 81044);
  r = env.call("GET", "/zones/0123456789abcdef0123456789abcdef/dns_records");
  CHECK(r.status == 404);
  CHECK(first_code(r) == 7003);
  CHECK(env.call("DELETE", base).status == 405);

  // Only the writes that succeeded count: 6 creates, PATCH, PUT, DELETE.
  CHECK(env.cf.counters().writes == 9);
}

TEST_CASE("the cloudflare stand-in refuses credentials with Cloudflare's answers",
          "[cloudflare][dns][standin]") {
  cf_env env;
  auto r = env.call("GET", "/zones", "", std::nullopt);
  CHECK(r.status == 400);
  CHECK(first_code(r) == 9106);
  r = env.call("GET", "/zones", "", std::string("Basic dXNlcjpwYXNz"));
  CHECK(r.status == 400);
  CHECK(first_code(r) == 6003);
  CHECK(body_of(r)["errors"][0]["error_chain"][0]["code"] == 6111);
  r = env.call("GET", "/zones", "", std::string("Bearer tok-unknown"));
  CHECK(r.status == 403);
  CHECK(first_code(r) == 10000);
  CHECK(env.call("GET", "/zones").status == 200);
  env.cf.refuse_all_tokens(true);
  r = env.call("GET", "/zones");
  CHECK(r.status == 403);
  CHECK(first_code(r) == 10000);
  env.cf.refuse_all_tokens(false);
  env.cf.add_token("tok-second");
  CHECK(env.call("GET", "/zones", "", std::string("Bearer tok-second")).status == 200);

  auto c = env.cf.counters();
  CHECK(c.unauthorized == 4);
  CHECK(c.requests == 6);
  CHECK(c.by_status[400] == 2);
  CHECK(c.by_status[403] == 2);
  // The control endpoints are off unless asked for.
  CHECK(call_url(env.io, "GET", "http://127.0.0.1:" + std::to_string(env.cf.port()) + "/__standin/stats")
          .status == 404);
}

TEST_CASE("the cloudflare stand-in fails the next requests on demand", "[cloudflare][dns][standin]") {
  cf_env env;
  env.cf.fail_next(2, 500);
  auto r = env.call("GET", "/zones");
  CHECK(r.status == 500);
  CHECK(body_of(r)["success"] == false);
  CHECK(env.call("GET", "/zones").status == 500);
  CHECK(env.call("GET", "/zones").status == 200);
  env.cf.fail_next(1, 429);
  r = env.call("GET", "/zones");
  CHECK(r.status == 429);
  CHECK(r.header_value("Retry-After") == "1");
  auto c = env.cf.counters();
  CHECK(c.injected_failures == 3);
  CHECK(c.rate_limited == 1);
}

TEST_CASE("balctl-cf-standin serves the API, seeds from a file, reports its counters and stops on "
          "SIGTERM",
          "[cloudflare][dns][standin]") {
  auto exe = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "balctl-cf-standin";
  INFO("built next to the tests: " << exe.string());
  REQUIRE(std::filesystem::exists(exe));
  test::temp_dir dir("balctl-cf");
  {
    std::ofstream seed(dir.file("seed.json"));
    seed << R"([{"zone":"example.com","name":"a.example.com","type":"A","content":"192.0.2.1","ttl":300,"proxied":false},
               {"zone":"example.com","name":"example.com","type":"MX","content":"10 mail.example.com"}])";
  }
  test::process proc({exe.string(), "--listen", "127.0.0.1:0", "--token", "tok-bench", "--zone",
                      "example.com", "--rate-limit", "50", "--window-ms", "3000", "--seed",
                      dir.file("seed.json")},
                     dir.file("out"), dir.file("err"));
  REQUIRE(proc.started());
  REQUIRE(test::wait_until([&] { return test::read_file(dir.file("out")).find('\n') != std::string::npos ||
                                        proc.poll() != -1; },
                           10'000));
  auto out = test::read_file(dir.file("out"));
  INFO(out << test::read_file(dir.file("err")));
  REQUIRE(out.rfind("listening ", 0) == 0);
  int port = std::stoi(out.substr(10));
  REQUIRE(port > 0);
  const std::string root = "http://127.0.0.1:" + std::to_string(port);

  dns::dns_io io;
  REQUIRE(io.start().empty());
  dns::cloudflare_options o;
  o.api_base = root + "/client/v4";
  o.api_token = "tok-bench";
  auto p = dns::make_cloudflare_provider(o);
  auto s = test::run_operation(*p->apply(a_record("a.example.com", "192.0.2.2")), io);
  INFO(s.message);
  REQUIRE(s.k == dns::step::kind::done);
  CHECK(s.wrote); // the seeded record was there and is moved

  auto seeded = call_url(io, "POST", root + "/__standin/seed",
                         R"([{"zone":"example.com","name":"b.example.com","type":"A","content":"192.0.2.3"}])",
                         std::nullopt);
  CHECK(seeded.status == 200);
  CHECK(body_of(seeded)["seeded"] == 1);
  auto refused = call_url(io, "POST", root + "/__standin/seed",
                          R"([{"zone":"example.com","name":"c.example.com","type":"A","content":"x"}])",
                          std::nullopt);
  CHECK(refused.status == 400);

  auto stats = body_of(call_url(io, "GET", root + "/__standin/stats", "", std::nullopt));
  CAPTURE(stats.dump());
  // Zone lookups for a.example.com and example.com, the read, the PATCH.
  CHECK(stats["requests"] == 4);
  CHECK(stats["writes"] == 1);
  CHECK(stats["by_method"] == json({{"GET", 3}, {"PATCH", 1}}));
  CHECK(stats["max_requests_in_window"] == 4);
  CHECK(stats["rate_limited"] == 0);
  CHECK(stats["unauthorized"] == 0);
  CHECK(stats["rate_limit"] == json({{"requests", 50}, {"window_ms", 3000}}));
  CHECK(stats["records"] == 3);
  CHECK(stats["zones"] == 1);

  CHECK(proc.stop() == 0);
  CHECK(test::read_file(dir.file("out")) == "listening " + std::to_string(port) + "\n");
}
