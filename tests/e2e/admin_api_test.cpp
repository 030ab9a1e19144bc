// The admin HTTP API end to end: the real balctld, started on loopback
// ports chosen at run time, driven over HTTP with libcurl (the CLI's own
// transport) and over raw sockets, heartbeats from balctl-loadgen.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>

#include "cli/client.hpp"
#include "engine/secrets.hpp"
#include "engine/types.hpp"
#include "transport/protocol.hpp"
#include "tests/e2e/balctld_node.hpp"
#include "tests/e2e/process.hpp"
#include "tests/support/test_certs.hpp"

using namespace balctl;
using namespace balctl::test;
using json = nlohmann::json;

namespace {

struct route {
  const char* method;
  std::string path;
  std::optional<std::string> body;
};

// Every route that needs a token, on a node with pool "p1" and member
// `member` in it.
std::vector<route> protected_routes(const std::string& member) {
  return {
    {"GET", "/metrics", std::nullopt},
    {"GET", "/v1/status", std::nullopt},
    {"GET", "/v1/pools", std::nullopt},
    {"POST", "/v1/pools", R"({"name":"other"})"},
    {"GET", "/v1/pools/p1", std::nullopt},
    {"PATCH", "/v1/pools/p1", R"({"name":"renamed"})"},
    {"DELETE", "/v1/pools/p1", std::nullopt},
    {"GET", "/v1/pools/p1/settings", std::nullopt},
    {"PATCH", "/v1/pools/p1/settings", R"({"failover_delay_s":20})"},
    {"GET", "/v1/pools/p1/overview", std::nullopt},
    {"GET", "/v1/pools/p1/activity", std::nullopt},
    {"GET", "/v1/pools/p1/members", std::nullopt},
    {"POST", "/v1/pools/p1/members",
     R"({"hostname":"n2.e2e.test","linux_family":"rhel","allowed_ips":["127.0.0.1"]})"},
    {"GET", "/v1/pools/p1/members/" + member, std::nullopt},
    {"DELETE", "/v1/pools/p1/members/" + member, std::nullopt},
    {"POST", "/v1/pools/p1/members/" + member + "/enrollment", std::nullopt},
  };
}

} // namespace

TEST_CASE("healthz and readyz answer without a token", "[admin][e2e]") {
  node n;
  n.start();
  auto h = n.get("/healthz", "");
  CHECK(h.status == 200);
  CHECK(h.body["status"] == "ok");
  auto r = n.get("/readyz", "");
  CHECK(r.status == 200);
  CHECK(r.body["status"] == "ready");
  CHECK(n.call("POST", "/healthz", "{}", "").status == 405);
}

TEST_CASE("every protected endpoint refuses a missing or unknown token with 401",
          "[admin][e2e]") {
  node n;
  n.start();
  REQUIRE(n.post("/v1/pools", {{"name", "p1"}}).status == 201);
  auto m = n.add_member("p1", "n1.e2e.test");
  auto id = std::to_string(m["member"]["id"].get<int>());
  for (const auto& rt : protected_routes(id)) {
    for (const std::string& token : {std::string(), std::string("not-a-token-at-all")}) {
      CAPTURE(rt.method, rt.path, token);
      auto r = n.call(rt.method, rt.path, rt.body, token);
      CHECK(r.status == 401);
      CHECK(r.code() == "unauthorized");
    }
  }
  // Nothing was changed by any of them.
  auto p = n.get("/v1/pools/p1");
  CHECK(p.body["name"] == "p1");
  CHECK(p.body["members"] == 1);
}

TEST_CASE("a read-only token reads everything and every write gets 403",
          "[admin][e2e]") {
  node n;
  n.start();
  REQUIRE(n.post("/v1/pools", {{"name", "p1"}}).status == 201);
  auto m = n.add_member("p1", "n1.e2e.test");
  auto id = std::to_string(m["member"]["id"].get<int>());
  for (const auto& rt : protected_routes(id)) {
    CAPTURE(rt.method, rt.path);
    auto r = n.call(rt.method, rt.path, rt.body, viewer_token);
    if (std::string(rt.method) == "GET") {
      CHECK(r.status == 200);
    } else {
      CHECK(r.status == 403);
      CHECK(r.code() == "forbidden");
    }
  }
  auto p = n.get("/v1/pools/p1");
  CHECK(p.body["name"] == "p1");
  CHECK(p.body["members"] == 1);
  CHECK(p.body["settings"]["failover_delay_s"] == 30);
}

