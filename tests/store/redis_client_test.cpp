// The Redis connection (hiredis async on a libuv loop) against a real
// redis-server on a loopback port: commands and replies, pipelining from
// several threads, a Redis that restarts, one that is not there at start,
// one that stops answering, and credentials (a password, an ACL user).

#include <catch2/catch.hpp>

#include <future>
#include <thread>

#include "adapters/store/redis_client.hpp"
#include "tests/support/redis_server.hpp"

using namespace balctl;
using namespace balctl::test;

namespace {

redis::client_options options_for(const redis_server& s) {
  redis::client_options o;
  o.port = s.port();
  o.connect_timeout_ms = 1000;
  o.command_timeout_ms = 1000;
  o.reconnect_min_ms = 20;
  o.reconnect_max_ms = 200;
  return o;
}

// Runs one command and waits for its answer (tests only).
redis::result run(redis::client& c, std::vector<std::string> argv) {
  std::promise<redis::result> p;
  auto f = p.get_future();
  c.command(std::move(argv), [&p](redis::result r) { p.set_value(std::move(r)); });
  return f.get();
}

} // namespace

TEST_CASE("redis: commands are answered with Redis's replies, errors included",
          "[redis][store]") {
  redis_server s;
  redis::client c(options_for(s));
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));

  const std::string binary("v\r\n\0binary", 10); // CRLF and NUL inside: length-prefixed
  auto set = run(c, {"SET", "k", binary});
  REQUIRE(set.ok());
  CHECK(set.value.k == redis::reply::kind::status);
  CHECK(set.value.str == "OK");
  auto get = run(c, {"GET", "k"});
  REQUIRE(get.ok());
  CHECK(get.value.k == redis::reply::kind::string);
  CHECK(get.value.str == binary);
  CHECK(run(c, {"GET", "missing"}).value.k == redis::reply::kind::nil);
  auto n = run(c, {"INCRBY", "counter", "41"});
  CHECK(n.value.k == redis::reply::kind::integer);
  CHECK(n.value.integer == 41);
  REQUIRE(run(c, {"RPUSH", "list", "a", "b"}).ok());
  auto list = run(c, {"LRANGE", "list", "0", "-1"});
  REQUIRE(list.value.k == redis::reply::kind::array);
  REQUIRE(list.value.elements.size() == 2);
  CHECK(list.value.elements[1].str == "b");
  // An error reply is Redis's answer, not a transport error.
  auto bad = run(c, {"INCR", "k"});
  CHECK(bad.transport_error.empty());
  CHECK(bad.value.k == redis::reply::kind::error);
  CHECK_THAT(bad.value.str, Catch::Contains("not an integer"));
  CHECK_FALSE(bad.ok());
  CHECK(s.cli("GET counter") == "41");
}

TEST_CASE("redis: thousands of commands from several threads are each answered once, in order per "
          "thread",
          "[redis][store]") {
  redis_server s;
  redis::client c(options_for(s));
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  constexpr int threads = 4;
  constexpr int per_thread = 5000;
  std::vector<std::thread> ts;
  std::vector<std::vector<std::int64_t>> seen(threads);
  std::vector<std::promise<void>> finished(threads);
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      auto left = std::make_shared<std::atomic<int>>(per_thread);
      for (int i = 0; i < per_thread; ++i) {
        c.command({"INCR", "t" + std::to_string(t)}, [&, t, left](redis::result r) {
          seen[t].push_back(r.ok() ? r.value.integer : -1);
          if (left->fetch_sub(1) == 1) {
            finished[t].set_value();
          }
        });
      }
    });
  }
  for (auto& t : ts) {
    t.join();
  }
  for (auto& f : finished) {
    REQUIRE(f.get_future().wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  }
  for (int t = 0; t < threads; ++t) {
    REQUIRE(seen[t].size() == static_cast<std::size_t>(per_thread));
    for (int i = 0; i < per_thread; ++i) {
      CHECK(seen[t][i] == i + 1);
    }
  }
  CHECK(c.counters().commands.load() == threads * per_thread);
  CHECK(c.counters().transport_errors.load() == 0);
}

