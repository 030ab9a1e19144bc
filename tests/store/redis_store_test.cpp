// What only the Redis store has: its URL (redis:// and rediss://), its start
// against a Redis that is not there or not trusted, the config's TLS files,
// the way it shares a database (key prefixes), and writes whose answer
// never came. Behaviour common to every store:
// tests/store/store_conformance_test.cpp.

#include <catch2/catch.hpp>

#include <future>
#include <memory>

#include "adapters/store/redis_store.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_certs.hpp"

using namespace balctl;

TEST_CASE("redis URLs: host, port, database, password or ACL user", "[store][redis]") {
  std::string error;
  auto o = parse_redis_url("redis://10.0.0.5:6380/3", &error);
  REQUIRE(o);
  CHECK(o->client.host == "10.0.0.5");
  CHECK(o->client.port == 6380);
  CHECK(o->client.db == 3);
  CHECK(o->client.user.empty());
  CHECK(o->client.password.empty());

  o = parse_redis_url("redis://localhost", &error);
  REQUIRE(o);
  CHECK(o->client.port == 6379);
  CHECK(o->client.db == 0);

  o = parse_redis_url("redis://balctl:s3cr%t@redis.internal:6379/1", &error);
  REQUIRE(o);
  CHECK(o->client.user == "balctl");
  CHECK(o->client.password == "s3cr%t");
  CHECK(o->client.host == "redis.internal");

  o = parse_redis_url("redis://:onlypass@127.0.0.1", &error);
  REQUIRE(o);
  CHECK(o->client.user.empty());
  CHECK(o->client.password == "onlypass");

  o = parse_redis_url("redis://[::1]:7000/2", &error);
  REQUIRE(o);
  CHECK(o->client.host == "::1");
  CHECK(o->client.port == 7000);
  CHECK(o->client.db == 2);
  CHECK_FALSE(o->client.tls);
}

TEST_CASE("rediss URLs are the same URLs over TLS, on the same default port",
          "[store][redis][tls]") {
  std::string error;
  auto o = parse_redis_url("rediss://balctl:pw@redis.internal/4", &error);
  REQUIRE(o);
  CHECK(o->client.tls);
  CHECK(o->client.host == "redis.internal");
  CHECK(o->client.port == 6379);
  CHECK(o->client.db == 4);
  CHECK(o->client.user == "balctl");
  CHECK(o->client.password == "pw");
  o = parse_redis_url("rediss://[::1]:6380", &error);
  REQUIRE(o);
  CHECK(o->client.tls);
  CHECK(o->client.host == "::1");
  CHECK(o->client.port == 6380);
  // Without the store_tls_* keys: the system trust store, no client certificate.
  CHECK(o->client.tls_ca_file.empty());
  CHECK(o->client.tls_cert_file.empty());

  engine_config cfg;
  cfg.store = "rediss://u:hunter2@[::1]:6380/1";
  CHECK(describe_store(cfg) == "rediss://[::1]:6380/1");
  cfg.store = "redis://u:hunter2@10.0.0.1";
  CHECK(describe_store(cfg) == "redis://10.0.0.1:6379/0");
}

TEST_CASE("a bad redis URL says which part is wrong and never repeats the password",
          "[store][redis]") {
  struct bad {
    const char* url;
    const char* says;
  };
  for (const auto& b : {bad{"http://x", "must start with redis:// or rediss://"},
                        bad{"rediss://u:hunter2@host:0", "port"},
                        bad{"rediss://u:hunter2@", "host"},
                        bad{"redis://u:hunter2@host:0", "port"},
                        bad{"redis://u:hunter2@host:99999", "port"},
                        bad{"redis://u:hunter2@host:6379/x", "database"},
                        bad{"redis://u:hunter2@:6379", "host"},
                        bad{"redis://[::1", "]"}}) {
    CAPTURE(b.url);
    std::string error;
    CHECK_FALSE(parse_redis_url(b.url, &error));
    CHECK_THAT(error, Catch::Contains(b.says));
    CHECK_THAT(error, !Catch::Contains("hunter2"));
  }
}