TEST_CASE("a pool is created, listed, read, renamed, reconfigured and deleted",
          "[admin][e2e]") {
  node n;
  n.start();
  auto c = n.post("/v1/pools", {{"name", "Linux Fleet"}, {"preset", "haproxy"}});
  REQUIRE(c.status == 201);
  CHECK(c.body["id"] == "linux-fleet");
  CHECK(c.body["name"] == "Linux Fleet");
  CHECK(c.body["preset"] == "haproxy");
  CHECK(c.body["managed_by"] == "api");
  CHECK(c.body["settings"]["failover_delay_s"] == 30);

  auto list = n.get("/v1/pools");
  REQUIRE(list.status == 200);
  std::vector<std::string> ids;
  for (const auto& p : list.body["pools"]) {
    ids.push_back(p["id"].get<std::string>());
  }
  CHECK(ids == std::vector<std::string>{"example", "linux-fleet"});

  auto rn = n.patch("/v1/pools/linux-fleet", {{"name", "Web Farm"}});
  REQUIRE(rn.status == 200);
  CHECK(rn.body["name"] == "Web Farm");
  CHECK(rn.body["id"] == "linux-fleet");

  auto s = n.patch("/v1/pools/linux-fleet/settings",
                   {{"failover_delay_s", 60},
                    {"failover_hostname", "www.fleet.test"},
                    {"failback", "automatic"},
                    {"mass_silence_share", 0.75}});
  REQUIRE(s.status == 200);
  CHECK(s.body["failover_delay_s"] == 60);
  CHECK(s.body["failback"] == "automatic");
  auto g = n.get("/v1/pools/linux-fleet/settings");
  CHECK(g.body["failover_hostname"] == "www.fleet.test");
  CHECK(g.body["mass_silence_share"] == 0.75);
  CHECK(g.body["failback_stable_s"] == 300); // untouched

  auto log = n.get("/v1/pools/linux-fleet/activity");
  REQUIRE(log.status == 200);
  std::vector<std::string> kinds;
  for (const auto& e : log.body["events"]) {
    kinds.push_back(e["kind"].get<std::string>());
  }
  CHECK(kinds == std::vector<std::string>{"settings_changed", "pool_renamed",
                                          "pool_created"});

  CHECK(n.call("DELETE", "/v1/pools/linux-fleet").status == 204);
  CHECK(n.get("/v1/pools/linux-fleet").code() == "pool_not_found");
  CHECK(n.get("/v1/pools").body["pools"].size() == 1);
}

TEST_CASE("pool requests with a bad field are refused with the field and why",
          "[admin][e2e]") {
  node n;
  n.start();
  REQUIRE(n.post("/v1/pools", {{"name", "p1"}}).status == 201);
  struct bad {
    const char* method;
    const char* path;
    const char* body;
    long status;
    const char* code;
    const char* field;
  };
  auto cases = std::vector<bad>{
    {"POST", "/v1/pools", "{}", 422, "missing_field", "name"},
    {"POST", "/v1/pools", R"({"name":5})", 422, "invalid_field", "name"},
    {"POST", "/v1/pools", R"({"name":""})", 422, "invalid_field", "name"},
    {"POST", "/v1/pools", R"({"name":"x","preset":"windows"})", 422, "invalid_field", "preset"},
    {"POST", "/v1/pools", R"({"name":"x","color":"red"})", 422, "unknown_field", "color"},
    {"POST", "/v1/pools", R"({"name":"x","id":"no spaces"})", 422, "invalid_field", "id"},
    {"POST", "/v1/pools", R"({"name":"!!!"})", 422, "invalid_field", "name"},
    {"POST", "/v1/pools", "not json", 400, "invalid_json", ""},
    {"POST", "/v1/pools", "[1,2]", 400, "invalid_json", ""},
    {"POST", "/v1/pools", R"({"name":"p1"})", 409, "pool_exists", "id"},
    {"PATCH", "/v1/pools/p1", R"({"name":""})", 422, "invalid_field", "name"},
    {"PATCH", "/v1/pools/p1", R"({"label":"x"})", 422, "unknown_field", "label"},
    {"PATCH", "/v1/pools/p1/settings", R"({"failover_delay_s":5})", 422, "invalid_field", "failover_delay_s"},
    {"PATCH", "/v1/pools/p1/settings", R"({"failover_delay_s":121})", 422, "invalid_field", "failover_delay_s"},
    {"PATCH", "/v1/pools/p1/settings", R"({"failover_delay_s":"30"})", 422, "invalid_field", "failover_delay_s"},
    {"PATCH", "/v1/pools/p1/settings", R"({"failback":"sometimes"})", 422, "invalid_field", "failback"},
    {"PATCH", "/v1/pools/p1/settings", R"({"failback_stable_s":1})", 422, "invalid_field", "failback_stable_s"},
    {"PATCH", "/v1/pools/p1/settings", R"({"mass_silence_share":0})", 422, "invalid_field", "mass_silence_share"},
    {"PATCH", "/v1/pools/p1/settings", R"({"mass_silence_min_members":0})", 422, "invalid_field", "mass_silence_min_members"},
    {"PATCH", "/v1/pools/p1/settings", R"({"mass_silence_window_s":4000})", 422, "invalid_field", "mass_silence_window_s"},
    {"PATCH", "/v1/pools/p1/settings", R"({"failover_hostname":"bad host!"})", 422, "invalid_field", "failover_hostname"},
    {"PATCH", "/v1/pools/p1/settings", R"({"failover_delay":30})", 422, "unknown_field", "failover_delay"},
    {"PATCH", "/v1/pools/p1/settings", "{", 400, "invalid_json", ""},
    {"PATCH", "/v1/pools/example/settings", R"({"failover_delay_s":20})", 409, "pool_managed_by_config", ""},
    {"PATCH", "/v1/pools/example", R"({"name":"x"})", 409, "pool_managed_by_config", ""},
    {"DELETE", "/v1/pools/example", nullptr, 409, "pool_managed_by_config", ""},
    {"GET", "/v1/pools/nope", nullptr, 404, "pool_not_found", ""},
    {"DELETE", "/v1/pools/nope", nullptr, 404, "pool_not_found", ""},
    {"GET", "/v1/pools/p1/overview?tiles_limit=0", nullptr, 422, "invalid_field", "query.tiles_limit"},
    {"GET", "/v1/pools/p1/overview?tiles_limit=abc", nullptr, 422, "invalid_field", "query.tiles_limit"},
    {"GET", "/v1/pools/p1/overview?colour=1", nullptr, 422, "unknown_field", "query.colour"},
    {"GET", "/v1/pools/p1/activity?limit=100000", nullptr, 422, "invalid_field", "query.limit"},
    {"DELETE", "/v1/pools/p1?force=maybe", nullptr, 422, "invalid_field", "query.force"},
    {"PUT", "/v1/pools", "{}", 405, "method_not_allowed", ""},
    {"GET", "/v1/nothing", nullptr, 404, "not_found", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.method, c.path, c.body ? c.body : "");
    auto body = c.body ? std::optional<std::string>(c.body) : std::nullopt;
    auto r = n.call(c.method, c.path, body);
    CHECK(r.status == c.status);
    CHECK(r.code() == c.code);
    CHECK(r.field() == c.field);
    CHECK(!r.body["error"]["message"].get<std::string>().empty());
  }
  // Nothing half-applied: p1 is as created.
  auto p = n.get("/v1/pools/p1");
  CHECK(p.body["name"] == "p1");
  CHECK(p.body["settings"]["failover_delay_s"] == 30);
  CHECK(p.body["settings"]["failback"] == "manual");
}

