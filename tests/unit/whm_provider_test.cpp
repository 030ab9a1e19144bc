// The WHM API 1 provider as a pure state machine: every answer scripted,
// no socket.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "adapters/dns/whm_provider.hpp"

using namespace balctl::dns;
using json = nlohmann::json;

namespace {

const std::string base = "https://whm.test:2087";
const std::string secret = "SECRET-TOKEN-1234";

std::unique_ptr<provider> make() {
  whm_options o;
  o.api_base = base + "/"; // a trailing slash is dropped
  o.user = "reseller1";
  o.api_token = secret;
  return make_whm_provider(o);
}

http_response answer(long status, const json& body, std::vector<header> h = {}) {
  http_response r;
  r.status = status;
  r.body = body.dump();
  r.headers = std::move(h);
  return r;
}

json envelope(const std::string& command, int result, const std::string& reason) {
  return {{"metadata",
           {{"command", command}, {"reason", reason}, {"result", result}, {"version", 1}}}};
}

http_response ok(const std::string& command, json data = nullptr) {
  auto j = envelope(command, 1, "OK");
  if (!data.is_null()) {
    j["data"] = data;
  }
  return answer(200, j);
}

http_response refused(const std::string& command, const std::string& reason) {
  return answer(200, envelope(command, 0, reason));
}

http_response listzones(std::vector<std::string> zones) {
  json z = json::array();
  for (const auto& d : zones) {
    z.push_back({{"domain", d}, {"zonefile", d + ".db"}});
  }
  return ok("listzones", {{"zone", z}});
}

// WHM dumps values read from the zone file as strings, Line as a number.
json a_rec(long line, const std::string& name, const std::string& type, const std::string& address,
           json ttl = "300") {
  return {{"Line", line}, {"name", name}, {"type", type},
          {"class", "IN"}, {"ttl", ttl},  {"address", address}};
}

http_response dump(std::vector<json> records) {
  json recs = json::array({
      {{"Line", 1}, {"type", ":RAW"}, {"raw", "; cPanel"}, {"name", ""}, {"ttl", "86400"}},
      {{"Line", 3}, {"type", "$TTL"}, {"name", ""}, {"ttl", "14400"}},
      {{"Line", 4},
       {"Lines", 7},
       {"type", "SOA"},
       {"name", "example.com."},
       {"serial", "2025010101"},
       {"mname", "ns1.example.com"}},
      {{"Line", 12},
       {"type", "NS"},
       {"name", "example.com."},
       {"ttl", "86400"},
       {"nsdname", "ns1.example.com"}},
  });
  for (auto& r : records) {
    recs.push_back(r);
  }
  auto j = envelope("dumpzone", 1, "Zone Serialized");
  j["data"] = {{"zone", json::array({{{"record", recs}}})}};
  return answer(200, j);
}

record www(std::string content = "192.0.2.10", int ttl = 300) {
  record r;
  r.name = "www.example.com";
  r.zone = "example.com";
  r.content = std::move(content);
  r.ttl_s = ttl;
  return r;
}

std::string url(const std::string& function, const std::string& query) {
  return base + "/json-api/" + function + "?api.version=1" + (query.empty() ? "" : "&" + query);
}

std::string authorization(const step& s) {
  for (const auto& h : s.http.headers) {
    if (h.name == "Authorization") {
      return h.value;
    }
  }
  return {};
}

// A GET of exactly this URL, the token only in the Authorization header.
void check_get(const step& s, const std::string& expected_url) {
  REQUIRE(s.k == step::kind::http);
  CHECK(s.http.method == "GET");
  CHECK(s.http.url == expected_url);
  CHECK(s.http.body.empty());
  CHECK(authorization(s) == "whm reseller1:" + secret);
  CHECK(s.http.url.find(secret) == std::string::npos);
}

} // namespace

