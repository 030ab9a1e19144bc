// End to end: a real balctld moves a pool's failover record at a real DNS
// server (Knot, RFC 2136 with TSIG) when the active member goes silent,
// and a restart neither moves it back nor writes it again.

#include <catch2/catch.hpp>

#include "tests/e2e/balctld_node.hpp"
#include "tests/support/knot_server.hpp"

using namespace balctl::test;

namespace {

void configure(node& n, const knot_server& ns) {
  n.config_extra["dns_providers"] = {{{"id", "ns1"},
                                      {"type", "rfc2136"},
                                      {"server", ns.server()},
                                      {"tsig_name", ns.key_name()},
                                      {"secret", ns.secret()},
                                      {"timeout_ms", 2000}}};
  json members = json::array();
  for (int id : {1, 2}) {
    members.push_back({{"id", id},
                       {"hostname", "node" + std::to_string(id) + ".example.test"},
                       {"key", key_hex(id)},
                       {"allowed_ips", {"127.0.0.1"}},
                       {"public_ipv4", "192.0.2." + std::to_string(id)}});
  }
  n.config_extra["pools"] = {{{"name", "web"},
                              {"failover_delay_s", 10},
                              {"failover_hostname", "www.example.test"},
                              {"dns_provider", "ns1"},
                              {"dns_ttl_s", 30},
                              {"members", members}}};
}

} // namespace

TEST_CASE("a silent active member moves the failover record at a real DNS server once",
          "[e2e][dns]") {
  knot_server ns;
  REQUIRE(ns.dig("www.example.test", "A") == std::vector<std::string>{"192.0.2.10"});
  auto serial_before = ns.serial();
  node n;
  configure(n, ns);
  n.start();
  // Member 1 (the primary, so the active member) beats for 3 s, member 2 on.
  auto m1 = n.beat(1, "node1.example.test", key_hex(1), 3, "m1");
  auto m2 = n.beat(2, "node2.example.test", key_hex(2), 40, "m2");
  // Down after 10 s of silence; then the decision, the journal, the update.
  REQUIRE(wait_until([&] {
    return ns.dig("www.example.test", "A") == std::vector<std::string>{"192.0.2.2"};
  }, 30'000));
  CHECK(ns.serial() == serial_before + 1);
  REQUIRE(wait_until([&] { return n.log().find("result=written") != std::string::npos; }, 5000));
  auto log = n.log();
  CHECK(log.find("event=pool_decision pool=web kind=failover from=1 to=2") != std::string::npos);
  CHECK(log.find(ns.secret()) == std::string::npos);
  CHECK(n.metric("balctl_dns_changes_total{result=\"written\"}") == 1);
  auto activity = n.get("/v1/pools/web/activity");
  REQUIRE(activity.status == 200);
  CHECK(activity.raw.find("www.example.test A 192.0.2.2") != std::string::npos);

  // A restart: the pool checks its record (one read) and writes nothing.
  n.stop();
  n.start();
  REQUIRE(wait_until([&] { return n.log().find("result=\"in place\"") != std::string::npos; },
                     10'000));
  CHECK(ns.serial() == serial_before + 1);
  CHECK(ns.dig("www.example.test", "A") == std::vector<std::string>{"192.0.2.2"});
  n.stop();
}

TEST_CASE("a DNS server refusing the key is retried and alerted while nothing else is blocked",
          "[e2e][dns]") {
  knot_server ns;
  node n;
  configure(n, ns);
  // The key's secret is wrong: every update is refused (BADSIG).
  n.config_extra["dns_providers"][0]["secret"] = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==";
  n.start();
  auto m1 = n.beat(1, "node1.example.test", key_hex(1), 3, "m1");
  auto m2 = n.beat(2, "node2.example.test", key_hex(2), 40, "m2");
  REQUIRE(wait_until([&] {
    auto a = n.get("/v1/pools/web/activity");
    return a.raw.find("dns_alert") != std::string::npos;
  }, 30'000));
  auto a = n.get("/v1/pools/web/activity");
  CHECK(a.raw.find("auth") != std::string::npos);
  CHECK(ns.dig("www.example.test", "A") == std::vector<std::string>{"192.0.2.10"});
  // The engine goes on answering and deciding.
  CHECK(n.get("/v1/pools/web").body["active_member"] == 2);
  CHECK(n.metric("balctl_dns_retries_total") >= 1);
  n.stop();
}

TEST_CASE("an engine killed in the middle of a cut-over finishes it after restart exactly once",
          "[e2e][dns]") {
  knot_server ns;
  auto serial_before = ns.serial();
  node n;
  configure(n, ns);
  n.start();
  auto m1 = n.beat(1, "node1.example.test", key_hex(1), 3, "m1");
  auto m2 = n.beat(2, "node2.example.test", key_hex(2), 60, "m2");
  // The DNS server stops answering: the change is journaled and in flight.
  ns.pause(true);
  REQUIRE(wait_until([&] {
    return n.log().find("event=pool_decision pool=web kind=failover from=1 to=2") !=
           std::string::npos;
  }, 30'000));
  REQUIRE(wait_until([&] { return n.metric("balctl_dns_requests_total") >= 1; }, 5000));
  REQUIRE(::kill(n.daemon->pid(), SIGKILL) == 0);
  n.daemon->stop(5000);
  ns.pause(false);
  CHECK(ns.dig("www.example.test", "A") == std::vector<std::string>{"192.0.2.10"});
  n.start();
  REQUIRE(wait_until([&] {
    return ns.dig("www.example.test", "A") == std::vector<std::string>{"192.0.2.2"};
  }, 20'000));
  REQUIRE(wait_until([&] { return n.log().find("event=dns_change_resumed") != std::string::npos; },
                     5000));
  // Both the resumed journal entry and the restarted pool's own check ran;
  // one update reached the server.
  REQUIRE(wait_until([&] {
    return n.metric("balctl_dns_changes_total{result=\"written\"}") +
             n.metric("balctl_dns_changes_total{result=\"in_place\"}") +
             n.metric("balctl_dns_changes_total{result=\"superseded\"}") >= 2;
  }, 10'000));
  CHECK(ns.serial() == serial_before + 1);
  CHECK(n.metric("balctl_dns_changes_total{result=\"written\"}") == 1);
  n.stop();
}