TEST_CASE("opening a Redis store when Redis is not there fails within the connect timeout",
          "[store][redis]") {
  test::closed_port closed; // nothing answers there
  int port = closed.port();
  redis_store_options o;
  o.client.port = port;
  o.client.password = "hunter2";
  o.client.connect_timeout_ms = 300;
  try {
    open_redis_store(o);
    FAIL("open_redis_store did not throw");
  } catch (const store_error& e) {
    std::string msg = e.what();
    CAPTURE(msg);
    CHECK_THAT(msg, Catch::StartsWith("redis: 127.0.0.1:" + std::to_string(port)));
    CHECK_THAT(msg, !Catch::Contains("hunter2"));
  }
}

TEST_CASE("two stores with their own prefixes share a database without seeing each other",
          "[store][redis]") {
  test::redis_server server;
  redis_store_options a, b;
  a.client.port = b.client.port = server.port();
  a.prefix = "balctl:a:";
  b.prefix = "balctl:b:";
  auto sa = open_redis_store(a);
  auto sb = open_redis_store(b);
  pool_config p;
  p.name = "web";
  sa->put_pool(p);
  sa->set_active_member("web", 4);
  CHECK(sa->load_pools().size() == 1);
  CHECK(sb->load_pools().empty());
  CHECK_FALSE(sb->active_member("web"));
  CHECK(server.cli("EXISTS balctl:a:pool:web") == "1");
  CHECK(server.cli("EXISTS balctl:b:pool:web") == "0");
}

namespace {

// Stalls the Redis server (one script spinning for stall_ms) and returns
// once it is stalled: a PING from a third connection no longer answers.
void stall_redis(redis::client& blocker, redis::client& prober, int stall_ms) {
  const std::string spin = R"lua(
local s = redis.call('TIME')
while true do
  local t = redis.call('TIME')
  if (t[1] - s[1]) * 1000000 + (t[2] - s[2]) > tonumber(ARGV[1]) * 1000 then return 1 end
end
)lua";
  blocker.command({"EVAL", spin, "0", std::to_string(stall_ms)}, [](redis::result) {});
  for (int i = 0; i < 100; ++i) {
    auto answered = std::make_shared<std::promise<void>>();
    auto f = answered->get_future();
    prober.command({"PING"}, [answered](redis::result) { answered->set_value(); });
    if (f.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout) {
      return; // the script runs: Redis answers nobody until it ends
    }
  }
  FAIL("Redis never stalled");
}

} // namespace

TEST_CASE("a decision or journal write whose answer never came is written once when tried again",
          "[store][redis]") {
  test::redis_server r;
  redis_store_options o;
  o.client.port = r.port();
  o.client.command_timeout_ms = 200;
  o.client.reconnect_min_ms = 10;
  o.client.reconnect_max_ms = 50;
  o.prefix = "once:";
  auto slow = o.client;
  slow.command_timeout_ms = 5000;
  redis::client blocker(slow), prober(slow);
  REQUIRE(blocker.start().empty());
  REQUIRE(prober.start().empty());
  REQUIRE(test::wait_until([&] { return blocker.ready() && prober.ready(); }, 5000));
  const char* stall_on = nullptr; // the operation whose transaction is held up
  o.before_write = [&](const char* op) {
    if (stall_on != nullptr && std::string(op) == stall_on) {
      stall_on = nullptr;
      // Sent after the script: Redis applies it when the script ends,
      // long after this store gave up waiting for the answer.
      stall_redis(blocker, prober, 800);
    }
  };
  auto st = open_redis_store(o);
  pool_config p;
  p.name = "web";
  st->put_pool(p);

  pool_decision d{decision_kind::failover, "web", 1, 2, "active member 1 is down", 1000};
  stall_on = "record_decision";
  CHECK_THROWS_AS(st->record_decision(d), store_unavailable);
  REQUIRE(test::wait_until([&] { return st->available(); }, 5000));
  // The owed write, made again (as the store actor replays it).
  auto id = st->record_decision(d);
  auto ds = st->decisions("web", 10);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].id == id);
  CHECK(st->pending_decisions().size() == 1);

  dns_change_record c;
  c.decision = id;
  c.pool = "web";
  c.provider = "cf";
  c.zone = "example.test";
  c.name = "www.example.test";
  c.type = "A";
  c.content = "192.0.2.2";
  stall_on = "journal_dns_changes";
  CHECK_THROWS_AS(st->journal_dns_changes({c}), store_unavailable);
  REQUIRE(test::wait_until([&] { return st->available(); }, 5000));
  auto ids = st->journal_dns_changes({c});
  REQUIRE(ids.size() == 1);
  auto cs = st->dns_changes("web", 10);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].id == ids[0]);
  CHECK(st->pending_dns_changes().size() == 1);

  // A new decision after them takes a new id.
  auto next = st->record_decision({decision_kind::failover, "web", 2, 1, "back", 2000});
  CHECK(next > id);
  CHECK(st->decisions("web", 10).size() == 2);
}