TEST_CASE("whm finds the zone by the longest suffix WHM serves and caches it",
          "[whm][unit]") {
  auto p = make();
  CHECK(std::string(p->kind()) == "whm");
  record r = www();
  r.zone.clear();
  r.name = "WWW.Deep.Example.COM.";
  auto op = p->read(r);
  auto s = op->start();
  check_get(s, url("listzones", ""));
  s = op->on_http(listzones({"example.com", "deep.example.com", "other.example.net"}));
  check_get(s, url("dumpzone", "domain=deep.example.com"));
  s = op->on_http(dump({a_rec(14, "www.deep.example.com.", "A", "192.0.2.7")}));
  REQUIRE(s.k == step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->zone == "deep.example.com");
  CHECK(s.live->name == "www.deep.example.com");
  CHECK(s.live->content == "192.0.2.7");

  // The same name again: straight to dumpzone.
  auto again = p->read(r);
  check_get(again->start(), url("dumpzone", "domain=deep.example.com"));
  // Another name under a zone already listed: no listzones either.
  record other = r;
  other.name = "mail.example.com";
  auto op3 = p->read(other);
  check_get(op3->start(), url("dumpzone", "domain=example.com"));
  // A name under no zone listed: listzones again (the zone may be new).
  record fresh = r;
  fresh.name = "www.new.example.org";
  auto op4 = p->read(fresh);
  check_get(op4->start(), url("listzones", ""));
  s = op4->on_http(listzones({"example.com"}));
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::permanent);
  CHECK(s.message.find("www.new.example.org") != std::string::npos);
}

TEST_CASE("whm apply writes nothing when the record is in place", "[whm][unit]") {
  // WHM's ttl comes as a string from the zone file; a number is accepted too.
  auto ttl = GENERATE(json("300"), json(300));
  CAPTURE(ttl.dump());
  auto p = make();
  auto op = p->apply(www("192.0.2.10"));
  auto s = op->start();
  check_get(s, url("dumpzone", "domain=example.com"));
  s = op->on_http(dump({a_rec(13, "www.example.com.", "AAAA", "2001:db8::1"),
                        a_rec(14, "www.example.com.", "A", "192.0.2.10", ttl),
                        a_rec(15, "other.example.com.", "A", "192.0.2.99")}));
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.wrote);
}

TEST_CASE("whm apply edits the record's line in place and confirms with a second dump",
          "[whm][unit]") {
  auto p = make();
  auto op = p->apply(www("192.0.2.20"));
  op->start();
  // The TTL alone differs: still an edit.
  auto s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.20", "3600")}));
  check_get(s, url("editzonerecord",
                   "domain=example.com&line=14&name=www.example.com.&type=A&class=IN&ttl=300"
                   "&address=192.0.2.20"));
  s = op->on_http(ok("editzonerecord"));
  check_get(s, url("dumpzone", "domain=example.com"));
  s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.20")}));
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);
}

TEST_CASE("whm apply adds the record when the name has none of that type", "[whm][unit]") {
  auto p = make();
  auto want = www("2001:db8::10", 60);
  want.type = record_type::aaaa;
  want.proxied = true; // no such thing at WHM: ignored
  auto op = p->apply(want);
  op->start();
  auto s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.10")}));
  check_get(s, url("addzonerecord",
                   "domain=example.com&name=www.example.com.&type=AAAA&class=IN&ttl=60"
                   "&address=2001%3Adb8%3A%3A10"));
  s = op->on_http(ok("addzonerecord"));
  check_get(s, url("dumpzone", "domain=example.com"));
  // WHM may spell the address its own way.
  s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.10"),
                        a_rec(15, "www.example.com.", "AAAA", "2001:0db8:0:0::10", "60")}));
  REQUIRE(s.k == step::kind::done);
  CHECK(s.wrote);
}

