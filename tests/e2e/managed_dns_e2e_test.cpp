// End to end: a real balctld cuts protected accounts' DNS at a real
// PowerDNS (A, AAAA and MX rows, read back with kdig), and at Cloudflare and
// WHM (their stand-ins, tests/standins/, answering the documented APIs over
// HTTP), with provider credentials added through the admin API; Account Cut
// DNS fails back; Refresh DNS, Import from Cloudflare and Sync WHM→Cloudflare
// fill the Managed DNS catalogue; a provider refusing its key is retried and
// alerted without blocking the others; and an engine killed in the middle of
// a cut-over storm finishes it after restart, each record written once.

#include <catch2/catch.hpp>

#include <algorithm>

#include "tests/e2e/balctld_node.hpp"
#include "tests/standins/cloudflare_standin.hpp"
#include "tests/standins/whm_standin.hpp"
#include "tests/support/pdns_server.hpp"

using namespace balctl::test;

namespace {

const std::string cf_token = "cf-e2e-token-0123456789";

// Pool "web": members 1 (source of every account) and 2 (standby), with
// their public addresses; fast recovery so a fail-back test stays short.
void configure(node& n) {
  json members = json::array();
  for (int id : {1, 2}) {
    members.push_back({{"id", id},
                       {"hostname", "node" + std::to_string(id) + ".example.test"},
                       {"key", key_hex(id)},
                       {"allowed_ips", {"127.0.0.1"}},
                       {"public_ipv4", "192.0.2." + std::to_string(id)}});
  }
  n.config_extra["recovery_stable_s"] = 1;
  n.config_extra["pools"] = {{{"name", "web"}, {"failover_delay_s", 10}, {"members", members}}};
}

std::unique_ptr<cloudflare_standin> start_cloudflare(std::uint64_t limit = 1200,
                                                     std::int64_t window_ms = 300'000) {
  cloudflare_standin_options o;
  o.tokens = {cf_token};
  o.rate_limit_requests = limit;
  o.rate_limit_window_ms = window_ms;
  auto cf = std::make_unique<cloudflare_standin>(o);
  REQUIRE(cf->start().empty());
  cf->add_zone("example.test");
  return cf;
}

void seed_a(cloudflare_standin& cf, const std::string& name, const std::string& ip,
            bool proxied = false) {
  cloudflare_record r;
  r.zone = "example.test";
  r.name = name;
  r.type = "A";
  r.content = ip;
  r.ttl = proxied ? 1 : 300;
  r.proxied = proxied;
  cf.seed(r);
}

std::vector<cloudflare_record> cf_records(const cloudflare_standin& cf, const std::string& name,
                                          const std::string& type = "A") {
  std::vector<cloudflare_record> out;
  for (auto& r : cf.records("example.test")) {
    if (r.name == name && r.type == type) {
      out.push_back(r);
    }
  }
  return out;
}

std::string cf_content(const cloudflare_standin& cf, const std::string& name) {
  auto rs = cf_records(cf, name);
  return rs.size() == 1 ? rs[0].content : "(" + std::to_string(rs.size()) + " records)";
}

std::string whm_content(const whm_standin& whm, const std::string& zone, const std::string& name) {
  auto rs = whm.records(zone, name, "A");
  return rs.size() == 1 ? rs[0].content : "(" + std::to_string(rs.size()) + " records)";
}

void add_cloudflare(node& n, const cloudflare_standin& cf, json extra = json::object()) {
  json body = {{"id", "cf-main"},     {"type", "cloudflare"}, {"api_base", cf.api_base()},
               {"secret", cf_token}, {"global", true},       {"timeout_ms", 2000}};
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    body[it.key()] = it.value();
  }
  auto r = n.post("/v1/pools/web/dns/providers", body);
  INFO(r.raw);
  REQUIRE(r.status == 201);
}

void add_whm(node& n, const whm_standin& whm) {
  auto r = n.post("/v1/pools/web/dns/providers",
                  {{"id", "whm-2"}, {"type", "whm"}, {"api_base", whm.api_base()},
                   {"user", whm.user()}, {"secret", whm.token()}, {"member", 2},
                   {"timeout_ms", 2000}});
  INFO(r.raw);
  REQUIRE(r.status == 201);
}

