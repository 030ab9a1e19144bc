#include <catch2/catch.hpp>

#include "engine/alerts.hpp"

using namespace balctl;

TEST_CASE("a member's outage alerts once at the threshold and once when it is back",
          "[alerts]") {
  alert_rules r("web");
  monitoring_presets p;
  p.emails = {"ops@example.com"};
  p.webhooks = {"http://127.0.0.1:9/hook"};
  r.set_presets(p);
  CHECK(r.on_state(7, "node7", member_state::healthy, member_state::suspect, 1).empty());
  auto down = r.on_state(7, "node7", member_state::suspect, member_state::down, 2);
  REQUIRE(down.size() == 1);
  CHECK(down[0].kind == "member_down");
  CHECK(down[0].key == "member_down/web/7");
  CHECK(down[0].emails == std::vector<std::string>{"ops@example.com"});
  CHECK(down[0].webhooks == std::vector<std::string>{"http://127.0.0.1:9/hook"});
  CHECK(down[0].subject.find("node7") != std::string::npos);
  // Still down after a brief recovering: no second alert.
  CHECK(r.on_state(7, "node7", member_state::down, member_state::recovering, 3).empty());
  CHECK(r.on_state(7, "node7", member_state::recovering, member_state::down, 4).empty());
  auto up = r.on_state(7, "node7", member_state::recovering, member_state::healthy, 5);
  REQUIRE(up.size() == 1);
  CHECK(up[0].kind == "member_up");

  SECTION("threshold suspect alerts earlier") {
    p.heartbeat_threshold = "suspect";
    r.set_presets(p);
    CHECK(r.on_state(8, "node8", member_state::healthy, member_state::suspect, 6).size() == 1);
  }
  SECTION("a member's own settings turn it off or add recipients") {
    member_alert_settings off;
    off.heartbeat_alerts = false;
    r.set_member(9, off);
    CHECK(r.on_state(9, "node9", member_state::suspect, member_state::down, 6).empty());
    member_alert_settings more;
    more.emails = {"night@example.com"};
    r.set_member(10, more);
    auto a = r.on_state(10, "node10", member_state::suspect, member_state::down, 6);
    REQUIRE(a.size() == 1);
    CHECK(a[0].emails == std::vector<std::string>{"ops@example.com", "night@example.com"});
  }
}

TEST_CASE("CPU and disk alert once past the threshold and again only after falling back",
          "[alerts]") {
  alert_rules r("web");
  monitoring_presets p;
  p.cpu_alerts = true;
  p.cpu_pct = 80;
  p.disk_pct = 90;
  r.set_presets(p);
  member_status s;
  s.cpu_pct = 85;
  s.disk_total_bytes = 100;
  s.disk_used_bytes = 50;
  auto a = r.on_status(1, "n1", s, 1);
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == "cpu");
  CHECK(r.on_status(1, "n1", s, 2).empty());
  s.cpu_pct = 77; // within the hysteresis: still alerted
  CHECK(r.on_status(1, "n1", s, 3).empty());
  s.cpu_pct = 85;
  CHECK(r.on_status(1, "n1", s, 4).empty());
  s.cpu_pct = 10;
  CHECK(r.on_status(1, "n1", s, 5).empty());
  s.cpu_pct = 95;
  CHECK(r.on_status(1, "n1", s, 6).size() == 1);
  s.cpu_pct = 10;
  s.disk_used_bytes = 95;
  auto d = r.on_status(1, "n1", s, 7);
  REQUIRE(d.size() == 1);
  CHECK(d[0].kind == "disk");
  CHECK(d[0].subject.find("95%") != std::string::npos);
}

TEST_CASE("a stack that disappears alerts, failover mail goes to its own recipients and sets "
          "the banner",
          "[alerts]") {
  alert_rules r("web");
  monitoring_presets p;
  p.emails = {"ops@example.com"};
  p.failover_emails = {"dr@example.com"};
  p.failover_banner_s = 600;
  r.set_presets(p);
  member_status s;
  s.cpanel.present = true;
  s.mariadb.present = true;
  CHECK(r.on_status(1, "n1", s, 1).empty());
  s.mariadb.present = false;
  auto gone = r.on_status(1, "n1", s, 2);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].kind == "service");
  CHECK(gone[0].key == "service/web/1/mariadb");

  CHECK(r.failover_banner_until_ms(1000) == 0);
  auto f = r.on_failover("failover from 1 to 2", 1000);
  REQUIRE(f.size() == 1);
  CHECK(f[0].emails == std::vector<std::string>{"dr@example.com"});
  CHECK(r.failover_banner_until_ms(2000) == 601000);
  CHECK(r.failover_banner_until_ms(601000) == 0);
  p.failover_email = false;
  r.set_presets(p);
  CHECK(r.on_account_cut("alice", "alice.example.com", 2, 5000).empty());
  CHECK(r.failover_banner_until_ms(5000) == 605000);
}

TEST_CASE("presets and member settings are read field by field with the field at fault",
          "[alerts]") {
  monitoring_presets p;
  CHECK_FALSE(read_presets_json(R"({"cpu_alerts":true,"cpu_pct":75,"emails":["a@b.c"]})", p));
  CHECK(p.cpu_alerts);
  CHECK(p.cpu_pct == 75);
  auto e = read_presets_json(R"({"cpu_pct":0})", p);
  REQUIRE(e);
  CHECK(e->field == "cpu_pct");
  CHECK(p.cpu_pct == 75); // untouched by a refused body
  e = read_presets_json(R"({"emails":["not-an-address"]})", p);
  REQUIRE(e);
  CHECK(e->field == "emails[0]");
  e = read_presets_json(R"({"webhooks":["ftp://x"]})", p);
  REQUIRE(e);
  CHECK(e->field == "webhooks[0]");
  e = read_presets_json(R"({"failover_banner_s":7201})", p);
  REQUIRE(e);
  CHECK(e->field == "failover_banner_s");
  e = read_presets_json(R"({"nope":1})", p);
  REQUIRE(e);
  CHECK(e->code == "unknown_field");
  e = read_presets_json(R"({"heartbeat_threshold":"late"})", p);
  REQUIRE(e);
  CHECK(e->field == "heartbeat_threshold");
  monitoring_presets back;
  CHECK_FALSE(read_presets_json(to_json_text(p), back));
  CHECK(to_json_text(back) == to_json_text(p));

  member_alert_settings s;
  CHECK_FALSE(read_member_alerts_json(R"({"cpu_pct":50,"heartbeat_alerts":false})", s));
  CHECK(s.cpu_pct == 50);
  CHECK(s.heartbeat_alerts == false);
  CHECK_FALSE(read_member_alerts_json(R"({"cpu_pct":null,"heartbeat_alerts":null})", s));
  CHECK_FALSE(s.cpu_pct);
  CHECK_FALSE(s.heartbeat_alerts);
  auto me = read_member_alerts_json(R"({"disk_pct":101})", s);
  REQUIRE(me);
  CHECK(me->field == "disk_pct");
}
