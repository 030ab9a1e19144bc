#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "adapters/dns/cloudflare_provider.hpp"

using namespace balctl::dns;
using json = nlohmann::json;

namespace {

http_response ok(const json& result, json info = nullptr) {
  http_response r;
  r.status = 200;
  json j = {{"success", true}, {"errors", json::array()}, {"result", result}};
  if (!info.is_null()) j["result_info"] = info;
  r.body = j.dump();
  return r;
}
http_response status(long s, std::string body = "", std::vector<header> h = {}) {
  http_response r;
  r.status = s;
  r.body = std::move(body);
  r.headers = std::move(h);
  return r;
}
std::unique_ptr<provider> make() {
  cloudflare_options o;
  o.api_base = "https://cf.test/v4";
  o.api_token = "SECRET-TOKEN";
  return make_cloudflare_provider(o);
}
record www(std::string content = "192.0.2.10") {
  record r;
  r.name = "www.example.com";
  r.content = std::move(content);
  r.ttl_s = 300;
  return r;
}
json rec(std::string id, std::string content, int ttl = 300) {
  return {{"id", id}, {"type", "A"}, {"name", "www.example.com"}, {"content", content}, {"ttl", ttl},
          {"proxied", false}};
}
json zone_hit() { return json::array({{{"id", "Z1"}, {"name", "example.com"}}}); }

} // namespace

TEST_CASE("cloudflare: zone by suffix, cached, in place writes nothing", "[cloudflare][unit]") {
  auto p = make();
  auto op = p->apply(www());
  auto s = op->start();
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.url == "https://cf.test/v4/zones?name=www.example.com");
  CHECK(s.http.headers.at(0).value == "Bearer SECRET-TOKEN");
  s = op->on_http(ok(json::array()));
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.url == "https://cf.test/v4/zones?name=example.com");
  s = op->on_http(ok(zone_hit()));
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.url == "https://cf.test/v4/zones/Z1/dns_records?type=A&name=www.example.com");
  s = op->on_http(ok(json::array({rec("R1", "192.0.2.10")})));
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.wrote);
  // cached
  auto op2 = p->read(www());
  s = op2->start();
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.url.find("/zones/Z1/dns_records") != std::string::npos);
  s = op2->on_http(ok(json::array({rec("R1", "192.0.2.10")})));
  REQUIRE(s.k == step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->content == "192.0.2.10");
}

TEST_CASE("cloudflare: differs -> PATCH, missing -> POST, duplicates deleted", "[cloudflare][unit]") {
  auto p = make();
  auto d = www("192.0.2.20");
  d.zone = "example.com";
  d.proxied = false;
  auto op = p->apply(d);
  auto s = op->start();
  s = op->on_http(ok(zone_hit()));
  s = op->on_http(ok(json::array({rec("R1", "192.0.2.10"), rec("R2", "192.0.2.11")})));
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.method == "DELETE");
  CHECK(s.http.url == "https://cf.test/v4/zones/Z1/dns_records/R2");
  s = op->on_http(ok({{"id", "R2"}}));
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.method == "PATCH");
  CHECK(s.http.url == "https://cf.test/v4/zones/Z1/dns_records/R1");
  auto b = json::parse(s.http.body);
  CHECK(b["content"] == "192.0.2.20");
  CHECK(b["proxied"] == false);
  CHECK(b["ttl"] == 300);
  CHECK(b["type"] == "A");
  s = op->on_http(ok(rec("R1", "192.0.2.20")));
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);

  auto op2 = p->apply(d);
  s = op2->start();
  s = op2->on_http(ok(json::array()));
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.method == "POST");
  s = op2->on_http(ok(rec("R3", "192.0.2.20")));
  CHECK(s.k == step::kind::done);
  CHECK(s.wrote);
}

TEST_CASE("cloudflare: MX and SRV bodies", "[cloudflare][unit]") {
  auto p = make();
  record mx;
  mx.zone = "example.com";
  mx.name = "example.com";
  mx.type = record_type::mx;
  mx.content = "10 mail.example.com";
  auto op = p->apply(mx);
  auto s = op->start();
  s = op->on_http(ok(zone_hit()));
  s = op->on_http(ok(json::array()));
  auto b = json::parse(s.http.body);
  CHECK(b["content"] == "mail.example.com");
  CHECK(b["priority"] == 10);
  record srv = mx;
  srv.name = "_sip._udp.example.com";
  srv.type = record_type::srv;
  srv.content = "10 5 5060 sip.example.com";
  auto op2 = p->apply(srv);
  s = op2->start();
  s = op2->on_http(ok(json::array()));
  b = json::parse(s.http.body);
  CHECK(b["data"]["priority"] == 10);
  CHECK(b["data"]["weight"] == 5);
  CHECK(b["data"]["port"] == 5060);
  CHECK(b["data"]["target"] == "sip.example.com");
}

