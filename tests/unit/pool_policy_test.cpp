#include "engine/pool_policy.hpp"

#include <catch2/catch.hpp>

using namespace balctl;

// Failure messages name states and kinds, not their numbers. The same
// member_state specialization appears in member_fsm_test.cpp; both are
// identical (ODR).
namespace Catch {
template <>
struct StringMaker<balctl::member_state> {
  static std::string convert(balctl::member_state s) {
    return balctl::to_string(s);
  }
};
template <>
struct StringMaker<balctl::decision_kind> {
  static std::string convert(balctl::decision_kind k) {
    return balctl::to_string(k);
  }
};
} // namespace Catch

namespace {

constexpr std::int64_t t0 = 1'700'000'000'000;
using ms = member_state;
using dk = decision_kind;

pool_params params(failback_policy fb = failback_policy::manual) {
  pool_params p;
  p.failback = fb;
  p.failback_stable_ms = 300'000;
  p.mass_silence.share = 0.5;
  p.mass_silence.min_members = 3;
  p.mass_silence.window_ms = 30'000;
  p.mass_silence.release_settle_ms = 5'000;
  return p;
}

// Moves m to `to`, from whatever the policy recorded, as the member actor
// would report it.
std::vector<pool_decision> set(pool_policy& pool, member_id m, ms to,
                               std::int64_t now) {
  return pool.on_member_state(m, pool.state_of(m), to, now);
}

// Pool "web" with members 1 (primary), 2, 3, 4, all heard and healthy.
pool_policy healthy_pool(failback_policy fb = failback_policy::manual) {
  pool_policy pool("web", params(fb), {1, 2, 3, 4});
  for (member_id m = 1; m <= 4; ++m) {
    REQUIRE(set(pool, m, ms::healthy, t0).empty());
  }
  return pool;
}

std::vector<dk> kinds(const std::vector<pool_decision>& ds) {
  std::vector<dk> out;
  for (const auto& d : ds) {
    out.push_back(d.kind);
  }
  return out;
}

} // namespace

TEST_CASE("decision kinds round-trip through their names", "[pool][unit]") {
  auto [kind, name] = GENERATE(table<dk, std::string>({
    {dk::failover, "failover"},
    {dk::failback, "failback"},
    {dk::hold_no_standby, "hold_no_standby"},
    {dk::hold_mass_silence, "hold_mass_silence"},
    {dk::hold_fleet_silence, "hold_fleet_silence"},
    {dk::hold_released, "hold_released"},
  }));
  CAPTURE(name);
  CHECK(std::string(to_string(kind)) == name);
  dk parsed = dk::failover;
  REQUIRE(from_string(name, parsed));
  CHECK(parsed == kind);
  CHECK_FALSE(from_string("fail-over", parsed));
}

TEST_CASE("a new pool starts on the primary with every member pending",
          "[pool][unit]") {
  pool_policy pool("web", params(), {1, 2, 3});
  CHECK(pool.active() == 1);
  CHECK(pool.primary() == 1);
  CHECK(pool.state_of(2) == ms::pending);
  CHECK_FALSE(pool.holding());

  SECTION("a restored active member is kept") {
    pool_policy restored("web", params(), {1, 2, 3}, member_id{3});
    CHECK(restored.active() == 3);
  }
  SECTION("a restored active member that is no longer configured is not") {
    pool_policy restored("web", params(), {1, 2, 3}, member_id{9});
    CHECK(restored.active() == 1);
  }
}

