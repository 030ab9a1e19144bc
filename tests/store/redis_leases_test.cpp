// Pool leases with fencing tokens and node registrations, against a real
// redis-server: one owner at a time, a takeover only after expiry with a new
// token, and a write carrying an old token (or an expired lease's) refused
// by the store. Times are passed in (Redis's clock read once), not waited.

#include <catch2/catch.hpp>

#include "adapters/store/redis_leases.hpp"
#include "adapters/store/redis_store.hpp"
#include "tests/support/redis_server.hpp"

using namespace balctl;

namespace {

constexpr std::int64_t ttl = 10'000;

redis::client_options options_for(const test::redis_server& s) {
  redis::client_options o;
  o.port = s.port();
  return o;
}

std::unique_ptr<lease_table> table(const test::redis_server& s) {
  auto t = std::make_unique<lease_table>(options_for(s), "balctl:");
  t->start();
  return t;
}

std::unique_ptr<store> node_store(const test::redis_server& s) {
  redis_store_options o;
  o.client = options_for(s);
  return open_redis_store(o);
}

/// Redis's clock now, in ms (what the fenced writes compare with).
std::int64_t redis_now(const test::redis_server& s) {
  auto out = s.cli("TIME");
  auto nl = out.find('\n');
  REQUIRE(nl != std::string::npos);
  return std::stoll(out.substr(0, nl)) * 1000 + std::stoll(out.substr(nl + 1)) / 1000;
}

pool_decision decision(const std::string& pool) {
  pool_decision d;
  d.kind = decision_kind::failover;
  d.pool = pool;
  d.from = 1;
  d.to = 2;
  d.reason = "test";
  return d;
}

dns_change_record change(const std::string& pool) {
  dns_change_record c;
  c.pool = pool;
  c.provider = "cf";
  c.name = "www.example.com";
  c.type = "A";
  c.content = "192.0.2.2";
  return c;
}

} // namespace

TEST_CASE("a pool has one owner: another node takes it only after the lease expired, with a new "
          "token",
          "[store][redis][cluster]") {
  test::redis_server s;
  auto a = table(s);
  auto b = table(s);
  const std::int64_t t0 = 1'000'000;

  auto got = a->acquire("web", "node-a", ttl, t0);
  CHECK(got.token == 1);
  CHECK(got.holder == "node-a");
  CHECK(got.expires_ms == t0 + ttl);

  auto refused = b->acquire("web", "node-b", ttl, t0 + 1000);
  CHECK(refused.token == 0);
  CHECK(refused.holder == "node-a");
  CHECK(refused.expires_ms == t0 + ttl);

  // Renewing keeps the token and moves the expiry.
  CHECK(a->renew("web", "node-a", 1, ttl, t0 + 5000));
  CHECK(b->acquire("web", "node-b", ttl, t0 + ttl + 1).token == 0);
  // Acquiring what one holds is a renewal too: same token.
  CHECK(a->acquire("web", "node-a", ttl, t0 + 6000).token == 1);

  // node-a stops renewing (paused, dead): after the expiry node-b takes it.
  auto taken = b->acquire("web", "node-b", ttl, t0 + 6000 + ttl);
  CHECK(taken.token == 2);
  CHECK(taken.holder == "node-b");
  // node-a wakes up: its renewal fails, it must stop acting for the pool.
  CHECK_FALSE(a->renew("web", "node-a", 1, ttl, t0 + 6000 + ttl + 10));
  CHECK(a->acquire("web", "node-a", ttl, t0 + 6000 + ttl + 10).token == 0);
  // Its release of the old lease does nothing to node-b's.
  a->release("web", "node-a", 1);
  auto ls = a->leases();
  REQUIRE(ls.size() == 1);
  CHECK(ls[0].pool == "web");
  CHECK(ls[0].node == "node-b");
  CHECK(ls[0].token == 2);
  CHECK(ls[0].since_ms == t0 + 6000 + ttl);
  CHECK(a->token("web") == 2);

  SECTION("a release frees the pool at once; the next owner gets a new token") {
    b->release("web", "node-b", 2);
    CHECK(b->leases().empty());
    auto next = a->acquire("web", "node-a", ttl, t0 + 6000 + ttl + 20);
    CHECK(next.token == 3);
    CHECK_FALSE(next.handed_off);
  }
  SECTION("a handoff is heard by the next owner only, once") {
    CHECK_FALSE(taken.handed_off); // an expired lease is no handoff
    a->release("web", "node-a", 1, 5000); // not its lease: no marker
    CHECK(a->acquire("web", "node-a", ttl, t0 + 6000 + ttl + 20).token == 0);
    b->release("web", "node-b", 2, 5000);
    auto next = a->acquire("web", "node-a", ttl, t0 + 6000 + ttl + 30);
    CHECK(next.token == 3);
    CHECK(next.handed_off);
    CHECK_FALSE(a->acquire("web", "node-a", ttl, t0 + 6000 + ttl + 40).handed_off); // a renewal
    a->release("web", "node-a", 3);
    CHECK_FALSE(b->acquire("web", "node-b", ttl, t0 + 6000 + ttl + 50).handed_off);
  }
  SECTION("an expired lease of one's own is taken again with a new token") {
    CHECK(b->acquire("web", "node-b", ttl, t0 + 6000 + 3 * ttl).token == 3);
  }
}

