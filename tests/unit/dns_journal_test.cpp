#include <catch2/catch.hpp>

#include "adapters/store/store.hpp"
#include "tests/support/temp_dir.hpp"

using namespace balctl;

namespace {

dns_change_record change(std::string name, std::string content, std::string provider = "cf") {
  dns_change_record c;
  c.pool = "web";
  c.provider = std::move(provider);
  c.name = std::move(name);
  c.type = "A";
  c.content = std::move(content);
  c.created_ms = 1;
  return c;
}

} // namespace

TEST_CASE("the DNS journal keeps changes in order and marks them", "[store][dns][unit]") {
  auto st = open_sqlite_store(":memory:");
  auto ids = st->journal_dns_changes({change("www.a.test", "192.0.2.1"),
                                      change("www.b.test", "192.0.2.2")});
  REQUIRE(ids.size() == 2);
  CHECK(ids[1] > ids[0]);
  st->mark_dns_changes({ids[0]}, "done", "");
  auto pending = st->pending_dns_changes();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].id == ids[1]);
  CHECK(pending[0].content == "192.0.2.2");
  CHECK(pending[0].proxied == -1);
}

TEST_CASE("a pending change followed by a newer one of its record is never resumed",
          "[store][dns][unit]") {
  auto st = open_sqlite_store(":memory:");
  SECTION("the newer one is done") {
    auto old = st->journal_dns_changes({change("www.a.test", "192.0.2.1")});
    auto newer = st->journal_dns_changes({change("www.a.test", "192.0.2.2")});
    st->mark_dns_changes(newer, "done", "");
    CHECK(st->pending_dns_changes().empty());
    CHECK(st->dns_changes("web", 10).back().status == "superseded");
  }
  SECTION("both pending: only the newest") {
    st->journal_dns_changes({change("www.a.test", "192.0.2.1")});
    st->journal_dns_changes({change("www.a.test", "192.0.2.2")});
    auto p = st->pending_dns_changes();
    REQUIRE(p.size() == 1);
    CHECK(p[0].content == "192.0.2.2");
  }
  SECTION("another provider's record of the same name is another record") {
    st->journal_dns_changes({change("www.a.test", "192.0.2.1", "cf")});
    st->journal_dns_changes({change("www.a.test", "192.0.2.2", "pdns")});
    CHECK(st->pending_dns_changes().size() == 2);
  }
  SECTION("a newer failed change does not supersede") {
    st->journal_dns_changes({change("www.a.test", "192.0.2.1")});
    auto f = st->journal_dns_changes({change("www.a.test", "192.0.2.2")});
    st->mark_dns_changes(f, "failed", "no such zone");
    CHECK(st->pending_dns_changes().size() == 1);
  }
}

TEST_CASE("a deleted pool's pending DNS changes are cancelled", "[store][dns][unit]") {
  auto st = open_sqlite_store(":memory:");
  pool_config p;
  p.name = "web";
  st->put_pool(p);
  st->journal_dns_changes({change("www.a.test", "192.0.2.1")});
  st->delete_pool("web");
  CHECK(st->pending_dns_changes().empty());
}

TEST_CASE("pool DNS settings and members' public addresses survive the store", "[store][dns][unit]") {
  balctl::test::temp_dir dir("dns-journal");
  auto path = dir.file("s.db");
  {
    auto st = open_sqlite_store(path);
    pool_config p;
    p.name = "web";
    p.from_api = true;
    p.dns_provider = "cf";
    p.dns_zone = "example.com";
    p.dns_ttl_s = 120;
    p.dns_sync = false;
    p.dns_only = true;
    member_config m;
    m.id = 7;
    m.hostname = "n7.example.com";
    m.public_ipv4 = "198.51.100.7";
    m.public_ipv6 = "2001:db8::7";
    p.members.push_back(m);
    st->put_pool(p);
  }
  auto st = open_sqlite_store(path);
  auto ps = st->load_pools(true);
  REQUIRE(ps.size() == 1);
  CHECK(ps[0].dns_provider == "cf");
  CHECK(ps[0].dns_zone == "example.com");
  CHECK(ps[0].dns_ttl_s == 120);
  CHECK_FALSE(ps[0].dns_sync);
  CHECK(ps[0].dns_only);
  REQUIRE(ps[0].members.size() == 1);
  CHECK(ps[0].members[0].public_ipv4 == "198.51.100.7");
  CHECK(ps[0].members[0].public_ipv6 == "2001:db8::7");
}