TEST_CASE("whm MX and SRV go as WHM's fields, host names absolute", "[whm][unit]") {
  auto p = make();
  record mx;
  mx.zone = "example.com";
  mx.name = "example.com";
  mx.type = record_type::mx;
  mx.content = "10 Mail.Example.com";
  mx.ttl_s = 3600;
  auto op = p->apply(mx);
  op->start();
  auto s = op->on_http(dump({}));
  check_get(s, url("addzonerecord",
                   "domain=example.com&name=example.com.&type=MX&class=IN&ttl=3600"
                   "&exchange=mail.example.com.&preference=10"));

  record srv = mx;
  srv.name = "_sip._udp.example.com";
  srv.type = record_type::srv;
  srv.content = "10 5 5060 sip.example.com.";
  auto op2 = p->apply(srv);
  op2->start();
  s = op2->on_http(dump({}));
  check_get(s, url("addzonerecord",
                   "domain=example.com&name=_sip._udp.example.com.&type=SRV&class=IN&ttl=3600"
                   "&priority=10&weight=5&port=5060&target=sip.example.com."));

  // dumpzone's fields (host names without their dot) compare equal.
  auto op3 = p->apply(mx);
  op3->start();
  s = op3->on_http(dump({{{"Line", 14}, {"name", "example.com."}, {"type", "MX"},
                          {"class", "IN"}, {"ttl", "3600"}, {"preference", "10"},
                          {"exchange", "mail.example.com"}}}));
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.wrote);
  auto op4 = p->apply(srv);
  op4->start();
  s = op4->on_http(dump({{{"Line", 14}, {"name", "_sip._udp.example.com."}, {"type", "SRV"},
                          {"class", "IN"}, {"ttl", "3600"}, {"priority", "10"},
                          {"weight", "5"}, {"port", 5060}, {"target", "sip.example.com"}}}));
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.wrote);
}

TEST_CASE("whm duplicates are removed from the highest line down", "[whm][unit]") {
  auto p = make();
  SECTION("none holds the value: the first line is edited, the others removed") {
    auto op = p->apply(www("192.0.2.50"));
    op->start();
    auto s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.1"),
                               a_rec(15, "mail.example.com.", "A", "192.0.2.2"),
                               a_rec(16, "www.example.com.", "A", "192.0.2.3"),
                               a_rec(19, "www.example.com.", "A", "192.0.2.4")}));
    check_get(s, url("editzonerecord",
                     "domain=example.com&line=14&name=www.example.com.&type=A&class=IN&ttl=300"
                     "&address=192.0.2.50"));
    s = op->on_http(ok("editzonerecord"));
    check_get(s, url("removezonerecord", "zone=example.com&line=19"));
    s = op->on_http(ok("removezonerecord"));
    check_get(s, url("removezonerecord", "zone=example.com&line=16"));
    s = op->on_http(ok("removezonerecord"));
    check_get(s, url("dumpzone", "domain=example.com"));
    s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.50"),
                          a_rec(15, "mail.example.com.", "A", "192.0.2.2")}));
    REQUIRE(s.k == step::kind::done);
    CHECK(s.wrote);
  }
  SECTION("a later line holds the value: it stays, the others are removed, no edit") {
    auto op = p->apply(www("192.0.2.3"));
    op->start();
    auto s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.1"),
                               a_rec(16, "www.example.com.", "A", "192.0.2.3"),
                               a_rec(19, "www.example.com.", "A", "192.0.2.4")}));
    check_get(s, url("removezonerecord", "zone=example.com&line=19"));
    s = op->on_http(ok("removezonerecord"));
    check_get(s, url("removezonerecord", "zone=example.com&line=14"));
    s = op->on_http(ok("removezonerecord"));
    check_get(s, url("dumpzone", "domain=example.com"));
    s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.3")}));
    REQUIRE(s.k == step::kind::done);
    CHECK(s.wrote);
  }
}