TEST_CASE("nodes register with an expiry, the expired ones leave the list", "[store][redis][cluster]") {
  test::redis_server s;
  auto t = table(s);
  t->register_node("node-a", R"({"admin":"127.0.0.1:1"})", ttl, 1000);
  t->register_node("node-b", "{}", ttl, 5000);
  auto live = t->live_nodes(2000);
  REQUIRE(live.size() == 2);
  CHECK(live[0].id == "node-a");
  CHECK(live[0].info == R"({"admin":"127.0.0.1:1"})");
  CHECK(live[0].expires_ms == 1000 + ttl);
  live = t->live_nodes(1000 + ttl);
  REQUIRE(live.size() == 1);
  CHECK(live[0].id == "node-b");
  CHECK(s.cli("HEXISTS balctl:nodes node-a") == "0");
  t->unregister_node("node-b");
  CHECK(t->live_nodes(0).empty());
}

TEST_CASE("a write carrying an old token, or an expired lease's, is refused: a paused old owner "
          "cannot journal a DNS change",
          "[store][redis][cluster]") {
  test::redis_server s;
  auto leases = table(s);
  auto old_owner = node_store(s);
  auto new_owner = node_store(s);
  const std::int64_t now = redis_now(s);
  const std::int64_t long_ttl = 3'600'000; // past the test, on Redis's clock

  auto a = leases->acquire("web", "node-a", long_ttl, now - long_ttl - 1000);
  REQUIRE(a.token == 1);
  old_owner->fence("web", a.token);
  SECTION("an expired lease, even with its own token") {
    CHECK_THROWS_AS(old_owner->record_decision(decision("web")), store_fenced);
    CHECK_THROWS_AS(old_owner->journal_dns_changes({change("web")}), store_fenced);
  }
  SECTION("taken over: the old token is refused, the new one writes") {
    auto b = leases->acquire("web", "node-b", long_ttl, now - 1000);
    REQUIRE(b.token == 2);
    new_owner->fence("web", b.token);
    CHECK_THROWS_AS(old_owner->journal_dns_changes({change("web")}), store_fenced);
    CHECK_THROWS_AS(old_owner->record_decision(decision("web")), store_fenced);
    protected_account acct;
    acct.id = "alice";
    CHECK_THROWS_AS(old_owner->journal_account_cuts("web", {acct}, {change("web")}), store_fenced);
    CHECK(new_owner->pending_dns_changes().empty()); // nothing of the old owner's got in
    CHECK(new_owner->decisions("web", 10).empty());

    auto id = new_owner->record_decision(decision("web"));
    auto ids = new_owner->journal_dns_changes({change("web")});
    REQUIRE(ids.size() == 1);
    auto pending = new_owner->pending_dns_changes();
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].id == ids[0]);
    CHECK(new_owner->decisions("web", 10).front().id == id);
    // Another pool is not fenced by this one.
    CHECK_NOTHROW(old_owner->journal_dns_changes({change("api")}));
  }
}