TEST_CASE("adding a server returns its secret and install command once, members are listed, read and removed",
          "[admin][e2e]") {
  node n;
  n.start();
  auto pool = n.make_pool();
  auto r = n.post("/v1/pools/" + pool + "/members",
                  {{"name", "Node9"},
                   {"hostname", "node9.e2e.test"},
                   {"linux_family", "rhel"},
                   {"allowed_ips", {"127.0.0.1", "192.0.2.7"}}});
  REQUIRE(r.status == 201);
  auto secret = r.body["enrollment"]["secret"].get<std::string>();
  CHECK(secret.size() == 48);
  auto cmd = r.body["enrollment"]["install_command"].get<std::string>();
  CHECK(cmd.find("dnf install") != std::string::npos);
  CHECK(cmd.find("--key '" + secret + "'") != std::string::npos);
  CHECK(cmd.find("--hostname 'node9.e2e.test'") != std::string::npos);
  CHECK(cmd.find("--api-base 'http://127.0.0.1:" + std::to_string(n.admin_port) + "'") !=
        std::string::npos);
  auto member = r.body["member"];
  auto id = member["id"].get<int>();
  CHECK(id > 2); // above the config's members
  CHECK(member["name"] == "Node9");
  CHECK(member["state"] == "pending");
  CHECK(member["enrolled"] == false);
  CHECK(member["linux_family"] == "rhel");
  CHECK(member["allowed_ips"] == json({"127.0.0.1", "192.0.2.7"}));

  auto deb = n.add_member(pool, "node10.e2e.test");
  CHECK(deb["enrollment"]["install_command"].get<std::string>().find("apt-get") !=
        std::string::npos);

  // The secret is not shown again anywhere, and only its hash is stored.
  auto detail = n.get("/v1/pools/" + pool + "/members/" + std::to_string(id));
  REQUIRE(detail.status == 200);
  CHECK(detail.raw.find(secret) == std::string::npos);
  CHECK(n.get("/v1/pools/" + pool + "/members").raw.find(secret) == std::string::npos);
  CHECK(n.get("/v1/pools/" + pool + "/activity").raw.find(secret) == std::string::npos);
  CHECK(read_file(n.dir.file("store.db")).find(secret) == std::string::npos);
  CHECK(n.log().find(secret) == std::string::npos);

  auto list = n.get("/v1/pools/" + pool + "/members?limit=1");
  CHECK(list.body["total"] == 2);
  CHECK(list.body["members"].size() == 1);
  CHECK(list.body["members"][0]["id"] == id);

  CHECK(n.call("DELETE", "/v1/pools/" + pool + "/members/" + std::to_string(id)).status == 204);
  CHECK(n.get("/v1/pools/" + pool + "/members/" + std::to_string(id)).code() ==
        "member_not_found");
  CHECK(n.get("/v1/pools/" + pool + "/members").body["total"] == 1);
  // Its enrollment went with it.
  auto e = n.post("/v1/enroll", {{"hostname", "node9.e2e.test"}, {"secret", secret}}, "");
  CHECK(e.code() == "enrollment_invalid");
}

