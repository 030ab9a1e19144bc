// Monitoring end to end: the pool's presets and a member's alert settings
// through the real balctld's admin API, kept across a restart.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/e2e/balctld_node.hpp"

using namespace balctl;
using namespace balctl::test;
using json = nlohmann::json;

TEST_CASE("monitoring presets and member alert settings are read, changed, refused field by "
          "field and kept across a restart",
          "[monitoring][e2e]") {
  node n;
  n.start();
  auto get = n.get("/v1/pools/example/monitoring");
  REQUIRE(get.status == 200);
  CHECK(get.body["heartbeat_alerts"] == true);
  CHECK(get.body["failover_banner_s"] == 7200);
  CHECK(get.body["failover_banner_until_ms"].is_null());

  auto set = n.patch("/v1/pools/example/monitoring",
                     {{"cpu_alerts", true},
                      {"cpu_pct", 80},
                      {"emails", {"ops@example.com"}},
                      {"failover_emails", {"dr@example.com"}}});
  REQUIRE(set.status == 200);
  CHECK(set.body["cpu_pct"] == 80);
  CHECK(set.body["emails"][0] == "ops@example.com");
  auto bad = n.patch("/v1/pools/example/monitoring", {{"disk_pct", 0}});
  CHECK(bad.status == 422);
  CHECK(bad.field() == "disk_pct");
  auto bad_mail = n.patch("/v1/pools/example/monitoring", {{"emails", {"nobody"}}});
  CHECK(bad_mail.status == 422);
  CHECK(bad_mail.field() == "emails[0]");
  auto unknown = n.patch("/v1/pools/example/monitoring", {{"pager", true}});
  CHECK(unknown.status == 422);
  CHECK(unknown.code() == "unknown_field");
  CHECK(n.patch("/v1/pools/example/monitoring", {{"cpu_pct", 70}}, viewer_token).status == 403);

  auto member = n.patch("/v1/pools/example/members/2/alerts",
                        {{"disk_pct", 95}, {"emails", {"night@example.com"}}});
  REQUIRE(member.status == 200);
  CHECK(member.body["disk_pct"] == 95);
  CHECK(member.body["member"] == 2);
  CHECK(n.patch("/v1/pools/example/members/77/alerts", {{"disk_pct", 95}}).status == 404);
  auto member_bad = n.patch("/v1/pools/example/members/2/alerts", {{"heartbeat_alerts", 3}});
  CHECK(member_bad.status == 422);
  CHECK(member_bad.field() == "heartbeat_alerts");

  n.stop();
  n.start();
  auto kept = n.get("/v1/pools/example/monitoring");
  REQUIRE(kept.status == 200);
  CHECK(kept.body["cpu_pct"] == 80);
  CHECK(kept.body["failover_emails"][0] == "dr@example.com");
  auto kept_member = n.get("/v1/pools/example/members/2/alerts");
  REQUIRE(kept_member.status == 200);
  CHECK(kept_member.body["disk_pct"] == 95);
  CHECK(kept_member.body["emails"][0] == "night@example.com");
}
