// The Redis connection (its own libuv socket, hiredis's protocol) against a
// real redis-server on a loopback port: commands and replies, pipelining
// from several threads, a Redis that restarts, one that is not there at
// start, one that stops answering, credentials (a password, an ACL user),
// host names and IPv6, and TLS (rediss://): the server's certificate
// checked, a client certificate, a wrong port either way.

#include <catch2/catch.hpp>

#include <chrono>
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

// A CA, a server and a client certificate from it, and a self-signed one.
struct tls_fixture {
  temp_dir dir{"balctl-redis-tls"};
  test_pki pki = make_test_pki(dir.file(""));
  tls_fixture() { REQUIRE(pki.error.empty()); }

  /// A TLS client of s that trusts the test CA.
  redis::client_options client_options(const redis_server& s) const {
    auto o = options_for(s);
    o.tls = true;
    o.tls_ca_file = pki.ca_cert;
    return o;
  }
};

// Whether this host has an IPv6 loopback (a container may not).
bool ipv6_loopback() {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
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

// -- addresses --------------------------------------------------------------------

TEST_CASE("redis: a host name, an IPv4 and an IPv6 address all reach the server",
          "[redis][store]") {
  redis_server s;
  auto o = options_for(s);
  SECTION("a host name, resolved off the loop thread") { o.host = "localhost"; }
  SECTION("an IPv4 address") { o.host = "127.0.0.1"; }
  SECTION("an IPv6 address") {
    if (!ipv6_loopback()) {
      WARN("no IPv6 loopback on this host: nothing to test");
      return;
    }
    o.host = "::1";
  }
  CAPTURE(o.host);
  redis::client c(o);
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  CHECK(run(c, {"PING"}).value.str == "PONG");
}

TEST_CASE("redis: a host name that does not resolve is a connect failure that says so",
          "[redis][store]") {
  redis::client_options o;
  o.host = "no-such-host.invalid"; // RFC 6761: never resolves
  o.connect_timeout_ms = 3000;
  o.reconnect_min_ms = 20;
  redis::client c(o);
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return !c.last_error().empty(); }, 5000));
  CHECK_THAT(c.last_error(), Catch::StartsWith("connect: "));
  CHECK_THAT(c.last_error(), Catch::Contains("no-such-host.invalid"));
  CHECK_FALSE(c.ready());
}

// -- TLS (rediss://) ----------------------------------------------------------------

TEST_CASE("redis over TLS: commands are answered, large values and pipelines included",
          "[redis][store][tls]") {
  tls_fixture f;
  redis_server s(tls_server_options(f.pki));
  auto o = f.client_options(s);
  SECTION("by IP address: the certificate's IP SAN") { o.host = "127.0.0.1"; }
  SECTION("by host name: SNI and the DNS SAN") { o.host = "localhost"; }
  SECTION("by IPv6 address") {
    if (!ipv6_loopback()) {
      WARN("no IPv6 loopback on this host: nothing to test");
      return;
    }
    o.host = "::1";
  }
  CAPTURE(o.host);
  redis::client c(o);
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  CHECK(c.last_error().empty());

  const std::string binary("v\r\n\0binary", 10);
  REQUIRE(run(c, {"SET", "k", binary}).ok());
  CHECK(run(c, {"GET", "k"}).value.str == binary);
  // Larger than a TLS record (16 KiB) and than one socket read (64 KiB).
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4096) {
    big[i] = static_cast<char>('a' + (i / 4096) % 26);
  }
  REQUIRE(run(c, {"SET", "big", big}).ok());
  auto got = run(c, {"GET", "big"});
  REQUIRE(got.ok());
  CHECK(got.value.str == big);
  // A pipeline: every command answered once, in order.
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < 2000; ++i) {
    cmds.push_back({"INCR", "n"});
  }
  auto rs = redis::run_sync(c, cmds);
  REQUIRE(rs.size() == 2000);
  for (int i = 0; i < 2000; ++i) {
    CHECK(rs[i].value.integer == i + 1);
  }
  CHECK(s.cli("GET n") == "2000");
  CHECK(c.counters().transport_errors.load() == 0);
  CHECK(c.counters().connects.load() == 1);
}

TEST_CASE("redis over TLS: a server certificate the client does not trust is refused, never "
          "ready",
          "[redis][store][tls]") {
  tls_fixture f;
  auto so = tls_server_options(f.pki);
  std::string says = "certificate verify failed";
  auto o = [&] {
    redis::client_options x;
    x.tls = true;
    x.tls_ca_file = f.pki.ca_cert;
    x.connect_timeout_ms = 1000;
    x.command_timeout_ms = 1000;
    x.reconnect_min_ms = 20;
    x.reconnect_max_ms = 100;
    return x;
  }();
  SECTION("a self-signed certificate") {
    so.tls_cert_file = f.pki.self_signed_cert;
    so.tls_key_file = f.pki.self_signed_key;
    says += ": self-signed certificate";
  }
  SECTION("a CA the client does not trust (the system trust store)") {
    o.tls_ca_file.clear();
  }
  SECTION("a certificate for another name") {
    o.tls_server_name = "redis.example.test";
    says += ": hostname mismatch";
  }
  redis_server s(so);
  o.port = s.port();
  redis::client c(o);
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return !c.last_error().empty(); }, 5000));
  CHECK_THAT(c.last_error(), Catch::StartsWith("tls: " + says));
  CHECK(run(c, {"PING"}).transport_error == "not connected");
  // It goes on retrying (back-off) and is refused each time.
  CHECK_FALSE(wait_until([&] { return c.ready(); }, 500));
  CHECK_THAT(c.last_error(), Catch::StartsWith("tls: " + says));
  CHECK(c.counters().connects.load() == 0);
}