TEST_CASE("member requests with a bad field are refused with the field and why",
          "[admin][e2e]") {
  node n;
  n.start();
  auto pool = n.make_pool("p1");
  n.add_member(pool, "taken.e2e.test");
  struct bad {
    const char* body;
    long status;
    const char* code;
    const char* field;
  };
  auto cases = std::vector<bad>{
    {R"({"linux_family":"rhel","allowed_ips":["127.0.0.1"]})", 422, "missing_field", "hostname"},
    {R"({"hostname":"bad host","linux_family":"rhel","allowed_ips":["127.0.0.1"]})", 422, "invalid_field", "hostname"},
    {R"({"hostname":7,"linux_family":"rhel","allowed_ips":["127.0.0.1"]})", 422, "invalid_field", "hostname"},
    {R"({"hostname":"a.e2e.test","allowed_ips":["127.0.0.1"]})", 422, "missing_field", "linux_family"},
    {R"({"hostname":"a.e2e.test","linux_family":"windows","allowed_ips":["127.0.0.1"]})", 422, "invalid_field", "linux_family"},
    {R"({"hostname":"a.e2e.test","linux_family":"rhel"})", 422, "missing_field", "allowed_ips"},
    {R"({"hostname":"a.e2e.test","linux_family":"rhel","allowed_ips":[]})", 422, "invalid_field", "allowed_ips"},
    {R"({"hostname":"a.e2e.test","linux_family":"rhel","allowed_ips":"127.0.0.1"})", 422, "invalid_field", "allowed_ips"},
    {R"({"hostname":"a.e2e.test","linux_family":"rhel","allowed_ips":["1.2.3"]})", 422, "invalid_field", "allowed_ips[0]"},
    {R"({"hostname":"a.e2e.test","linux_family":"rhel","allowed_ips":["127.0.0.1","2001:db8::1"]})", 422, "invalid_field", "allowed_ips[1]"},
    {R"({"hostname":"a.e2e.test","linux_family":"rhel","allowed_ips":["127.0.0.1"],"name":""})", 422, "invalid_field", "name"},
    {R"({"hostname":"a.e2e.test","linux_family":"rhel","allowed_ips":["127.0.0.1"],"key":"x"})", 422, "unknown_field", "key"},
    {R"({"hostname":"taken.e2e.test","linux_family":"rhel","allowed_ips":["127.0.0.1"]})", 409, "hostname_exists", "hostname"},
    {"{\"hostname\":", 400, "invalid_json", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    auto r = n.call("POST", "/v1/pools/" + pool + "/members", std::string(c.body));
    CHECK(r.status == c.status);
    CHECK(r.code() == c.code);
    CHECK(r.field() == c.field);
  }
  CHECK(n.get("/v1/pools/" + pool + "/members").body["total"] == 1);
  CHECK(n.post("/v1/pools/nope/members",
               {{"hostname", "a.e2e.test"}, {"linux_family", "rhel"},
                {"allowed_ips", {"127.0.0.1"}}})
          .code() == "pool_not_found");
  CHECK(n.get("/v1/pools/" + pool + "/members/abc").code() == "member_not_found");
  CHECK(n.get("/v1/pools/" + pool + "/members/999").code() == "member_not_found");
  CHECK(n.call("DELETE", "/v1/pools/" + pool + "/members/999").code() == "member_not_found");
  CHECK(n.call("POST", "/v1/pools/example/members",
               std::string(R"({"hostname":"a.e2e.test","linux_family":"rhel","allowed_ips":["127.0.0.1"]})"))
          .code() == "pool_managed_by_config");
}

TEST_CASE("enrollment end to end: pool, server, enrol, heartbeat, healthy in the overview",
          "[admin][e2e]") {
  node n;
  n.start();
  auto pool = n.make_pool();
  auto added = n.add_member(pool, "node1.e2e.test");
  auto id = added["member"]["id"].get<member_id>();
  auto secret = added["enrollment"]["secret"].get<std::string>();

  auto g = n.post("/v1/enroll", {{"hostname", "node1.e2e.test"}, {"secret", secret}}, "");
  REQUIRE(g.status == 200);
  CHECK(g.body["member_id"] == id);
  CHECK(g.body["pool"] == pool);
  CHECK(g.body["heartbeat_udp"] == "127.0.0.1:" + std::to_string(n.udp_port));
  auto key = g.body["key"].get<std::string>();
  CHECK(key.size() == 64);
  // Single use: asked again (an agent whose answer was lost), the secret
  // gives the same key, never a second one.
  auto again = n.post("/v1/enroll", {{"hostname", "node1.e2e.test"}, {"secret", secret}}, "");
  CHECK(again.status == 200);
  CHECK(again.body["key"] == key);

  auto beats = n.beat(id, "node1.e2e.test", key, 20, "a");
  json tile;
  REQUIRE(wait_until(
    [&] {
      auto o = n.get("/v1/pools/" + pool + "/overview");
      if (o.status != 200 || o.body["tiles"].empty()) {
        return false;
      }
      tile = o.body["tiles"][0];
      return tile["state"] == "healthy" && !tile["agent_version"].is_null() &&
             o.body["kpis"]["agents_healthy"] == 1;
    },
    10'000));
  auto o = n.get("/v1/pools/" + pool + "/overview");
  CHECK(o.body["kpis"]["members"] == 1);
  CHECK(o.body["kpis"]["agents_total"] == 1);
  CHECK(o.body["kpis"]["fleet_health_pct"] == 100.0);
  CHECK(o.body["kpis"]["last_check_in_ms"].is_number());
  CHECK(o.body["tabs"]["protection"] == false); // one cPanel member at most
  CHECK(o.body["tabs"]["overview"] == true);
  CHECK(tile["id"] == id);
  CHECK(tile["active"] == true);

  auto d = n.get("/v1/pools/" + pool + "/members/" + std::to_string(id));
  REQUIRE(d.status == 200);
  CHECK(d.body["state"] == "healthy");
  CHECK(d.body["enrolled"] == true);
  CHECK(d.body["last_heartbeat_ms"].is_number());
  CHECK(d.body["metrics"].is_object());
  bool pending_to_healthy = false;
  for (const auto& h : d.body["history"]) {
    pending_to_healthy |= h["from"] == "pending" && h["to"] == "healthy";
  }
  CHECK(pending_to_healthy);

  std::vector<std::string> kinds;
  auto act = n.get("/v1/pools/" + pool + "/activity");
  CAPTURE(act.raw);
  for (const auto& e : act.body["events"]) {
    kinds.push_back(e["kind"].get<std::string>());
  }
  CHECK(std::find(kinds.begin(), kinds.end(), "enrolled") != kinds.end());
  CHECK(std::find(kinds.begin(), kinds.end(), "state_change") != kinds.end());
  CHECK(std::find(kinds.begin(), kinds.end(), "member_added") != kinds.end());
  CHECK(n.metric("balctl_enrollments_total{result=\"accepted\"}") == 2);
  CHECK(n.metric("balctl_members{state=\"healthy\"}") == 1);
  CHECK(n.metric("balctl_heartbeats_accepted_total") > 0);
  // The key the agent got is never logged.
  CHECK(n.log().find(key) == std::string::npos);
}

TEST_CASE("enrollment refuses a wrong secret, hostname or source, and rate-limits the source",
          "[admin][e2e]") {
  node n;
  n.admin_extra = {{"enroll_failures_per_minute", 3}};
  n.start();
  auto pool = n.make_pool();
  // Allowed from 127.0.0.2 only: the test connects from 127.0.0.1.
  auto other = n.add_member(pool, "far.e2e.test", "127.0.0.2");
  auto ok = n.add_member(pool, "near.e2e.test", "127.0.0.1");
  auto far_secret = other["enrollment"]["secret"].get<std::string>();
  auto near_secret = ok["enrollment"]["secret"].get<std::string>();

  auto r = n.post("/v1/enroll", {{"hostname", "far.e2e.test"}, {"secret", far_secret}}, "");
  CHECK(r.status == 403);
  CHECK(r.code() == "enrollment_source_not_allowed");
  r = n.post("/v1/enroll", {{"hostname", "wrong.e2e.test"}, {"secret", near_secret}}, "");
  CHECK(r.status == 403);
  CHECK(r.code() == "enrollment_hostname_mismatch");
  CHECK(r.field() == "hostname");
  r = n.post("/v1/enroll", {{"hostname", "near.e2e.test"}, {"secret", std::string(48, 'a')}}, "");
  CHECK(r.status == 401);
  CHECK(r.code() == "enrollment_invalid");
  // Three failures this minute: the source is refused before its secret
  // is looked at, even a valid one.
  r = n.post("/v1/enroll", {{"hostname", "near.e2e.test"}, {"secret", near_secret}}, "");
  CHECK(r.status == 429);
  CHECK(r.code() == "rate_limited");
  CHECK(!r.retry_after.empty());
  CHECK(std::stoi(r.retry_after) <= 60);
  CHECK(n.metric("balctl_enrollments_total{result=\"source_not_allowed\"}") == 1);
  CHECK(n.metric("balctl_enrollments_total{result=\"hostname_mismatch\"}") == 1);
  CHECK(n.metric("balctl_enrollments_total{result=\"invalid_secret\"}") == 1);
  CHECK(n.metric("balctl_enrollments_total{result=\"rate_limited\"}") == 1);
  CHECK(n.metric("balctl_enrollments_total{result=\"accepted\"}") == 0);
  // Even a malformed body: the limiter answers before the body is read.
  CHECK(n.call("POST", "/v1/enroll", std::string("{}"), "").status == 429);
  // The valid secret was not consumed by the refusals.
  auto m = n.get("/v1/pools/" + pool + "/members/" + std::to_string(ok["member"]["id"].get<int>()));
  CHECK(m.body["enrolled"] == false);
  CHECK(n.log().find(near_secret) == std::string::npos);
  CHECK(n.log().find(far_secret) == std::string::npos);
}

TEST_CASE("a malformed enrollment body names the field", "[admin][e2e]") {
  node n;
  n.start();
  auto r = n.call("POST", "/v1/enroll", std::string(R"({"hostname":"a.e2e.test"})"), "");
  CHECK(r.status == 422);
  CHECK(r.code() == "missing_field");
  CHECK(r.field() == "secret");
  r = n.call("POST", "/v1/enroll", std::string(R"({"hostname":"a","secret":"x","extra":1})"), "");
  CHECK(r.code() == "unknown_field");
  CHECK(r.field() == "extra");
  r = n.call("POST", "/v1/enroll", std::string("secret=abc"), "");
  CHECK(r.code() == "invalid_json");
  CHECK(n.call("GET", "/v1/enroll", std::nullopt, "").status == 405);
  CHECK(n.metric("balctl_enrollments_total{result=\"malformed\"}") == 3);
}

TEST_CASE("re-enrolment issues a new key and the old key stops verifying",
          "[admin][e2e]") {
  node n;
  n.start();
  auto pool = n.make_pool();
  auto added = n.add_member(pool, "node1.e2e.test");
  auto id = added["member"]["id"].get<member_id>();
  auto path = "/v1/pools/" + pool + "/members/" + std::to_string(id);
  auto g1 = n.post("/v1/enroll", {{"hostname", "node1.e2e.test"},
                                  {"secret", added["enrollment"]["secret"]}}, "");
  REQUIRE(g1.status == 200);
  auto key1 = g1.body["key"].get<std::string>();
  {
    auto beats = n.beat(id, "node1.e2e.test", key1, 1, "k1");
    REQUIRE(beats->wait_exit(10'000) == 0);
  }
  auto accepted = n.metric("balctl_heartbeats_accepted_total");
  CHECK(accepted > 0);

  auto re = n.call("POST", path + "/enrollment");
  REQUIRE(re.status == 201);
  auto g2 = n.post("/v1/enroll", {{"hostname", "node1.e2e.test"},
                                  {"secret", re.body["enrollment"]["secret"]}}, "");
  REQUIRE(g2.status == 200);
  auto key2 = g2.body["key"].get<std::string>();
  CHECK(key2 != key1);

  auto bad_before = n.metric("balctl_heartbeats_rejected_total{reason=\"bad_tag\"}");
  {
    auto old = n.beat(id, "node1.e2e.test", key1, 1, "old");
    REQUIRE(old->wait_exit(10'000) == 0);
  }
  CHECK(n.metric("balctl_heartbeats_accepted_total") == accepted);
  CHECK(n.metric("balctl_heartbeats_rejected_total{reason=\"bad_tag\"}") > bad_before);
  {
    auto fresh = n.beat(id, "node1.e2e.test", key2, 1, "new");
    REQUIRE(fresh->wait_exit(10'000) == 0);
  }
  CHECK(n.metric("balctl_heartbeats_accepted_total") > accepted);
}

TEST_CASE("a restart keeps the pools, members, settings and enrollments the API created",
          "[admin][e2e]") {
  node n;
  n.start();
  auto pool = n.make_pool("Keep Me");
  REQUIRE(n.patch("/v1/pools/" + pool, {{"name", "Kept"}}).status == 200);
  REQUIRE(n.patch("/v1/pools/" + pool + "/settings",
                  {{"failover_delay_s", 45}, {"failover_hostname", "www.kept.test"}})
            .status == 200);
  auto a = n.add_member(pool, "a.e2e.test");
  auto b = n.add_member(pool, "b.e2e.test");
  auto ga = n.post("/v1/enroll", {{"hostname", "a.e2e.test"},
                                  {"secret", a["enrollment"]["secret"]}}, "");
  REQUIRE(ga.status == 200);
  auto events_before = n.get("/v1/pools/" + pool + "/activity").body["events"].size();
  n.stop();

  n.start();
  auto p = n.get("/v1/pools/" + pool);
  REQUIRE(p.status == 200);
  CHECK(p.body["name"] == "Kept");
  CHECK(p.body["managed_by"] == "api");
  CHECK(p.body["members"] == 2);
  CHECK(p.body["settings"]["failover_delay_s"] == 45);
  CHECK(p.body["settings"]["failover_hostname"] == "www.kept.test");
  auto ma = n.get("/v1/pools/" + pool + "/members/" + std::to_string(a["member"]["id"].get<int>()));
  CHECK(ma.body["enrolled"] == true);
  CHECK(ma.body["linux_family"] == "debian");
  CHECK(ma.body["allowed_ips"] == json({"127.0.0.1"}));
  // The enrolled member's key survived: its heartbeats verify.
  {
    auto beats = n.beat(a["member"]["id"].get<member_id>(), "a.e2e.test",
                        ga.body["key"].get<std::string>(), 1, "after");
    REQUIRE(beats->wait_exit(10'000) == 0);
  }
  CHECK(n.metric("balctl_heartbeats_accepted_total") > 0);
  // The open enrollment survived too, and is still single use.
  auto gb = n.post("/v1/enroll", {{"hostname", "b.e2e.test"},
                                  {"secret", b["enrollment"]["secret"]}}, "");
  CHECK(gb.status == 200);
  CHECK(n.get("/v1/pools/" + pool + "/activity").body["events"].size() >= events_before);
  // New ids continue above the old ones.
  auto c = n.add_member(pool, "c.e2e.test");
  CHECK(c["member"]["id"].get<int>() > b["member"]["id"].get<int>());
}

TEST_CASE("/metrics and /v1/status report members by state, decisions and HTTP codes",
          "[admin][e2e]") {
  node n;
  n.start();
  n.get("/v1/pools/nope");
  auto r = n.get("/metrics");
  REQUIRE(r.status == 200);
  for (const char* line :
       {"# TYPE balctl_heartbeats_accepted_total counter",
        "balctl_heartbeats_rejected_total{reason=\"bad_tag\"} 0",
        "balctl_members{state=\"pending\"} 2",
        "balctl_pool_decisions_total{kind=\"dns_move\"} 0",
        "balctl_http_requests_total{code=\"404\"} 1",
        "balctl_event_loop_lag_ms{loop=\"admin\",stat=\"max\"}",
        "balctl_event_loop_lag_ms{loop=\"ingest\",stat=\"last\"}"}) {
    CAPTURE(line);
    CHECK(r.raw.find(line) != std::string::npos);
  }
  auto s = n.get("/v1/status");
  REQUIRE(s.status == 200);
  CHECK(s.body["pools"] == 1);
  CHECK(s.body["members"] == 2);
  CHECK(s.body["by_state"]["pending"] == 2);
  CHECK(s.body["holding_pools"] == 0);
}

TEST_CASE("garbage on the admin port never takes balctld down", "[admin][e2e]") {
  node n;
  n.start();
  std::mt19937 rng(20261125);
  const std::string valid = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 200; ++i) {
    std::string bytes;
    if (i % 2 == 0) {
      bytes.resize(rng() % 512);
      for (auto& c : bytes) {
        c = static_cast<char>(rng() % 256);
      }
    } else {
      bytes = valid;
      for (int k = 0; k < 4; ++k) {
        bytes[rng() % bytes.size()] = static_cast<char>(rng() % 256);
      }
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(n.admin_port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    (void)!write(fd, bytes.data(), bytes.size());
    shutdown(fd, SHUT_WR);
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
  }
  CHECK(n.daemon->poll() == -1);
  CHECK(n.get("/healthz", "").status == 200);
  CHECK(n.metric("balctl_http_parse_errors_total") > 0);
}

TEST_CASE("the balctl CLI drives pools, members, status and the log with script-friendly exit codes",
          "[admin][cli][e2e]") {
  node n;
  n.start();
  auto c = n.cli({"pool", "create", "CLI Fleet"});
  CHECK(c.exit_code == 0);
  CHECK(c.out.find("cli-fleet") != std::string::npos);

  auto list = n.cli({"pool", "list"});
  CHECK(list.exit_code == 0);
  CHECK(list.out.find("cli-fleet") != std::string::npos);
  CHECK(list.out.find("example") != std::string::npos);

  auto js = n.cli({"--json", "pool", "list"});
  REQUIRE(js.exit_code == 0);
  auto pools = json::parse(js.out);
  CHECK(pools["pools"].size() == 2);

  auto add = n.cli({"--json", "member", "add", "cli-fleet", "--hostname",
                         "cli1.e2e.test", "--linux-family", "rhel", "--allowed-ip",
                         "127.0.0.1", "--name", "CLI One"});
  REQUIRE(add.exit_code == 0);
  auto added = json::parse(add.out);
  auto id = std::to_string(added["member"]["id"].get<int>());
  CHECK(added["enrollment"]["secret"].get<std::string>().size() == 48);

  auto human = n.cli({"member", "add", "cli-fleet", "--hostname", "cli2.e2e.test",
                           "--linux-family", "debian", "--allowed-ip", "127.0.0.1"});
  CHECK(human.exit_code == 0);
  CHECK(human.out.find("apt-get") != std::string::npos);
  CHECK(human.out.find("once") != std::string::npos);

  auto members = n.cli({"member", "list", "cli-fleet"});
  CHECK(members.exit_code == 0);
  CHECK(members.out.find("cli1.e2e.test") != std::string::npos);
  CHECK(members.out.find("cli2.e2e.test") != std::string::npos);

  auto show = n.cli({"member", "show", "cli-fleet", id});
  CHECK(show.exit_code == 0);
  CHECK(show.out.find("pending") != std::string::npos);

  auto settings = n.cli({"pool", "settings", "cli-fleet", "--failover-delay-s", "90"});
  CHECK(settings.exit_code == 0);
  CHECK(n.get("/v1/pools/cli-fleet/settings").body["failover_delay_s"] == 90);

  auto status = n.cli({"status"});
  CHECK(status.exit_code == 0);
  auto pool_status = n.cli({"status", "cli-fleet"});
  CHECK(pool_status.exit_code == 0);
  CHECK(pool_status.out.find("cli1.e2e.test") != std::string::npos);

  auto log = n.cli({"log", "cli-fleet"});
  CHECK(log.exit_code == 0);
  CHECK(log.out.find("member_added") != std::string::npos);

  // Exit codes a script can branch on.
  CHECK(n.cli({"pool", "show", "nope"}).exit_code == 5);
  CHECK(n.cli({"pool", "create", "CLI Fleet"}).exit_code == 6);
  CHECK(n.cli({"pool", "settings", "cli-fleet", "--failover-delay-s", "5"}).exit_code == 6);
  CHECK(n.cli({"pool", "list"}, "wrong-token-0123456789").exit_code == 4);
  CHECK(n.cli({"pool", "create", "X"}, viewer_token).exit_code == 4);
  CHECK(n.cli({"pool", "frobnicate"}).exit_code == 2);

  CHECK(n.cli({"member", "remove", "cli-fleet", id}).exit_code == 0);
  CHECK(n.cli({"member", "show", "cli-fleet", id}).exit_code == 5);
  CHECK(n.cli({"pool", "delete", "cli-fleet"}).exit_code == 0);
  CHECK(n.cli({"pool", "show", "cli-fleet"}).exit_code == 5);

  // Nothing any of these commands printed shows the token.
  REQUIRE(n.cli_transcript.find("cli1.e2e.test") != std::string::npos);
  CHECK(n.cli_transcript.find(admin_token) == std::string::npos);
}

TEST_CASE("the balctl CLI exits 3 when the server cannot be reached", "[admin][cli][e2e]") {
  node n; // not started: nothing listens on port 1
  n.admin_port = 1;
  auto r = n.cli({"pool", "list"});
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("cannot reach") != std::string::npos);
}

TEST_CASE("Protection and Managed DNS tabs appear once two members report cPanel",
          "[admin][e2e]") {
  node n;
  n.start();
  auto pool = n.make_pool("Hosting");
  REQUIRE(n.post("/v1/pools", {{"name", "Balancers"}, {"preset", "haproxy"}}).status == 201);
  std::vector<std::unique_ptr<process>> beats;
  auto enrol_and_beat = [&](const std::string& p, const std::string& host,
                            std::vector<std::string> extra) {
    auto added = n.add_member(p, host);
    auto g = n.post("/v1/enroll", {{"hostname", host},
                                   {"secret", added["enrollment"]["secret"]}}, "");
    REQUIRE(g.status == 200);
    beats.push_back(n.beat(g.body["member_id"].get<member_id>(), host,
                           g.body["key"].get<std::string>(), 20, host, extra));
  };
  enrol_and_beat(pool, "cp1.e2e.test", {"--stacks", "cpanel,mariadb", "--agent-version", "1.2.0"});
  REQUIRE(wait_until([&] {
    auto o = n.get("/v1/pools/" + pool + "/overview");
    return o.body["kpis"]["cpanel_members"] == 1;
  }, 10'000));
  CHECK(n.get("/v1/pools/" + pool + "/overview").body["tabs"]["protection"] == false);
  enrol_and_beat(pool, "cp2.e2e.test", {"--stacks", "cpanel", "--agent-version", "1.1.9"});
  enrol_and_beat("balancers", "lb1.e2e.test", {"--stacks", "cpanel"});
  enrol_and_beat("balancers", "lb2.e2e.test", {"--stacks", "cpanel"});
  json o;
  REQUIRE(wait_until([&] {
    o = n.get("/v1/pools/" + pool + "/overview").body;
    return o["kpis"]["cpanel_members"] == 2;
  }, 10'000));
  CHECK(o["tabs"]["protection"] == true);
  CHECK(o["tabs"]["managed_dns"] == true);
  CHECK(o["kpis"]["outdated_agents"] == 1); // 1.1.9 < 1.2.0
  // A tile lists what its member runs.
  bool seen = false;
  for (const auto& t : o["tiles"]) {
    if (t["hostname"] == "cp1.e2e.test") {
      seen = true;
      CHECK(t["stacks"] == json({"mariadb", "cpanel"}));
    }
  }
  CHECK(seen);
  json b;
  REQUIRE(wait_until([&] {
    b = n.get("/v1/pools/balancers/overview").body;
    return b["kpis"]["cpanel_members"] == 2;
  }, 10'000));
  CHECK(b["tabs"]["protection"] == false); // never on HAProxy pools
  CHECK(b["tabs"]["managed_dns"] == false);
}

TEST_CASE("with a certificate configured the admin API speaks only TLS", "[admin][e2e][tls]") {
  node n;
  auto cert = n.dir.file("cert.pem");
  auto key = n.dir.file("key.pem");
  // Self-signed, SAN DNS:localhost, IP:127.0.0.1 (tests/support/test_certs.hpp).
  REQUIRE(make_self_signed(cert, key));
  n.admin_extra = {{"tls_cert_file", cert}, {"tls_key_file", key}};
  n.start();
  cli::curl_transport_impl t;
  cli::http_call c;
  c.method = "GET";
  c.url = "https://127.0.0.1:" + std::to_string(n.admin_port) + "/v1/pools";
  c.token = admin_token;
  c.cacert = cert;
  auto r = t.perform(c);
  REQUIRE(r.what == cli::http_reply::kind::answered);
  CHECK(r.status == 200);
  CHECK(json::parse(r.body)["pools"].size() == 1);
  // Plain HTTP on the TLS port gets no answer.
  c.url = "http://127.0.0.1:" + std::to_string(n.admin_port) + "/v1/pools";
  c.timeout_s = 5;
  auto plain = t.perform(c);
  CHECK((plain.what != cli::http_reply::kind::answered || plain.status != 200));
  // The install command points agents at the https base.
  c.url = "https://127.0.0.1:" + std::to_string(n.admin_port) + "/v1/pools";
  c.method = "POST";
  c.body = R"({"name":"tls"})";
  REQUIRE(t.perform(c).status == 201);
  c.url += "/tls/members";
  c.body = R"({"hostname":"a.e2e.test","linux_family":"rhel","allowed_ips":["127.0.0.1"]})";
  auto m = t.perform(c);
  REQUIRE(m.status == 201);
  CHECK(json::parse(m.body)["enrollment"]["api_base"] ==
        "https://127.0.0.1:" + std::to_string(n.admin_port));
}

TEST_CASE("a config member may not take the id of a member the API created",
          "[admin][e2e]") {
  node n;
  n.start();
  auto pool = n.make_pool();
  auto m = n.add_member(pool, "api.e2e.test");
  auto id = m["member"]["id"].get<int>();
  n.stop();
  n.config_ids = {1, 2, id};
  n.write_config();
  process p({BALCTLD_PATH, "--config", n.dir.file("balctld.json")},
            n.dir.file("conflict.out"), n.dir.file("conflict.err"));
  CHECK(p.wait_exit(20'000) == 2);
  auto err = read_file(n.dir.file("conflict.err"));
  CHECK(err.find("pools[0].members[2].id = " + std::to_string(id) +
                 ": already member " + std::to_string(id) + " of pool '" + pool +
                 "'") != std::string::npos);
  // With the id freed again, it starts and the API pool is intact.
  n.config_ids = {1, 2};
  n.start();
  CHECK(n.get("/v1/pools/" + pool).body["members"] == 1);
}
