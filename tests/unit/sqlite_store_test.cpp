#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <unistd.h>

#include "adapters/store/store.hpp"

using namespace balctl;

namespace {

member_config member(member_id id, std::uint8_t key_byte) {
  member_config m;
  m.id = id;
  m.name = "node" + std::to_string(id);
  m.hostname = m.name + ".example.test";
  m.allowed_ips = {"192.0.2." + std::to_string(id), "2001:db8::1"};
  m.key.fill(key_byte);
  return m;
}

pool_config pool(const std::string& name, std::vector<member_id> ids) {
  pool_config p;
  p.name = name;
  p.preset = pool_preset::haproxy;
  p.failover_delay_s = 45;
  p.failover_hostname = "www." + name + ".test";
  p.failback = failback_policy::automatic;
  p.mass_silence_share = 0.4;
  for (auto id : ids) {
    p.members.push_back(member(id, static_cast<std::uint8_t>(id)));
  }
  return p;
}

pool_decision decision(const std::string& pool, member_id from, member_id to) {
  return pool_decision{decision_kind::failover, pool, from, to, "test",
                       1000 + static_cast<std::int64_t>(to)};
}

struct temp_db {
  std::string path = "/tmp/balctl-store-test-" + std::to_string(getpid()) + ".db";
  ~temp_db() {
    for (auto suffix : {"", "-wal", "-shm"}) {
      std::remove((path + suffix).c_str());
    }
  }
};

} // namespace

TEST_CASE("pools, members and keys round-trip", "[store][unit]") {
  auto st = open_sqlite_store(":memory:");
  st->put_pool(pool("web", {3, 1, 2}));
  st->put_pool(pool("db", {9}));
  auto pools = st->load_pools();
  REQUIRE(pools.size() == 2);
  const auto& web = pools[1].name == "web" ? pools[1] : pools[0];
  CHECK(web.preset == pool_preset::haproxy);
  CHECK(web.failover_delay_s == 45);
  CHECK(web.failover_hostname == "www.web.test");
  CHECK(web.failback == failback_policy::automatic);
  CHECK(web.mass_silence_share == Approx(0.4));
  REQUIRE(web.members.size() == 3);
  CHECK(web.members[0].id == 3); // configured order, not id order
  CHECK(web.members[2].id == 2);
  CHECK(web.members[0].key == member(3, 3).key);
  CHECK(web.members[0].allowed_ips == member(3, 3).allowed_ips);
  CHECK(web.members[0].hostname == "node3.example.test");
}

TEST_CASE("put_pool replaces the member list and keeps kept members' state",
          "[store][unit]") {
  auto st = open_sqlite_store(":memory:");
  st->put_pool(pool("web", {1, 2, 3}));
  st->save_member_states({{1, member_state::healthy, 10, 11, 12},
                          {2, member_state::down, 20, 21, 22}});
  st->put_pool(pool("web", {1, 3}));
  auto pools = st->load_pools();
  REQUIRE(pools[0].members.size() == 2);
  auto states = st->load_member_states();
  REQUIRE(states.size() == 1);
  CHECK(states[0].id == 1);
  CHECK(states[0].state == member_state::healthy);
  CHECK(states[0].last_seq == 12);
}

TEST_CASE("deleting a pool removes its members, states and active member",
          "[store][unit]") {
  auto st = open_sqlite_store(":memory:");
  st->put_pool(pool("web", {1, 2}));
  st->put_pool(pool("db", {3}));
  st->save_member_state({1, member_state::healthy, 1, 2, 3});
  st->set_active_member("web", 2);
  st->delete_pool("web");
  auto pools = st->load_pools();
  REQUIRE(pools.size() == 1);
  CHECK(pools[0].name == "db");
  CHECK(st->load_member_states().empty());
  CHECK_FALSE(st->active_member("web"));
}

TEST_CASE("member states are saved in batches", "[store][unit]") {
  auto st = open_sqlite_store(":memory:");
  const std::size_t n = 100'000;
  pool_config big;
  big.name = "big";
  for (member_id id = 1; id <= n; ++id) {
    big.members.push_back(member(id, 1));
  }
  st->put_pool(big);
  std::vector<member_state_record> rs;
  for (member_id id = 1; id <= n; ++id) {
    rs.push_back({id, member_state::healthy, static_cast<std::int64_t>(id), 5,
                  id * 2});
  }
  auto t0 = std::chrono::steady_clock::now();
  st->save_member_states(rs);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - t0).count();
  WARN("save_member_states: " << n << " rows in " << ms << " ms");
  auto back = st->load_member_states();
  REQUIRE(back.size() == n);
  CHECK(back[41].last_seq == back[41].id * 2);
  // A state for a member that is not stored is skipped, not an error.
  CHECK_NOTHROW(st->save_member_states({{n + 1, member_state::down, 0, 0, 0}}));
  CHECK(st->load_member_states().size() == n);
}

TEST_CASE("the active member is set and overwritten", "[store][unit]") {
  auto st = open_sqlite_store(":memory:");
  st->put_pool(pool("web", {1, 2}));
  CHECK_FALSE(st->active_member("web"));
  st->set_active_member("web", 1);
  st->set_active_member("web", 2);
  CHECK(st->active_member("web") == std::optional<member_id>{2});
}

TEST_CASE("decisions are listed newest first and marked", "[store][unit]") {
  auto st = open_sqlite_store(":memory:");
  auto a = st->record_decision(decision("web", 1, 2));
  auto b = st->record_decision(decision("db", 3, 4));
  auto c = st->record_decision(decision("web", 2, 1));
  CHECK(a < b);
  CHECK(b < c);
  auto web = st->decisions("web", 10);
  REQUIRE(web.size() == 2);
  CHECK(web[0].id == c);
  CHECK(web[0].decision.kind == decision_kind::failover);
  CHECK(web[0].decision.from == 2);
  CHECK(web[0].decision.at_ms == 1001);
  CHECK(web[0].status == "pending");
  CHECK(st->decisions("", 10).size() == 3);
  CHECK(st->decisions("", 1).size() == 1);
  st->mark_decision(a, "done");
  auto pending = st->pending_decisions();
  REQUIRE(pending.size() == 2);
  CHECK(pending[0].id == b); // oldest first
  CHECK(pending[1].id == c);
}

TEST_CASE("a reopened store file keeps everything", "[store][unit]") {
  temp_db db;
  {
    auto st = open_sqlite_store(db.path);
    st->put_pool(pool("web", {1, 2}));
    st->save_member_state({2, member_state::recovering, 5, 6, 7});
    st->set_active_member("web", 2);
    st->record_decision(decision("web", 1, 2));
  }
  auto st = open_sqlite_store(db.path);
  REQUIRE(st->load_pools().size() == 1);
  auto states = st->load_member_states();
  REQUIRE(states.size() == 1);
  CHECK(states[0].state == member_state::recovering);
  CHECK(st->active_member("web") == std::optional<member_id>{2});
  CHECK(st->pending_decisions().size() == 1);
}

TEST_CASE("an unusable store path fails with the operation named", "[store][unit]") {
  try {
    open_sqlite_store("/proc/nonexistent/balctl.db");
    FAIL("expected store_error");
  } catch (const store_error& e) {
    CHECK(std::string(e.what()).rfind("sqlite: open /proc/nonexistent/balctl.db", 0) == 0);
  }
}
