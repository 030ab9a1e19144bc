// What only the Redis store has: its URL (redis:// and rediss://), its start
// against a Redis that is not there or not trusted, the config's TLS files,
// and the way it shares a database (key prefixes). Behaviour common to
// every store: tests/store/store_conformance_test.cpp.

#include <catch2/catch.hpp>

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
