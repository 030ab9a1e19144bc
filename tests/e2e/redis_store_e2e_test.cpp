// balctld on the Redis store (config "store": "redis://..." or
// "rediss://..."), against a real redis-server on a loopback port: what the
// admin API creates survives a restart of the engine, a Redis that is not
// there (or not trusted) at start is a clear error, and TLS with a client
// certificate works end to end.

#include <catch2/catch.hpp>

#include "tests/e2e/balctld_node.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/test_certs.hpp"

using namespace balctl;
using namespace balctl::test;

TEST_CASE("balctld keeps API pools and members in Redis across a restart", "[e2e][redis]") {
  redis_server redis;
  node n;
  n.config_extra = {{"store", "redis://127.0.0.1:" + std::to_string(redis.port()) + "/0"},
                    {"store_prefix", "e2e:"}};
  n.start();
  auto pool = n.make_pool("Web Farm");
  auto m = n.add_member(pool, "web1.e2e.test");
  auto member = m["member"]["id"].get<member_id>();
  CHECK_THAT(n.log(), Catch::Contains("store=redis://127.0.0.1:" + std::to_string(redis.port())));
  // The pool row is in Redis, under the configured prefix.
  CHECK(redis.cli("EXISTS e2e:pool:" + pool) == "1");
  CHECK(redis.cli("SISMEMBER e2e:pools example") == "1"); // the config's pool too
  n.stop();

  n.start();
  auto r = n.get("/v1/pools/" + pool);
  REQUIRE(r.status == 200);
  CHECK(r.body["name"] == "Web Farm");
  auto members = n.get("/v1/pools/" + pool + "/members");
  REQUIRE(members.status == 200);
  REQUIRE(members.body["members"].size() == 1);
  CHECK(members.body["members"][0]["id"].get<member_id>() == member);
  // Ids continue after the restart: the next member gets a new one.
  auto m2 = n.add_member(pool, "web2.e2e.test");
  CHECK(m2["member"]["id"].get<member_id>() > member);
  n.stop();
}