// A change made at "Cloudflare" by someone else (the API, with the token).
void cf_patch(const cloudflare_standin& cf, const std::string& record_id, const json& body) {
  balctl::cli::http_call c;
  c.method = "PATCH";
  c.url = cf.api_base() + "/zones/" + cf.zone_id("example.test") + "/dns_records/" + record_id;
  c.body = body.dump();
  c.token = cf_token;
  c.timeout_s = 5;
  balctl::cli::curl_transport_impl t;
  auto r = t.perform(c);
  REQUIRE(r.status == 200);
}

json activity(node& n) { return n.get("/v1/pools/web/activity?limit=500").body; }

bool activity_has(node& n, const std::string& kind, const std::string& needle) {
  auto events = activity(n)["events"];
  for (const auto& e : events) {
    if (e.value("kind", "") == kind && e.value("message", "").find(needle) != std::string::npos) {
      return true;
    }
  }
  return false;
}

} // namespace

TEST_CASE("a down source cuts its accounts at Cloudflare and WHM, Account Cut DNS fails back",
          "[e2e][dns][accounts]") {
  auto cf = start_cloudflare();
  seed_a(*cf, "alice.example.test", "192.0.2.1", /*proxied=*/true);
  seed_a(*cf, "www.alice.example.test", "192.0.2.1");
  whm_standin whm;
  REQUIRE(whm.start().empty());
  whm.add_zone("bob.test");
  REQUIRE(whm.seed("bob.test", {"bob.test", "A", "192.0.2.1", 300, 0}).empty());

  node n;
  configure(n);
  n.start();
  add_cloudflare(n, *cf);
  add_whm(n, whm);
  // Secrets are write-only: the list shows that one is set, never what.
  auto providers = n.get("/v1/pools/web/dns/providers");
  REQUIRE(providers.status == 200);
  CHECK(providers.raw.find(cf_token) == std::string::npos);
  CHECK(providers.raw.find(whm.token()) == std::string::npos);
  CHECK(providers.body["providers"].size() == 2);

  auto alice = n.post("/v1/pools/web/accounts",
                      {{"id", "alice"},
                       {"domain", "alice.example.test"},
                       {"source", 1},
                       {"standby", 2},
                       {"dns_zone", "example.test"},
                       {"dns_ttl_s", 120},
                       {"records",
                        {{{"name", "alice.example.test"}, {"type", "A"}, {"dns_only", true}},
                         {{"name", "www.alice.example.test"}, {"type", "A"}}}}});
  INFO(alice.raw);
  REQUIRE(alice.status == 201);
  CHECK(alice.body["on"] == "source");
  CHECK(alice.body["records"][0]["provider"] == "cf-main");
  auto bob = n.post("/v1/pools/web/accounts", {{"id", "bob"},
                                              {"domain", "bob.test"},
                                              {"source", 1},
                                              {"standby", 2},
                                              {"dns_provider", "whm"}});
  INFO(bob.raw);
  REQUIRE(bob.status == 201);
  // The default cut-over list: the domain's A record, at the standby's WHM
  // key once it moves there.
  REQUIRE(bob.body["records"].size() == 1);
  CHECK(bob.body["records"][0]["provider"].is_null());
  CHECK_THAT(bob.body["records"][0]["provider_error"].get<std::string>(),
             Catch::Contains("member 1 has no WHM DNS key"));

  auto m1 = n.beat(1, "node1.example.test", key_hex(1), 3, "m1");
  auto m2 = n.beat(2, "node2.example.test", key_hex(2), 90, "m2");
  REQUIRE(wait_until([&] {
    return cf_content(*cf, "alice.example.test") == "192.0.2.2" &&
           cf_content(*cf, "www.alice.example.test") == "192.0.2.2" &&
           whm_content(whm, "bob.test", "bob.test") == "192.0.2.2";
  }, 40'000));
  // DNS only: the cut turned Cloudflare's proxying off; the other record
  // kept its setting; both took the account's TTL.
  auto apex = cf_records(*cf, "alice.example.test");
  CHECK_FALSE(apex.at(0).proxied);
  CHECK(apex.at(0).ttl == 120);
  CHECK(cf->counters().writes == 2);
  CHECK(whm.counters().writes == 1);
  REQUIRE(wait_until([&] { return n.metric("balctl_account_cuts_total") == 2; }, 5000));
  CHECK(activity_has(n, "account_cut", "account alice (alice.example.test): DNS cut to standby member 2"));
  CHECK(activity_has(n, "account_cut", "account bob (bob.test): DNS cut to standby member 2"));
  auto log = n.log();
  CHECK(log.find(cf_token) == std::string::npos);
  CHECK(log.find(whm.token()) == std::string::npos);

  // The catalogue after Refresh DNS: every record read, none drifting.
  auto refresh = n.post("/v1/pools/web/dns/refresh", json::object());
  REQUIRE(refresh.status == 202);
  CHECK(refresh.body["reads_queued"] == 3);
  REQUIRE(wait_until([&] {
    auto c = n.get("/v1/pools/web/dns").body;
    return c["health"]["checked"] == 3 && c["health"]["reads_pending"] == 0;
  }, 10'000));
  auto cat = n.get("/v1/pools/web/dns").body;
  CHECK(cat["health"]["drift"] == 0);
  CHECK(cat["health"]["on_standby"] == 2);
  CHECK(cat["accounts"][0]["records"][0]["live"]["content"] == "192.0.2.2");
  // Someone changes the record at Cloudflare behind the engine's back:
  // the next refresh shows the drift.
  cf_patch(*cf, cf_records(*cf, "www.alice.example.test").at(0).id, {{"content", "198.51.100.7"}});
  REQUIRE(cf_content(*cf, "www.alice.example.test") == "198.51.100.7");
  REQUIRE(n.post("/v1/pools/web/dns/refresh", {{"account", "alice"}}).status == 202);
  REQUIRE(wait_until([&] { return n.get("/v1/pools/web/dns").body["health"]["drift"] == 1; },
                     10'000));

  // The source comes back; the fail-back policy is manual, so the accounts
  // stay until an operator cuts them back.
  auto m1_back = n.beat(1, "node1.example.test", key_hex(1), 60, "m1b");
  REQUIRE(wait_until([&] {
    return n.get("/v1/pools/web/accounts/alice").body["source_state"] == "healthy";
  }, 20'000));
  CHECK(n.get("/v1/pools/web/accounts/alice").body["on"] == "standby");
  auto back = n.post("/v1/pools/web/accounts/alice/cut", {{"to", "source"}});
  INFO(back.raw);
  REQUIRE(back.status == 200);
  CHECK(back.body["on"] == "source");
  REQUIRE(wait_until([&] {
    return cf_content(*cf, "alice.example.test") == "192.0.2.1" &&
           cf_content(*cf, "www.alice.example.test") == "192.0.2.1";
  }, 10'000));
  // Bob's records would move through member 1's WHM key, which the pool
  // does not have: refused, and nothing moves.
  auto bob_back = n.post("/v1/pools/web/accounts/bob/cut", {{"to", "source"}});
  CHECK(bob_back.status == 409);
  CHECK(bob_back.code() == "not_applicable");
  CHECK_THAT(bob_back.body["error"]["message"].get<std::string>(),
             Catch::Contains("member 1 has no WHM DNS key"));
  CHECK(n.get("/v1/pools/web/accounts/bob").body["on"] == "standby");
  CHECK(whm_content(whm, "bob.test", "bob.test") == "192.0.2.2");
  n.stop();
}

TEST_CASE("Managed DNS API: accounts and providers are checked field by field, secrets write-only",
          "[e2e][dns][accounts]") {
  auto cf = start_cloudflare();
  node n;
  configure(n);
  n.start();
  using row = std::tuple<json, long, std::string, std::string>; // body, status, code, field
  auto cases = std::vector<row>{
    row{{{"domain", "a.test"}, {"source", 1}, {"standby", 2}}, 422, "missing_field", "id"},
    row{{{"id", "a"}, {"domain", "a.test"}, {"source", 1}, {"standby", 9}}, 422, "invalid_field",
        "standby"},
    row{{{"id", "a"}, {"domain", "a.test"}, {"source", 1}, {"standby", 1}}, 422, "invalid_field",
        "standby"},
    row{{{"id", "a"}, {"domain", "a.test"}, {"source", 1}, {"standby", 2}, {"colour", 1}}, 422,
        "unknown_field", "colour"},
    row{{{"id", "a"}, {"domain", "a.test"}, {"source", 1}, {"standby", 2},
         {"records", {{{"name", "a.test"}, {"type", "MX"}}}}},
        422, "invalid_field", "records[0].source_content"},
    row{{{"id", "a"}, {"domain", "a.test"}, {"source", 1}, {"standby", 2},
         {"dns_provider", "nope"}},
        422, "invalid_field", "dns_provider"},
  };
  for (const auto& [body, status, code, field] : cases) {
    CAPTURE(body.dump());
    auto r = n.post("/v1/pools/web/accounts", body);
    CHECK(r.status == status);
    CHECK(r.code() == code);
    CHECK(r.field() == field);
  }
  CHECK(n.get("/v1/pools/web/accounts/ghost").status == 404);
  CHECK(n.post("/v1/pools/web/accounts", {{"id", "a"}, {"domain", "a.test"}, {"source", 1},
                                          {"standby", 2}}, viewer_token).status == 403);

  // Providers: the config rules, named fields, no secret in any answer.
  auto bad = n.post("/v1/pools/web/dns/providers",
                    {{"id", "w"}, {"type", "whm"}, {"api_base", "https://n2:2087"},
                     {"secret", "s3cr3t-whm-key"}});
  CHECK(bad.status == 422);
  CHECK(bad.field() == "member");
  bad = n.post("/v1/pools/web/dns/providers",
               {{"id", "w"}, {"type", "whm"}, {"api_base", "ftp://x"}, {"secret", "s3cr3t-whm-key"},
                {"member", 2}});
  CHECK(bad.field() == "api_base");
  CHECK(bad.raw.find("s3cr3t") == std::string::npos);
  add_cloudflare(n, *cf);
  CHECK(n.post("/v1/pools/web/dns/providers",
               {{"id", "cf-main"}, {"type", "cloudflare"}, {"secret", "x"}}).code() ==
        "provider_exists");
  // Rotating the key: PATCH with the new secret only.
  auto rot = n.patch("/v1/pools/web/dns/providers/cf-main", {{"secret", "rotated-token-1"}});
  REQUIRE(rot.status == 200);
  CHECK(rot.raw.find("rotated-token-1") == std::string::npos);
  CHECK(rot.body["providers"][0]["secret_set"] == true);
  CHECK(rot.body["providers"][0]["global"] == true);
  // A new endpoint for a stored credential needs its secret again.
  auto repoint = n.patch("/v1/pools/web/dns/providers/cf-main", {{"api_base", "https://evil.test/v4"}});
  CHECK(repoint.status == 422);
  CHECK(repoint.field() == "secret");
  // In use by an account: not deleted.
  REQUIRE(n.post("/v1/pools/web/accounts", {{"id", "carol"}, {"domain", "carol.test"},
                                            {"source", 1}, {"standby", 2},
                                            {"dns_provider", "cf-main"}}).status == 201);
  auto del = n.call("DELETE", "/v1/pools/web/dns/providers/cf-main");
  CHECK(del.status == 409);
  CHECK(del.code() == "provider_in_use");
  CHECK(n.call("DELETE", "/v1/pools/web/dns/providers/nope").status == 404);
  // A record belongs to one account.
  auto twice = n.post("/v1/pools/web/accounts", {{"id", "carol2"}, {"domain", "carol.test"},
                                                 {"source", 2}, {"standby", 1}});
  CHECK(twice.status == 422);
  CHECK(twice.field() == "records[0].name");
  CHECK_THAT(twice.body["error"]["message"].get<std::string>(), Catch::Contains("carol"));
  // An HAProxy pool has no Protection.
  auto hp = n.post("/v1/pools", {{"name", "Edge"}, {"preset", "haproxy"}});
  REQUIRE(hp.status == 201);
  auto hp_acct = n.post("/v1/pools/" + hp.body["id"].get<std::string>() + "/accounts",
                        {{"id", "h"}, {"domain", "h.test"}, {"source", 1}, {"standby", 2}});
  CHECK(hp_acct.status == 409);
  CHECK(hp_acct.code() == "not_applicable");
  // Nor is a member that carries accounts (an API pool's, removable).
  auto fleet = n.make_pool("Acct Fleet");
  auto a1 = n.add_member(fleet, "a1.e2e.test")["member"]["id"].get<int>();
  auto a2 = n.add_member(fleet, "a2.e2e.test")["member"]["id"].get<int>();
  REQUIRE(n.post("/v1/pools/" + fleet + "/accounts",
                 {{"id", "erin"}, {"domain", "erin.test"}, {"source", a1}, {"standby", a2}})
            .status == 201);
  auto rm = n.call("DELETE", "/v1/pools/" + fleet + "/members/" + std::to_string(a2));
  CHECK(rm.status == 409);
  CHECK(rm.code() == "member_in_use");
  CHECK_THAT(rm.body["error"]["message"].get<std::string>(), Catch::Contains("erin"));
  REQUIRE(n.call("DELETE", "/v1/pools/web/accounts/carol").status == 204);
  // Reached through "cloudflare" (the Global key), it is in use too.
  REQUIRE(n.post("/v1/pools/web/accounts", {{"id", "gina"}, {"domain", "gina.test"},
                                            {"source", 1}, {"standby", 2}}).status == 201);
  CHECK(n.call("DELETE", "/v1/pools/web/dns/providers/cf-main").code() == "provider_in_use");
  REQUIRE(n.call("DELETE", "/v1/pools/web/accounts/gina").status == 204);
  CHECK(n.call("DELETE", "/v1/pools/web/dns/providers/cf-main").status == 200);
  // A WHM key is one member's: not an account's (nor the pool's) credential.
  REQUIRE(n.post("/v1/pools/web/dns/providers",
                 {{"id", "whm-2"}, {"type", "whm"}, {"api_base", "https://n2.test:2087"},
                  {"secret", "k"}, {"member", 2}}).status == 201);
  auto by_key = n.post("/v1/pools/web/accounts", {{"id", "fay"}, {"domain", "fay.test"},
                                                  {"source", 1}, {"standby", 2},
                                                  {"dns_provider", "whm-2"}});
  CHECK(by_key.status == 422);
  CHECK(by_key.field() == "dns_provider");
  // Cut to an unhealthy member: refused unless forced.
  REQUIRE(n.post("/v1/pools/web/accounts", {{"id", "dave"}, {"domain", "dave.test"},
                                            {"source", 1}, {"standby", 2}}).status == 201);
  // Nor does a PATCH point its records at a member that is not healthy.
  auto moved = n.patch("/v1/pools/web/accounts/dave", {{"source", 2}, {"standby", 1}});
  CHECK(moved.status == 409);
  CHECK(moved.code() == "member_not_healthy");
  CHECK(moved.field() == "source");
  auto cut = n.post("/v1/pools/web/accounts/dave/cut", {{"to", "standby"}});
  CHECK(cut.status == 409);
  CHECK(cut.code() == "member_not_healthy");
  CHECK(n.post("/v1/pools/web/accounts/dave/cut", {{"to", "sideways"}}).field() == "to");
  // Survives a restart, side included.
  n.stop();
  n.start();
  auto dave = n.get("/v1/pools/web/accounts/dave");
  REQUIRE(dave.status == 200);
  CHECK(dave.body["on"] == "source");
  CHECK(n.get("/v1/pools/web/dns/providers").body["providers"].size() == 1);
  CHECK(n.log().find("s3cr3t") == std::string::npos);
  n.stop();
}

TEST_CASE("Import from Cloudflare and Sync WHM to Cloudflare fill the catalogue and push WHM's records",
          "[e2e][dns][accounts]") {
  auto cf = start_cloudflare();
  seed_a(*cf, "alice.example.test", "192.0.2.1");
  seed_a(*cf, "www.alice.example.test", "192.0.2.1");
  seed_a(*cf, "other.example.test", "203.0.113.9"); // not alice's
  whm_standin whm;
  REQUIRE(whm.start().empty());
  whm.add_zone("example.test");
  REQUIRE(whm.seed("example.test", {"alice.example.test", "A", "192.0.2.1", 300, 0}).empty());
  REQUIRE(whm.seed("example.test", {"ftp.alice.example.test", "A", "192.0.2.1", 600, 0}).empty());
  node n;
  configure(n);
  n.start();
  add_cloudflare(n, *cf);
  // Member 1's WHM key: the account lives there (WHM is the source of truth).
  auto r = n.post("/v1/pools/web/dns/providers",
                  {{"id", "whm-1"}, {"type", "whm"}, {"api_base", whm.api_base()},
                   {"user", whm.user()}, {"secret", whm.token()}, {"member", 1}});
  REQUIRE(r.status == 201);
  REQUIRE(n.post("/v1/pools/web/accounts", {{"id", "alice"}, {"domain", "alice.example.test"},
                                            {"dns_zone", "example.test"}, {"source", 1},
                                            {"standby", 2}}).status == 201);

  auto imp = n.post("/v1/pools/web/dns/import", {{"account", "alice"}});
  REQUIRE(imp.status == 202);
  CHECK(imp.body["zones_queued"] == 1);
  REQUIRE(wait_until([&] {
    return n.get("/v1/pools/web/accounts/alice").body["records"].size() == 2;
  }, 10'000));
  auto a = n.get("/v1/pools/web/accounts/alice").body;
  CHECK(a["records"][1]["name"] == "www.alice.example.test");
  CHECK(a["records"][1]["origin"] == "cloudflare");
  CHECK(a["records"][1]["cut"] == false);
  CHECK(a["records"][1]["live"]["content"] == "192.0.2.1");

  auto writes_before = cf->counters().writes;
  auto sync = n.post("/v1/pools/web/dns/sync", json::object());
  REQUIRE(sync.status == 202);
  REQUIRE(wait_until([&] { return cf_records(*cf, "ftp.alice.example.test").size() == 1; },
                     10'000));
  auto ftp = cf_records(*cf, "ftp.alice.example.test");
  CHECK(ftp[0].content == "192.0.2.1");
  CHECK(ftp[0].ttl == 600);
  // The record in place at Cloudflare cost no write; only ftp was new.
  REQUIRE(wait_until([&] {
    return activity_has(n, "dns_change", "Sync WHM→Cloudflare of zone example.test");
  }, 10'000));
  CHECK(cf->counters().writes == writes_before + 1);
  a = n.get("/v1/pools/web/accounts/alice").body;
  CHECK(a["records"].size() == 3);
  // other.example.test is not under alice's domain: never taken.
  for (const auto& rec : a["records"]) {
    CHECK(rec["name"] != "other.example.test");
  }
  n.stop();
}

TEST_CASE("Cloudflare refusing its key is retried and alerted while WHM accounts are cut",
          "[e2e][dns][accounts]") {
  auto cf = start_cloudflare();
  seed_a(*cf, "alice.example.test", "192.0.2.1");
  cf->refuse_all_tokens(true);
  whm_standin whm;
  REQUIRE(whm.start().empty());
  whm.add_zone("bob.test");
  REQUIRE(whm.seed("bob.test", {"bob.test", "A", "192.0.2.1", 300, 0}).empty());
  node n;
  configure(n);
  n.start();
  add_cloudflare(n, *cf);
  add_whm(n, whm);
  REQUIRE(n.post("/v1/pools/web/accounts", {{"id", "alice"}, {"domain", "alice.example.test"},
                                            {"dns_zone", "example.test"}, {"source", 1},
                                            {"standby", 2}}).status == 201);
  REQUIRE(n.post("/v1/pools/web/accounts", {{"id", "bob"}, {"domain", "bob.test"},
                                            {"source", 1}, {"standby", 2},
                                            {"dns_provider", "whm"}}).status == 201);
  auto m1 = n.beat(1, "node1.example.test", key_hex(1), 3, "m1");
  auto m2 = n.beat(2, "node2.example.test", key_hex(2), 60, "m2");
  REQUIRE(wait_until([&] { return whm_content(whm, "bob.test", "bob.test") == "192.0.2.2"; },
                     40'000));
  REQUIRE(wait_until([&] { return activity_has(n, "dns_alert", "(auth, attempt 1)"); }, 10'000));
  CHECK(cf_content(*cf, "alice.example.test") == "192.0.2.1");
  CHECK(n.metric("balctl_dns_retries_total") >= 1);
  // The engine goes on answering; the account counts as cut, its change
  // pending in the journal until the key works.
  CHECK(n.get("/v1/pools/web/accounts/alice").body["on"] == "standby");
  CHECK(n.log().find(cf_token) == std::string::npos);
  n.stop();
}

TEST_CASE("an engine killed in the middle of an account cut-over storm finishes it after restart, "
          "each record written once",
          "[e2e][dns][accounts]") {
  // 60 accounts; the credential allows 20 requests per 2 s, so the storm
  // (a read and a write each) takes about 6 s: long enough to kill in.
  constexpr int accounts = 60;
  auto cf = start_cloudflare(20, 2000);
  for (int i = 0; i < accounts; ++i) {
    seed_a(*cf, "u" + std::to_string(i) + ".example.test", "192.0.2.1");
  }
  node n;
  configure(n);
  n.start();
  add_cloudflare(n, *cf, {{"rate_limit_requests", 20}, {"rate_limit_window_s", 2}});
  for (int i = 0; i < accounts; ++i) {
    auto id = "u" + std::to_string(i);
    REQUIRE(n.post("/v1/pools/web/accounts", {{"id", id}, {"domain", id + ".example.test"},
                                              {"dns_zone", "example.test"}, {"source", 1},
                                              {"standby", 2}}).status == 201);
  }
  auto m1 = n.beat(1, "node1.example.test", key_hex(1), 3, "m1");
  auto m2 = n.beat(2, "node2.example.test", key_hex(2), 90, "m2");
  REQUIRE(wait_until([&] { return cf->counters().writes >= 5; }, 40'000));
  REQUIRE(::kill(n.daemon->pid(), SIGKILL) == 0);
  n.daemon->stop(5000);
  auto written_before_restart = cf->counters().writes;
  CHECK(written_before_restart < static_cast<std::uint64_t>(accounts));
  n.start();
  REQUIRE(wait_until([&] {
    int moved = 0;
    for (int i = 0; i < accounts; ++i) {
      moved += cf_content(*cf, "u" + std::to_string(i) + ".example.test") == "192.0.2.2";
    }
    return moved == accounts;
  }, 60'000));
  REQUIRE(wait_until([&] { return n.log().find("event=dns_change_resumed") != std::string::npos; },
                     5000));
  // Exactly once: one write per record over both runs, none moved back.
  CHECK(cf->counters().writes == static_cast<std::uint64_t>(accounts));
  auto page = n.get("/v1/pools/web/accounts?limit=1000").body;
  REQUIRE(page["accounts"].size() == static_cast<std::size_t>(accounts));
  for (const auto& a : page["accounts"]) {
    CHECK(a["on"] == "standby");
  }
  n.stop();
}

TEST_CASE("an account's A, AAAA and MX rows move at a real PowerDNS when its source goes down",
          "[e2e][dns][accounts]") {
  pdns_server ns;
  ns.put_a("shop.e2e.test", "192.0.2.1");
  node n;
  configure(n);
  n.config_extra["dns_providers"] = {{{"id", "pdns"},
                                      {"type", "powerdns"},
                                      {"api_base", ns.api_base()},
                                      {"secret", ns.api_key()},
                                      {"timeout_ms", 2000}}};
  for (auto& m : n.config_extra["pools"][0]["members"]) {
    m["public_ipv6"] = "2001:db8::" + std::to_string(m["id"].get<int>());
  }
  n.start();
  auto r = n.post("/v1/pools/web/accounts",
                  {{"id", "shop"},
                   {"domain", "shop.e2e.test"},
                   {"source", 1},
                   {"standby", 2},
                   {"dns_provider", "pdns"},
                   {"dns_ttl_s", 60},
                   {"records",
                    {{{"name", "shop.e2e.test"}, {"type", "A"}},
                     {{"name", "shop.e2e.test"}, {"type", "AAAA"}},
                     {{"name", "shop.e2e.test"},
                      {"type", "MX"},
                      {"source_content", "10 node1.example.test"},
                      {"standby_content", "10 node2.example.test"}}}}});
  INFO(r.raw);
  REQUIRE(r.status == 201);
  CHECK(r.body["records"][1]["expected"] == "2001:db8::1");
  auto m1 = n.beat(1, "node1.example.test", key_hex(1), 3, "m1");
  auto m2 = n.beat(2, "node2.example.test", key_hex(2), 40, "m2");
  REQUIRE(wait_until([&] {
    return ns.dig("shop.e2e.test", "A") == std::vector<std::string>{"192.0.2.2"} &&
           ns.dig("shop.e2e.test", "AAAA") == std::vector<std::string>{"2001:db8::2"} &&
           ns.dig("shop.e2e.test", "MX") == std::vector<std::string>{"10 node2.example.test."};
  }, 40'000));
  REQUIRE(wait_until([&] {
    return n.metric("balctl_dns_changes_total{result=\"written\"}") == 3;
  }, 5000));
  CHECK(n.log().find(ns.api_key()) == std::string::npos);
  n.stop();
}

TEST_CASE("balctl adds a provider from a secret file, protects an account and cuts it both ways",
          "[e2e][dns][accounts][cli]") {
  auto cf = start_cloudflare();
  seed_a(*cf, "carol.example.test", "192.0.2.1");
  node n;
  configure(n);
  n.start();
  auto m1 = n.beat(1, "node1.example.test", key_hex(1), 60, "m1");
  auto m2 = n.beat(2, "node2.example.test", key_hex(2), 60, "m2");
  REQUIRE(wait_until([&] {
    return n.get("/v1/pools/web/members/2").body["state"] == "healthy" &&
           n.get("/v1/pools/web/members/1").body["state"] == "healthy";
  }, 15'000));

  std::ofstream(n.dir.file("cf.token")) << cf_token << "\n";
  auto add = n.cli({"provider", "add", "web", "cf-main", "--type", "cloudflare", "--api-base",
                    cf->api_base(), "--global", "--secret-file", n.dir.file("cf.token")});
  INFO(add.out + add.err);
  REQUIRE(add.exit_code == 0);
  // Without a secret source: a usage error, nothing sent.
  auto bare = n.cli({"provider", "add", "web", "cf-2", "--type", "cloudflare"});
  CHECK(bare.exit_code == 2);
  auto acct = n.cli({"account", "add", "web", "carol", "--domain", "carol.example.test",
                     "--source", "1", "--standby", "2", "--dns-zone", "example.test"});
  INFO(acct.out + acct.err);
  REQUIRE(acct.exit_code == 0);

  auto cut = n.cli({"account", "cut", "web", "carol"});
  INFO(cut.out + cut.err);
  REQUIRE(cut.exit_code == 0);
  REQUIRE(wait_until([&] { return cf_content(*cf, "carol.example.test") == "192.0.2.2"; }, 10'000));
  auto back = n.cli({"account", "cut", "web", "carol", "--to", "source"});
  REQUIRE(back.exit_code == 0);
  REQUIRE(wait_until([&] { return cf_content(*cf, "carol.example.test") == "192.0.2.1"; }, 10'000));
  // The account moves to other members: its records follow on its side.
  auto swap = n.cli({"account", "set", "web", "carol", "--source", "2", "--standby", "1"});
  INFO(swap.out + swap.err);
  REQUIRE(swap.exit_code == 0);
  REQUIRE(wait_until([&] { return cf_content(*cf, "carol.example.test") == "192.0.2.2"; }, 10'000));
  REQUIRE(n.cli({"account", "set", "web", "carol", "--source", "1", "--standby", "2"}).exit_code == 0);
  REQUIRE(wait_until([&] { return cf_content(*cf, "carol.example.test") == "192.0.2.1"; }, 10'000));

  REQUIRE(n.cli({"dns", "refresh", "web"}).exit_code == 0);
  REQUIRE(wait_until([&] { return n.get("/v1/pools/web/dns").body["health"]["checked"] == 1; },
                     10'000));
  auto show = n.cli({"dns", "show", "web"});
  REQUIRE(show.exit_code == 0);
  CHECK(show.out.find("carol.example.test") != std::string::npos);
  auto js = n.cli({"--json", "account", "show", "web", "carol"});
  REQUIRE(js.exit_code == 0);
  CHECK(json::parse(js.out)["on"] == "source");
  // An unknown account: exit 5 (not found).
  auto refused = n.cli({"account", "cut", "web", "nobody"});
  CHECK(refused.exit_code == 5);
  // The secret never shows: not in what balctl printed, not in the log.
  auto list = n.cli({"--verbose", "provider", "list", "web"});
  CHECK(list.exit_code == 0);
  CHECK(n.cli_transcript.find(cf_token) == std::string::npos);
  CHECK(n.log().find(cf_token) == std::string::npos);
  n.stop();
}