TEST_CASE("whm a write the second dump does not show is a transient failure", "[whm][unit]") {
  auto p = make();
  auto op = p->apply(www("192.0.2.20"));
  op->start();
  op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.10")}));
  auto s = op->on_http(ok("editzonerecord"));
  REQUIRE(s.k == step::kind::http);
  SECTION("old value") {
    s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.10")}));
  }
  SECTION("a duplicate appeared") {
    s = op->on_http(dump({a_rec(14, "www.example.com.", "A", "192.0.2.20"),
                          a_rec(15, "www.example.com.", "A", "192.0.2.21")}));
  }
  SECTION("gone") { s = op->on_http(dump({})); }
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::transient);
  CHECK(s.message.find("not confirmed") != std::string::npos);
  CHECK(s.message.find(secret) == std::string::npos);
}

TEST_CASE("whm answers map to failures, and no message carries the token", "[whm][unit]") {
  using row = std::tuple<std::string, http_response, failure, std::int64_t, std::string>;
  auto transport = [] {
    http_response r;
    r.transport_error = "connect: Connection refused";
    return r;
  };
  auto cpsrvd_denied = json{{"cpanelresult",
                             {{"apiversion", "2"},
                              {"error", "Access denied"},
                              {"data", {{"reason", "Access denied"}, {"result", "0"}}},
                              {"type", "text"}}}};
  http_response garbage;
  garbage.status = 200;
  garbage.body = "<html>cpsrvd</html>";
  auto [name, response, why, retry_ms, in_message] = GENERATE_COPY(table<std::string, http_response, failure, std::int64_t, std::string>({
      row{"transport error", transport(), failure::transient, 0, "Connection refused"},
      row{"500", answer(500, json("oops")), failure::transient, 0, "HTTP 500"},
      row{"503", answer(503, json("busy")), failure::transient, 0, "HTTP 503"},
      row{"401", answer(401, cpsrvd_denied), failure::auth, 0, "reseller1"},
      row{"403 cpsrvd", answer(403, cpsrvd_denied), failure::auth, 0, "Access denied"},
      row{"200 cpsrvd", answer(200, cpsrvd_denied), failure::auth, 0, "Access denied"},
      row{"result 0 permission", refused("dumpzone", "Permission denied"), failure::auth, 0,
          "Permission denied"},
      row{"429 Retry-After", answer(429, json("slow"), {{"retry-after", "7"}}),
          failure::rate_limited, 7000, "rate limited"},
      row{"429 bare", answer(429, json("slow")), failure::rate_limited, 0, "HTTP 429"},
      row{"no such zone", refused("dumpzone", "Zone does not exist."), failure::permanent, 0,
          "Zone does not exist."},
      row{"result 0 timeout", refused("dumpzone", "Timed out waiting for the zone lock"),
          failure::transient, 0, "Timed out"},
      row{"404", answer(404, json("no")), failure::permanent, 0, "HTTP 404"},
      row{"not JSON", garbage, failure::transient, 0, "not JSON"},
      row{"no metadata", answer(200, json{{"data", json::object()}}), failure::transient, 0,
          "metadata"},
  }));
  CAPTURE(name);
  auto p = make();
  auto op = p->apply(www());
  check_get(op->start(), url("dumpzone", "domain=example.com"));
  auto s = op->on_http(response);
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == why);
  CHECK(s.retry_after_ms == retry_ms);
  CHECK(s.message.find(in_message) != std::string::npos);
  CHECK(s.message.find(secret) == std::string::npos);
}

TEST_CASE("whm a refused write is permanent and names the call", "[whm][unit]") {
  auto p = make();
  auto op = p->apply(www("192.0.2.20"));
  op->start();
  auto s = op->on_http(dump({}));
  REQUIRE(s.k == step::kind::http);
  s = op->on_http(refused("addzonerecord", "“www.example.com.” is not a valid name."));
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::permanent);
  CHECK(s.message.find("addzonerecord example.com") != std::string::npos);
  CHECK(s.message.find("not a valid name") != std::string::npos);
  CHECK(s.message.find(secret) == std::string::npos);
}