TEST_CASE("redis: a restart in the middle of traffic fails what was in flight, then reconnects",
          "[redis][store]") {
  redis_server s;
  redis::client c(options_for(s));
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  REQUIRE(run(c, {"SET", "before", "1"}).ok());
  s.stop();
  REQUIRE(wait_until([&] { return !c.ready(); }, 5000));
  auto down = run(c, {"GET", "before"});
  CHECK(down.transport_error == "not connected");
  CHECK_FALSE(c.last_error().empty());
  s.start();
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  // No persistence configured: the restarted Redis is empty.
  auto after = run(c, {"GET", "before"});
  REQUIRE(after.transport_error.empty());
  CHECK(after.value.k == redis::reply::kind::nil);
  CHECK(c.counters().connects.load() == 2);
  CHECK(c.counters().disconnects.load() == 1);
}

TEST_CASE("redis: a Redis that is not there at start is retried until it is", "[redis][store]") {
  redis_server s;
  s.stop();
  redis::client c(options_for(s));
  REQUIRE(c.start().empty());
  // Not ready, saying why, and commands are refused at once.
  REQUIRE(wait_until([&] { return !c.last_error().empty(); }, 5000));
  CHECK_FALSE(c.ready());
  CHECK_THAT(c.last_error(), Catch::Contains("connect"));
  CHECK(run(c, {"PING"}).transport_error == "not connected");
  s.start();
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  CHECK(run(c, {"PING"}).value.str == "PONG");
}

TEST_CASE("redis: a command past its timeout drops the connection, and it comes back",
          "[redis][store]") {
  redis_server s;
  auto o = options_for(s);
  o.command_timeout_ms = 200;
  redis::client c(o);
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  // Redis is there but does not answer (SIGSTOP).
  s.pause(true);
  auto r = run(c, {"PING"});
  s.pause(false);
  CHECK(r.transport_error == "timeout after 200 ms");
  CHECK(c.counters().timeouts.load() == 1);
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  CHECK(run(c, {"PING"}).value.str == "PONG");
}

TEST_CASE("redis: a password or an ACL user authenticates, a wrong one is refused by reason, "
          "never shown",
          "[redis][store]") {
  redis_server_options so;
  so.password = "s3cret-default";
  so.acl_user = "balctl";
  so.acl_password = "s3cret-acl";
  redis_server s(so);

  SECTION("the default user's password") {
    auto o = options_for(s);
    o.password = "s3cret-default";
    o.db = 3;
    redis::client c(o);
    REQUIRE(c.start().empty());
    REQUIRE(wait_until([&] { return c.ready(); }, 5000));
    REQUIRE(run(c, {"SET", "in-db-3", "yes"}).ok());
    CHECK(s.cli("-n 3 GET in-db-3") == "yes");
    CHECK(s.cli("GET in-db-3").empty());
  }
  SECTION("an ACL user") {
    auto o = options_for(s);
    o.user = "balctl";
    o.password = "s3cret-acl";
    redis::client c(o);
    REQUIRE(c.start().empty());
    REQUIRE(wait_until([&] { return c.ready(); }, 5000));
    CHECK(run(c, {"ACL", "WHOAMI"}).value.str == "balctl");
  }
  SECTION("a wrong password") {
    auto o = options_for(s);
    o.user = "balctl";
    o.password = "wrong-s3cret";
    redis::client c(o);
    REQUIRE(c.start().empty());
    REQUIRE(wait_until([&] { return !c.last_error().empty(); }, 5000));
    CHECK_FALSE(c.ready());
    CHECK_THAT(c.last_error(), Catch::Contains("WRONGPASS"));
    CHECK(c.last_error().find("wrong-s3cret") == std::string::npos);
  }
  SECTION("no password at all") {
    redis::client c(options_for(s));
    REQUIRE(c.start().empty());
    // The handshake's PING is refused: never ready, and it says why.
    REQUIRE(wait_until([&] { return !c.last_error().empty(); }, 5000));
    CHECK_FALSE(c.ready());
    CHECK_THAT(c.last_error(), Catch::Contains("NOAUTH"));
  }
}

TEST_CASE("redis: stop answers what is queued or in flight, and later commands, with stopped",
          "[redis][store]") {
  redis_server s;
  redis::client c(options_for(s));
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  s.pause(true);
  std::promise<redis::result> p;
  c.command({"PING"}, [&p](redis::result r) { p.set_value(std::move(r)); });
  c.stop();
  s.pause(false);
  auto f = p.get_future();
  REQUIRE(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  auto r = f.get();
  CHECK((r.transport_error == "stopped" || r.transport_error == "not connected"));
  CHECK(run(c, {"PING"}).transport_error == "stopped");
  CHECK_FALSE(c.ready());
}