TEST_CASE("cloudflare: errors classified, token never in messages", "[cloudflare][unit]") {
  auto run = [](http_response r) {
    auto p = make();
    auto d = www();
    d.zone = "example.com";
    auto op = p->apply(d);
    op->start();
    return op->on_http(r);
  };
  auto s = run(status(429, R"({"success":false,"errors":[{"code":971,"message":"slow"}]})",
                      {{"Retry-After", "3"}}));
  CHECK(s.why == failure::rate_limited);
  CHECK(s.retry_after_ms == 3000);
  s = run(status(401, R"({"success":false,"errors":[{"code":10000,"message":"Authentication error"}]})"));
  CHECK(s.k == step::kind::failed);
  CHECK(s.why == failure::auth);
  CHECK(s.message.find("SECRET") == std::string::npos);
  s = run(status(500, "oops"));
  CHECK(s.why == failure::transient);
  s = run(status(200, "\x01garbage{"));
  CHECK(s.k == step::kind::failed);
  CHECK(s.why == failure::transient);
  s = run(status(400, R"({"success":false,"errors":[{"code":1004,"message":"bad name"}]})"));
  CHECK(s.why == failure::permanent);
  CHECK(s.message.find("bad name") != std::string::npos);
  CHECK(s.message.find("SECRET") == std::string::npos);
}

TEST_CASE("cloudflare: a proxied record in place is not rewritten for its automatic TTL",
          "[cloudflare][unit]") {
  // Cloudflare keeps every proxied record at TTL 1 (Auto), whatever ttl is sent.
  auto run = [](std::optional<bool> want_proxied, json live) {
    auto p = make();
    auto d = www("192.0.2.10");
    d.zone = "example.com";
    d.proxied = want_proxied;
    auto op = p->apply(d);
    op->start();
    op->on_http(ok(zone_hit()));
    return op->on_http(ok(json::array({live})));
  };
  json proxied = rec("R1", "192.0.2.10", 1);
  proxied["proxied"] = true;
  auto s = run(std::nullopt, proxied);
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.wrote);
  s = run(true, proxied);
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.wrote);
  // DNS only: the TTL is ours again, so 1 != 300 is a change.
  s = run(false, proxied);
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.method == "PATCH");
  s = run(std::nullopt, rec("R1", "192.0.2.10", 1));
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.method == "PATCH");
}

TEST_CASE("cloudflare: a token Cloudflare refuses with HTTP 400 is an auth failure",
          "[cloudflare][unit]") {
  auto run = [](http_response r) {
    auto p = make();
    auto d = www();
    d.zone = "example.com";
    auto op = p->apply(d);
    op->start();
    return op->on_http(r);
  };
  auto s = run(status(400, R"({"success":false,"errors":[{"code":6003,"message":"Invalid request headers",
      "error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}]})"));
  CHECK(s.why == failure::auth);
  CHECK(s.message.find("SECRET") == std::string::npos);
  s = run(status(400, R"({"success":false,"errors":[{"code":9106,"message":"Missing X-Auth-Key, X-Auth-Email or Authorization headers"}]})"));
  CHECK(s.why == failure::auth);
  s = run(status(400, R"({"success":false,"errors":[{"code":9109,"message":"Invalid access token"}]})"));
  CHECK(s.why == failure::auth);
  // Content Cloudflare refuses is still the request's fault.
  s = run(status(400, R"({"success":false,"errors":[{"code":9005,"message":"Content for A record must be a valid IPv4 address."}]})"));
  CHECK(s.why == failure::permanent);
}

TEST_CASE("cloudflare: a name outside the zone it is given fails before any request",
          "[cloudflare][unit]") {
  auto p = make();
  auto d = www();
  d.name = "www.example.org";
  d.zone = "example.com";
  auto s = p->apply(d)->start();
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::permanent);
  CHECK(s.message.find("www.example.org") != std::string::npos);
  CHECK(s.message.find("example.com") != std::string::npos);
  d.name = "example.com"; // the apex is in the zone
  s = p->apply(d)->start();
  CHECK(s.k == step::kind::http);
}

TEST_CASE("cloudflare: a write answered with another name or proxy state is not confirmed",
          "[cloudflare][unit]") {
  auto p = make();
  auto d = www("192.0.2.20");
  d.zone = "example.com";
  d.proxied = false;
  auto op = p->apply(d);
  op->start();
  op->on_http(ok(zone_hit()));
  auto s = op->on_http(ok(json::array()));
  REQUIRE(s.http.method == "POST");
  json got = rec("R3", "192.0.2.20");
  got["proxied"] = true;
  s = op->on_http(ok(got));
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::transient);

  auto op2 = p->apply(d);
  op2->start();
  op2->on_http(ok(json::array()));
  got = rec("R4", "192.0.2.20");
  got["name"] = "www.example.com.example.com";
  s = op2->on_http(ok(got));
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::transient);
}