TEST_CASE("whm content that cannot be a record fails before any request", "[whm][unit]") {
  auto p = make();
  auto [type, content] = GENERATE(table<record_type, std::string>({
      {record_type::a, "not-an-ip"},
      {record_type::a, "2001:db8::1"},
      {record_type::aaaa, "192.0.2.1"},
      {record_type::mx, "mail.example.com"},
      {record_type::mx, "70000 mail.example.com"},
      {record_type::srv, "10 5 sip.example.com"},
  }));
  CAPTURE(content);
  auto r = www(content);
  r.type = type;
  auto s = p->apply(r)->start();
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::permanent);
  CHECK(s.message.find(content) != std::string::npos);
}

TEST_CASE("whm a zone that stops existing is forgotten", "[whm][unit]") {
  auto p = make();
  record r = www();
  r.zone.clear();
  auto op = p->read(r);
  op->start();
  op->on_http(listzones({"example.com"}));
  auto s = op->on_http(refused("dumpzone", "Zone does not exist."));
  REQUIRE(s.k == step::kind::failed);
  CHECK(s.why == failure::permanent);
  check_get(p->read(r)->start(), url("listzones", ""));
}

TEST_CASE("whm read takes the first line of the set, or reports none", "[whm][unit]") {
  auto p = make();
  auto op = p->read(www(""));
  op->start();
  auto s = op->on_http(dump({a_rec(16, "www.example.com.", "A", "192.0.2.2", "60"),
                             a_rec(14, "www.example.com.", "A", "192.0.2.1", "30")}));
  REQUIRE(s.k == step::kind::done);
  REQUIRE(s.live);
  CHECK(s.live->content == "192.0.2.1");
  CHECK(s.live->ttl_s == 30);
  CHECK(s.live->zone == "example.com");

  auto none = p->read(www(""));
  none->start();
  s = none->on_http(dump({a_rec(14, "www.example.com.", "AAAA", "2001:db8::1")}));
  REQUIRE(s.k == step::kind::done);
  CHECK_FALSE(s.live);
}

TEST_CASE("whm list returns every A, AAAA, MX and SRV record of the zone", "[whm][unit]") {
  auto p = make();
  auto op = p->list("Example.com.");
  check_get(op->start(), url("dumpzone", "domain=example.com"));
  auto s = op->on_http(dump({
      a_rec(14, "www.example.com.", "A", "192.0.2.1"),
      a_rec(15, "www.example.com.", "AAAA", "2001:db8::1", "60"),
      {{"Line", 16}, {"name", "example.com."}, {"type", "MX"}, {"ttl", "14400"},
       {"preference", "5"}, {"exchange", "mx.example.com"}},
      {{"Line", 17}, {"name", "_x._tcp.example.com."}, {"type", "SRV"}, {"ttl", "14400"},
       {"priority", "1"}, {"weight", "2"}, {"port", "3"}, {"target", "t.example.com"}},
      {{"Line", 18}, {"name", "txt.example.com."}, {"type", "TXT"}, {"txtdata", "hello"}},
      {{"Line", 19}, {"name", "alias.example.com."}, {"type", "CNAME"}, {"cname", "www"}},
  }));
  REQUIRE(s.k == step::kind::done);
  REQUIRE(s.records.size() == 4);
  CHECK(s.records[0].name == "www.example.com");
  CHECK(s.records[0].type == record_type::a);
  CHECK(s.records[1].type == record_type::aaaa);
  CHECK(s.records[1].ttl_s == 60);
  CHECK(s.records[2].content == "5 mx.example.com");
  CHECK(s.records[3].content == "1 2 3 t.example.com");
  for (const auto& r : s.records) {
    CHECK(r.zone == "example.com");
  }
  CHECK(p->list("")->start().k == step::kind::failed);
}