TEST_CASE("the active member going down fails over to the primary first, "
          "else the first healthy member in configured order",
          "[pool][unit]") {
  auto pool = healthy_pool();

  // Active 1 (primary) down: 2 is first in order.
  auto ds = set(pool, 1, ms::down, t0 + 30'000);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == dk::failover);
  CHECK(ds[0].pool == "web");
  CHECK(ds[0].from == 1);
  CHECK(ds[0].to == 2);
  CHECK(ds[0].at_ms == t0 + 30'000);
  CHECK_THAT(ds[0].reason, Catch::Contains("1 is down") &&
                             Catch::Contains("2 (healthy)"));
  CHECK(pool.active() == 2);

  // The primary recovers; then the active 2 goes down: back to the primary.
  set(pool, 1, ms::recovering, t0 + 40'000);
  set(pool, 1, ms::healthy, t0 + 50'000);
  ds = set(pool, 2, ms::down, t0 + 60'000);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == dk::failover);
  CHECK(ds[0].from == 2);
  CHECK(ds[0].to == 1);
}

TEST_CASE("a suspect active member does not fail over", "[pool][unit]") {
  auto pool = healthy_pool();
  CHECK(set(pool, 1, ms::suspect, t0 + 15'000).empty());
  CHECK(pool.active() == 1);
  CHECK(pool.on_tick(t0 + 29'999).empty());
  CHECK(kinds(set(pool, 1, ms::down, t0 + 30'000)) ==
        std::vector<dk>{dk::failover});
}

TEST_CASE("a member that is not healthy is never chosen as standby",
          "[pool][unit]") {
  // Damped members are covered by this: member_fsm keeps them recovering
  // for the flap hold.
  auto bad = GENERATE(ms::suspect, ms::down, ms::recovering, ms::pending);
  CAPTURE(bad);
  auto pool = healthy_pool();
  // 2 is first in line but not healthy; 3 is.
  pool.restore_state(2, bad, t0);
  auto ds = set(pool, 1, ms::down, t0 + 30'000);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == dk::failover);
  CHECK(ds[0].to == 3);
}

TEST_CASE("with no healthy standby the pool holds once and fails over as soon "
          "as one is healthy",
          "[pool][unit]") {
  pool_policy pool("web", params(), {1, 2, 3});
  set(pool, 1, ms::healthy, t0);
  set(pool, 2, ms::healthy, t0);
  set(pool, 3, ms::healthy, t0);
  set(pool, 2, ms::down, t0 + 1'000'000);
  set(pool, 2, ms::recovering, t0 + 1'010'000);
  set(pool, 3, ms::suspect, t0 + 2'000'000);

  auto ds = set(pool, 1, ms::down, t0 + 3'000'000);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == dk::hold_no_standby);
  CHECK(ds[0].from == 1);
  CHECK(ds[0].to == 1);
  CHECK_THAT(ds[0].reason, Catch::Contains("2 (recovering)") &&
                             Catch::Contains("3 (suspect)"));
  CHECK(pool.holding());
  CHECK(pool.active() == 1);

  // Re-evaluations and unrelated changes do not repeat the alert.
  CHECK(pool.on_tick(t0 + 3'000'001).empty());
  CHECK(set(pool, 3, ms::down, t0 + 3'000'002).empty());

  ds = set(pool, 2, ms::healthy, t0 + 3'100'000);
  CHECK(kinds(ds) == std::vector<dk>{dk::hold_released, dk::failover});
  CHECK(ds[1].from == 1);
  CHECK(ds[1].to == 2);
  CHECK(pool.active() == 2);
  CHECK_FALSE(pool.holding());
}

TEST_CASE("the hold ends when the active member comes back", "[pool][unit]") {
  pool_policy pool("web", params(), {1, 2});
  set(pool, 1, ms::healthy, t0);
  REQUIRE(kinds(set(pool, 1, ms::down, t0 + 30'000)) ==
          std::vector<dk>{dk::hold_no_standby});
  auto ds = set(pool, 1, ms::recovering, t0 + 40'000);
  CHECK(kinds(ds) == std::vector<dk>{dk::hold_released});
  CHECK(pool.active() == 1);
  CHECK(pool.on_tick(t0 + 50'000).empty());
}

TEST_CASE("mass silence in the pool holds failover until members come back",
          "[pool][unit]") {
  auto pool = healthy_pool();
  // Our network drops: 1, 2 and 3 go quiet within one window.
  CHECK(set(pool, 2, ms::suspect, t0 + 15'000).empty());
  CHECK(set(pool, 3, ms::suspect, t0 + 16'000).empty());
  CHECK(set(pool, 1, ms::suspect, t0 + 17'000).empty());
  CHECK(pool.guard().tripped());

  // The active member goes down, 4 is healthy: still no failover.
  auto ds = set(pool, 1, ms::down, t0 + 32'000);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == dk::hold_mass_silence);
  CHECK(ds[0].to == 1);
  CHECK_THAT(ds[0].reason, Catch::Contains("3 of 4"));
  CHECK(pool.active() == 1);

  // Not repeated, and the latch survives the window passing.
  CHECK(set(pool, 2, ms::down, t0 + 33'000).empty());
  CHECK(pool.on_tick(t0 + 3'600'000).empty());
  CHECK(pool.active() == 1);

  SECTION("the active member back: hold released, no failover") {
    ds = set(pool, 1, ms::recovering, t0 + 3'700'000);
    CHECK(kinds(ds) == std::vector<dk>{dk::hold_released});
    CHECK(pool.active() == 1);
    // The guard itself settles before it lets go.
    CHECK(pool.guard().tripped());
    CHECK(pool.on_tick(t0 + 3'705'000).empty());
    CHECK_FALSE(pool.guard().tripped());
  }
  SECTION("others back while the active member stays down: fail over once settled") {
    // 2 back: 2 of 4 silent, below the threshold of 3, but the release
    // settles first (release_settle_ms) in case the active is about to
    // return too.
    ds = set(pool, 2, ms::recovering, t0 + 3'700'000);
    CHECK(ds.empty());
    REQUIRE(pool.next_deadline_ms() == std::optional<std::int64_t>{t0 + 3'705'000});
    CHECK(pool.on_tick(t0 + 3'704'999).empty());
    ds = pool.on_tick(t0 + 3'705'000);
    // 2 is recovering, so the standby is 4.
    REQUIRE(kinds(ds) == std::vector<dk>{dk::hold_released, dk::failover});
    CHECK(ds[1].from == 1);
    CHECK(ds[1].to == 4);
    CHECK(pool.active() == 4);
  }
  SECTION("the active member returning while the release settles is not failed over") {
    CHECK(set(pool, 2, ms::recovering, t0 + 3'700'000).empty());
    ds = set(pool, 1, ms::recovering, t0 + 3'701'000);
    CHECK(kinds(ds) == std::vector<dk>{dk::hold_released});
    CHECK(pool.on_tick(t0 + 3'706'000).empty());
    CHECK(pool.active() == 1);
  }
}

TEST_CASE("members dying one by one far apart do not trip the pool guard",
          "[pool][unit]") {
  auto pool = healthy_pool();
  CHECK(set(pool, 4, ms::suspect, t0).empty());
  CHECK(set(pool, 4, ms::down, t0 + 15'000).empty());
  CHECK(set(pool, 3, ms::suspect, t0 + 600'000).empty());
  CHECK(set(pool, 3, ms::down, t0 + 615'000).empty());
  set(pool, 1, ms::suspect, t0 + 1'200'000);
  CHECK_FALSE(pool.guard().tripped());
  auto ds = set(pool, 1, ms::down, t0 + 1'215'000);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == dk::failover);
  CHECK(ds[0].to == 2);
}

TEST_CASE("a fleet-wide hold blocks failover and its release fails over",
          "[pool][unit]") {
  auto pool = healthy_pool();
  CHECK(pool.on_fleet_hold(true, t0 + 1'000).empty()); // active is fine
  auto ds = set(pool, 1, ms::down, t0 + 30'000);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == dk::hold_fleet_silence);
  CHECK(pool.active() == 1);
  CHECK(pool.on_fleet_hold(true, t0 + 31'000).empty());
  CHECK(pool.on_tick(t0 + 32'000).empty());

  ds = pool.on_fleet_hold(false, t0 + 60'000);
  CHECK(kinds(ds) == std::vector<dk>{dk::hold_released, dk::failover});
  CHECK(ds[1].to == 2);
  CHECK(pool.active() == 2);
}

TEST_CASE("manual fail-back happens only on request, and refusals say why",
          "[pool][unit]") {
  auto pool = healthy_pool();
  std::string why;
  CHECK(pool.request_failback(t0 + 1, &why).empty());
  CHECK(why == "primary 1 is already active");

  REQUIRE(kinds(set(pool, 1, ms::down, t0 + 30'000)) ==
          std::vector<dk>{dk::failover});
  set(pool, 1, ms::recovering, t0 + 40'000);
  CHECK(pool.request_failback(t0 + 41'000, &why).empty());
  CHECK(why == "primary 1 is recovering, not healthy");

  set(pool, 1, ms::healthy, t0 + 50'000);
  // However long the primary stays healthy, nothing automatic happens.
  CHECK(pool.on_tick(t0 + 50'000'000).empty());
  CHECK_FALSE(pool.next_deadline_ms());
  CHECK(pool.active() == 2);

  auto ds = pool.request_failback(t0 + 50'000'001, &why);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].kind == dk::failback);
  CHECK(ds[0].from == 2);
  CHECK(ds[0].to == 1);
  CHECK(pool.active() == 1);
}

TEST_CASE("automatic fail-back waits exactly failback_stable_ms of primary "
          "health, and a primary flap restarts the clock",
          "[pool][unit]") {
  auto pool = healthy_pool(failback_policy::automatic);
  REQUIRE(kinds(set(pool, 1, ms::down, t0 + 30'000)) ==
          std::vector<dk>{dk::failover});
  CHECK_FALSE(pool.next_deadline_ms());
  set(pool, 1, ms::recovering, t0 + 40'000);
  CHECK_FALSE(pool.next_deadline_ms());

  const std::int64_t healthy_at = t0 + 50'000;
  CHECK(set(pool, 1, ms::healthy, healthy_at).empty());
  CHECK(pool.next_deadline_ms() == healthy_at + 300'000);
  CHECK(pool.on_tick(healthy_at + 299'999).empty());

  SECTION("on time") {
    auto ds = pool.on_tick(healthy_at + 300'000);
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].kind == dk::failback);
    CHECK(ds[0].from == 2);
    CHECK(ds[0].to == 1);
    CHECK(pool.active() == 1);
    CHECK_FALSE(pool.next_deadline_ms());
  }
  SECTION("a flap restarts the clock") {
    set(pool, 1, ms::suspect, healthy_at + 200'000);
    CHECK_FALSE(pool.next_deadline_ms());
    const std::int64_t again = healthy_at + 210'000;
    CHECK(set(pool, 1, ms::healthy, again).empty());
    CHECK(pool.next_deadline_ms() == again + 300'000);
    CHECK(pool.on_tick(healthy_at + 300'000).empty());
    CHECK(pool.on_tick(again + 299'999).empty());
    CHECK(kinds(pool.on_tick(again + 300'000)) ==
          std::vector<dk>{dk::failback});
  }
  SECTION("not during a fleet hold; its release fails back") {
    CHECK(pool.on_fleet_hold(true, healthy_at + 1).empty());
    CHECK_FALSE(pool.next_deadline_ms());
    CHECK(pool.on_tick(healthy_at + 400'000).empty());
    CHECK(kinds(pool.on_fleet_hold(false, healthy_at + 400'001)) ==
          std::vector<dk>{dk::failback});
  }
}

TEST_CASE("restored states count without deciding anything", "[pool][unit]") {
  pool_policy pool("web", params(failback_policy::automatic), {1, 2, 3},
                   member_id{2});
  pool.restore_state(1, ms::healthy, t0);
  pool.restore_state(2, ms::healthy, t0);
  pool.restore_state(3, ms::down, t0);
  CHECK(pool.guard().population() == 3);
  CHECK(pool.guard().silent_count() == 1);
  // The primary has been healthy since t0: fail-back due at t0 + 300 s.
  CHECK(pool.next_deadline_ms() == t0 + 300'000);
  CHECK(pool.active() == 2);
}

TEST_CASE("removing the active member moves it to the first healthy member",
          "[pool][unit]") {
  auto pool = healthy_pool();
  set(pool, 2, ms::suspect, t0 + 15'000);
  pool.remove_member(1);
  CHECK(pool.active() == 3);
  CHECK(pool.primary() == 2);
  CHECK(pool.guard().population() == 3);
  CHECK(pool.guard().silent_count() == 1);

  SECTION("removing a member that is not active leaves the active alone") {
    pool.remove_member(4);
    CHECK(pool.active() == 3);
    CHECK(pool.members() == std::vector<member_id>{2, 3});
  }
  SECTION("an added member joins the population when heard") {
    pool.add_member(9, ms::pending);
    CHECK(pool.guard().population() == 3);
    CHECK(pool.members().back() == 9);
    set(pool, 9, ms::healthy, t0 + 20'000);
    CHECK(pool.guard().population() == 4);
  }
}