TEST_CASE("redis over TLS: a server that requires a client certificate takes ours and refuses "
          "a client without one",
          "[redis][store][tls]") {
  tls_fixture f;
  redis_server s(tls_server_options(f.pki, true));
  auto o = f.client_options(s);
  SECTION("with the client certificate") {
    o.tls_cert_file = f.pki.client_cert;
    o.tls_key_file = f.pki.client_key;
    redis::client c(o);
    REQUIRE(c.start().empty());
    REQUIRE(wait_until([&] { return c.ready(); }, 5000));
    CHECK(run(c, {"PING"}).value.str == "PONG");
  }
  SECTION("without one") {
    redis::client c(o);
    REQUIRE(c.start().empty());
    REQUIRE(wait_until([&] { return !c.last_error().empty(); }, 5000));
    CHECK_FALSE(wait_until([&] { return c.ready(); }, 300));
    CAPTURE(c.last_error());
    CHECK_THAT(c.last_error(), Catch::Contains("certificate required"));
    CHECK(c.counters().connects.load() == 0);
  }
}

TEST_CASE("redis over TLS: TLS to a plain port, or plain TCP to a TLS port, fails clearly "
          "within the connect timeout",
          "[redis][store][tls]") {
  tls_fixture f;
  SECTION("a TLS client, a plain Redis") {
    redis_server s;
    auto o = f.client_options(s);
    redis::client c(o);
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(c.start().empty());
    REQUIRE(wait_until([&] { return !c.last_error().empty(); }, 5000));
    CHECK(std::chrono::steady_clock::now() - t0 <
          std::chrono::milliseconds(o.connect_timeout_ms + 1000));
    CAPTURE(c.last_error());
    CHECK_THAT(c.last_error(), Catch::StartsWith("tls handshake: "));
    CHECK_THAT(c.last_error(), Catch::Contains("does the server speak TLS on this port?"));
    CHECK_FALSE(c.ready());
  }
  SECTION("a plain client, a TLS Redis") {
    redis_server s(tls_server_options(f.pki));
    auto o = options_for(s);
    redis::client c(o);
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(c.start().empty());
    REQUIRE(wait_until([&] { return !c.last_error().empty(); }, 5000));
    CHECK(std::chrono::steady_clock::now() - t0 <
          std::chrono::milliseconds(o.connect_timeout_ms + 1000));
    CAPTURE(c.last_error());
    CHECK_THAT(c.last_error(), Catch::StartsWith("handshake: "));
    CHECK_THAT(c.last_error(), Catch::Contains("rediss://"));
    CHECK_FALSE(c.ready());
  }
}

TEST_CASE("redis over TLS: a restart of the server fails what was in flight, then reconnects "
          "over TLS",
          "[redis][store][tls]") {
  tls_fixture f;
  redis_server s(tls_server_options(f.pki));
  redis::client c(f.client_options(s));
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  REQUIRE(run(c, {"SET", "before", "1"}).ok());
  s.stop();
  REQUIRE(wait_until([&] { return !c.ready(); }, 5000));
  CHECK(run(c, {"GET", "before"}).transport_error == "not connected");
  CHECK_THAT(c.last_error(), Catch::StartsWith("connection lost: "));
  s.start();
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  auto after = run(c, {"GET", "before"});
  REQUIRE(after.transport_error.empty());
  CHECK(after.value.k == redis::reply::kind::nil);
  CHECK(c.counters().connects.load() == 2);
  CHECK(c.counters().disconnects.load() == 1);
}

TEST_CASE("redis over TLS: a command past its timeout drops the connection, and it comes back",
          "[redis][store][tls]") {
  tls_fixture f;
  redis_server s(tls_server_options(f.pki));
  auto o = f.client_options(s);
  o.command_timeout_ms = 200;
  redis::client c(o);
  REQUIRE(c.start().empty());
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  s.pause(true);
  auto r = run(c, {"PING"});
  s.pause(false);
  CHECK(r.transport_error == "timeout after 200 ms");
  REQUIRE(wait_until([&] { return c.ready(); }, 5000));
  CHECK(run(c, {"PING"}).value.str == "PONG");
}

TEST_CASE("redis over TLS: files that cannot be used fail the start, naming the file",
          "[redis][store][tls]") {
  tls_fixture f;
  redis::client_options o;
  o.tls = true;
  std::string missing = f.dir.file("missing.pem");
  std::string says;
  SECTION("a missing CA file") {
    o.tls_ca_file = missing;
    says = "redis: tls: CA file " + missing + ": ";
  }
  SECTION("a client certificate without its key") {
    o.tls_ca_file = f.pki.ca_cert;
    o.tls_cert_file = f.pki.client_cert;
    says = "redis: tls: certificate " + f.pki.client_cert + " given without its private key";
  }
  SECTION("a client key that is not the certificate's") {
    o.tls_ca_file = f.pki.ca_cert;
    o.tls_cert_file = f.pki.client_cert;
    o.tls_key_file = f.pki.server_key;
    says = "redis: tls: private key " + f.pki.server_key;
  }
  redis::client c(o);
  CHECK_THAT(c.start(), Catch::StartsWith(says));
  CHECK(run(c, {"PING"}).transport_error == "stopped");
}