TEST_CASE("a Redis store over TLS round trips, with the config's CA and client certificate",
          "[store][redis][tls]") {
  test::temp_dir dir("balctl-redis-store-tls");
  auto pki = test::make_test_pki(dir.file(""));
  REQUIRE(pki.error.empty());
  // The server requires a client certificate: the config's is presented.
  test::redis_server server(test::tls_server_options(pki, true));
  engine_config cfg;
  cfg.store = "rediss://localhost:" + std::to_string(server.port()) + "/2";
  cfg.store_tls_ca_file = pki.ca_cert;
  cfg.store_tls_cert_file = pki.client_cert;
  cfg.store_tls_key_file = pki.client_key;
  cfg.store_prefix = "balctl:tls:";
  auto o = redis_options_for(cfg);
  CHECK(o.client.tls);
  CHECK(o.client.tls_ca_file == pki.ca_cert);
  auto st = open_redis_store(o);
  pool_config p;
  p.name = "web";
  st->put_pool(p);
  st->set_active_member("web", 4);
  REQUIRE(st->load_pools().size() == 1);
  CHECK(st->active_member("web") == 4);
  CHECK(server.cli("-n 2 EXISTS balctl:tls:pool:web") == "1");
  CHECK(describe_store(cfg) == "rediss://localhost:" + std::to_string(server.port()) + "/2");
}

TEST_CASE("opening a Redis store over TLS fails at start when the server's certificate is not "
          "trusted, saying so",
          "[store][redis][tls]") {
  test::temp_dir dir("balctl-redis-store-tls");
  auto pki = test::make_test_pki(dir.file(""));
  REQUIRE(pki.error.empty());
  auto so = test::tls_server_options(pki);
  so.tls_cert_file = pki.self_signed_cert;
  so.tls_key_file = pki.self_signed_key;
  test::redis_server server(so);
  redis_store_options o;
  o.client.tls = true;
  o.client.tls_ca_file = pki.ca_cert;
  o.client.port = server.port();
  o.client.password = "hunter2";
  o.client.connect_timeout_ms = 500;
  try {
    open_redis_store(o);
    FAIL("open_redis_store did not throw");
  } catch (const store_error& e) {
    std::string msg = e.what();
    CAPTURE(msg);
    CHECK_THAT(msg, Catch::StartsWith("redis: 127.0.0.1:" + std::to_string(server.port()) +
                                      ": tls: certificate verify failed: self-signed certificate"));
    CHECK_THAT(msg, !Catch::Contains("hunter2"));
  }
}

TEST_CASE("opening a Redis store with a TLS file it cannot read fails at once, naming the file",
          "[store][redis][tls]") {
  test::temp_dir dir("balctl-redis-store-tls");
  redis_store_options o;
  o.client.tls = true;
  o.client.tls_ca_file = dir.file("missing-ca.pem");
  try {
    open_redis_store(o);
    FAIL("open_redis_store did not throw");
  } catch (const store_error& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("redis: tls: CA file " + dir.file("missing-ca.pem")));
  }
}
