// What only the Redis store has: its URL, its start against a Redis that is
// not there, and the way it shares a database (key prefixes). Behaviour
// common to every store: tests/store/store_conformance_test.cpp.

#include <catch2/catch.hpp>

#include "adapters/store/redis_store.hpp"
#include "tests/support/redis_server.hpp"

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
}

TEST_CASE("a bad redis URL says which part is wrong and never repeats the password",
          "[store][redis]") {
  struct bad {
    const char* url;
    const char* says;
  };
  for (const auto& b : {bad{"http://x", "redis://"},
                        bad{"rediss://u:pw@host", "TLS"},
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