TEST_CASE("balctld exits 1 when its Redis is not there, naming the store but not the password",
          "[e2e][redis]") {
  closed_port closed; // nothing answers there
  int port = closed.port();
  node n;
  n.config_extra = {{"store", "redis://balctl:hunter2@127.0.0.1:" + std::to_string(port) + "/0"},
                    {"store_timeout_ms", 300}};
  n.write_config();
  process p({BALCTLD_PATH, "--config", n.dir.file("balctld.json")}, n.dir.file("balctld.out"),
            n.dir.file("balctld.log"));
  REQUIRE(p.started());
  CHECK(p.wait_exit(10'000) == 1);
  auto log = n.log();
  CAPTURE(log);
  CHECK_THAT(log, Catch::Contains("event=store_open_failed"));
  CHECK_THAT(log, Catch::Contains("store=redis://127.0.0.1:" + std::to_string(port) + "/0"));
  CHECK_THAT(log, !Catch::Contains("hunter2"));
}

TEST_CASE("balctld with its Redis stopped keeps detecting and failing over, says degraded, and "
          "writes what it owes when Redis answers again",
          "[e2e][redis]") {
  redis_server redis;
  node n;
  n.config_extra = {{"store", "redis://127.0.0.1:" + std::to_string(redis.port()) + "/0"},
                    {"store_prefix", "e2e:"},
                    {"store_timeout_ms", 300},
                    {"snapshot_interval_s", 1}};
  n.start();
  auto beat2 = n.beat(2, "cfg2.e2e.test", key_hex(2), 40, "m2");
  auto beat1 = n.beat(1, "cfg1.e2e.test", key_hex(1), 40, "m1");
  REQUIRE(wait_until([&] {
    auto l = n.log();
    return l.find("member=1 from=pending to=healthy") != std::string::npos &&
           l.find("member=2 from=pending to=healthy") != std::string::npos;
  }, 10'000));
  CHECK(n.get("/readyz").body["status"] == "ready");

  redis.pause(true); // there, not answering
  // The next checkpoint times out: degraded, still serving.
  REQUIRE(wait_until([&] { return n.get("/readyz").body["status"] == "degraded"; }, 10'000));
  auto ready = n.get("/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.body["degraded"] == json::array({"store"}));
  CHECK(n.metric("balctl_store_degraded") == 1);

  // Member 1 (active) goes silent: the failover happens with Redis stopped.
  beat1->stop();
  REQUIRE(wait_until([&] { return n.log().find("event=pool_decision pool=example kind=failover") !=
                                  std::string::npos; },
                     15'000));
  CHECK(n.metric("balctl_store_owed") > 0);

  redis.pause(false);
  REQUIRE(wait_until([&] { return n.get("/readyz").body["status"] == "ready"; }, 10'000));
  CHECK(n.metric("balctl_store_degraded") == 0);
  CHECK(n.metric("balctl_store_owed") == 0);
  // What it owed is in Redis: the decision (with its id mapped), the new
  // active member, the members' states.
  // Exactly one failover row (the owed write made once), carried out.
  auto rows = redis.cli("HVALS e2e:decisions");
  CAPTURE(rows);
  std::size_t failovers = 0;
  for (auto at = rows.find("\"kind\":\"failover\""); at != std::string::npos;
       at = rows.find("\"kind\":\"failover\"", at + 1)) {
    ++failovers;
  }
  CHECK(failovers == 1);
  CHECK(redis.cli("ZCARD e2e:decisions:pending") == "0");
  CHECK(redis.cli("HGET e2e:active example") == "2");
  CHECK_THAT(redis.cli("HGET e2e:states 1"), Catch::Contains("\"state\":\"down\""));
  CHECK_THAT(n.log(), Catch::Contains("event=store_recovered"));
  beat2->stop();
  n.stop();
}

TEST_CASE("balctld keeps its data in Redis over TLS (rediss://) with the config's CA and client "
          "certificate",
          "[e2e][redis][tls]") {
  temp_dir certs("balctl-e2e-redis-tls");
  auto pki = make_test_pki(certs.file(""));
  REQUIRE(pki.error.empty());
  // Redis's default: a client certificate is required.
  redis_server redis(tls_server_options(pki, true));
  node n;
  n.config_extra = {{"store", "rediss://localhost:" + std::to_string(redis.port()) + "/0"},
                    {"store_tls_ca_file", pki.ca_cert},
                    {"store_tls_cert_file", pki.client_cert},
                    {"store_tls_key_file", pki.client_key},
                    {"store_prefix", "e2e:"}};
  n.start();
  auto pool = n.make_pool("Web Farm");
  CHECK_THAT(n.log(), Catch::Contains("store=rediss://localhost:" + std::to_string(redis.port())));
  CHECK_THAT(n.log(), Catch::Contains("event=redis_connected") && Catch::Contains("tls=yes"));
  CHECK(redis.cli("EXISTS e2e:pool:" + pool) == "1");
  n.stop();
}

TEST_CASE("balctld exits 1 when its Redis's certificate is not trusted, saying so",
          "[e2e][redis][tls]") {
  temp_dir certs("balctl-e2e-redis-tls");
  auto pki = make_test_pki(certs.file(""));
  REQUIRE(pki.error.empty());
  auto so = tls_server_options(pki);
  so.tls_cert_file = pki.self_signed_cert;
  so.tls_key_file = pki.self_signed_key;
  redis_server redis(so);
  node n;
  n.config_extra = {{"store", "rediss://balctl:hunter2@127.0.0.1:" +
                                std::to_string(redis.port()) + "/0"},
                    {"store_tls_ca_file", pki.ca_cert},
                    {"store_timeout_ms", 500}};
  n.write_config();
  process p({BALCTLD_PATH, "--config", n.dir.file("balctld.json")}, n.dir.file("balctld.out"),
            n.dir.file("balctld.log"));
  REQUIRE(p.started());
  CHECK(p.wait_exit(10'000) == 1);
  auto log = n.log();
  CAPTURE(log);
  CHECK_THAT(log, Catch::Contains("event=store_open_failed"));
  CHECK_THAT(log, Catch::Contains("store=rediss://127.0.0.1:" + std::to_string(redis.port())));
  CHECK_THAT(log, Catch::Contains("certificate verify failed: self-signed certificate"));
  CHECK_THAT(log, !Catch::Contains("hunter2"));
}
