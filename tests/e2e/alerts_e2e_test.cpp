// Monitoring end to end: the pool's presets and a member's alert settings
// through the real balctld's admin API, kept across a restart; alerts
// delivered to a real SMTP server (aiosmtpd) and a webhook receiver.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <mutex>

#include "tests/e2e/balctld_node.hpp"
#include "tests/support/smtp_server.hpp"
#include "transport/http_server.hpp"

using namespace balctl;
using namespace balctl::test;
using json = nlohmann::json;

TEST_CASE("a member that goes silent is alerted by e-mail to a real SMTP server and by webhook, "
          "and the failover mail goes to its own recipients",
          "[monitoring][alerts][e2e]") {
  smtp_server smtp;
  REQUIRE(smtp.port() > 0);
  // The webhook receiver: a real HTTP server in this process.
  std::mutex mu;
  std::vector<json> hooks;
  http::server_limits lim;
  http::server receiver("127.0.0.1:0", lim, [&](http::request&& req, http::responder respond) {
    {
      std::lock_guard<std::mutex> g(mu);
      hooks.push_back(json::parse(req.body, nullptr, false));
    }
    http::response r;
    r.status = 204;
    r.content_type.clear();
    respond(std::move(r));
  });
  REQUIRE(receiver.start().empty());
  auto hook_url = "http://127.0.0.1:" + std::to_string(receiver.bound_port()) + "/hook";

  node n;
  n.config_extra["notify"] = {{"smtp_url", "smtp://127.0.0.1:" + std::to_string(smtp.port())},
                              {"smtp_from", "balctl@e2e.test"},
                              {"retry_initial_ms", 100}};
  n.start();
  auto set = n.patch("/v1/pools/example/monitoring", {{"emails", {"ops@e2e.test"}},
                                                      {"webhooks", {hook_url}},
                                                      {"failover_emails", {"dr@e2e.test"}}});
  REQUIRE(set.status == 200);
  // Member 1 (the active one) beats briefly, member 2 all along.
  auto one = n.beat(1, "cfg1.e2e.test", key_hex(1), 2, "one");
  auto two = n.beat(2, "cfg2.e2e.test", key_hex(2), 60, "two");
  auto mail_to = [&](const std::string& who, const std::string& subject_part) {
    for (const auto& m : smtp.messages()) {
      if (std::find(m.rcpt_tos.begin(), m.rcpt_tos.end(), who) != m.rcpt_tos.end() &&
          m.header("Subject").find(subject_part) != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  bool mailed = wait_until([&] { return mail_to("ops@e2e.test", "cfg1.e2e.test is down"); },
                           40'000);
  INFO(n.log());
  REQUIRE(mailed);
  CHECK(wait_until([&] { return mail_to("dr@e2e.test", "DNS failover"); }, 10'000));
  bool hooked = wait_until([&] {
    std::lock_guard<std::mutex> g(mu);
    return std::any_of(hooks.begin(), hooks.end(), [](const json& h) {
      return h.is_object() && h.value("kind", std::string()) == "member_down" &&
             h.value("member", 0) == 1 && h.value("pool", std::string()) == "example";
    });
  }, 10'000);
  CHECK(hooked);
  // The banner shows the failover.
  auto mon = n.get("/v1/pools/example/monitoring");
  CHECK(mon.body["failover_banner_until_ms"].is_number());
  // /metrics counts what the notifier did: alerts posted, and deliveries
  // sent on both channels with none failed.
  CHECK(n.metric("balctl_alerts_total{result=\"posted\"}") >= 2);
  CHECK(wait_until([&] {
    return n.metric("balctl_alert_deliveries_total{channel=\"email\",result=\"sent\"}") >= 2 &&
           n.metric("balctl_alert_deliveries_total{channel=\"webhook\",result=\"sent\"}") >= 1;
  }, 10'000));
  CHECK(n.metric("balctl_alert_deliveries_total{channel=\"email\",result=\"failed\"}") == 0);
  receiver.stop();
}

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
