// The actor tree on CAF's deterministic test scheduler: time is a manual
// clock advanced together with the scheduler's clock, so timers fire exactly
// when the test says and nothing sleeps.

#include <catch2/catch.hpp>

#include <functional>

#include <caf/scheduler/test_coordinator.hpp>

#include "actors/dns_router.hpp"
#include "actors/engine.hpp"
#include "actors/pool.hpp"
#include "actors/supervisor.hpp"
#include "tests/actors/actor_test_support.hpp"
#include "transport/protocol.hpp"

using namespace balctl;
using namespace balctl::test;

namespace {

struct fixture : engine_rig {
  using engine_rig::engine_rig;

  void beat(member_id id, const std::string& body = {}) {
    auto r = send_beat(id, body);
    REQUIRE(r.ok);
  }

  // Advances both clocks in steps, firing due timers and running every
  // message, while the given members heartbeat once a second.
  void run_for(std::int64_t ms, std::vector<member_id> beating) {
    const std::int64_t step = 250;
    for (std::int64_t t = 0; t < ms; t += step) {
      tick(step);
      if ((t / step) % 4 == 0) {
        for (auto id : beating) {
          beat(id);
        }
      }
    }
  }

  member_state state_of(member_id id) { return parts.reg->find(id)->state.load(); }

  template <class State>
  State& peek(const caf::actor& a) {
    return test::peek<State>(a);
  }

  caf::actor pool_actor_of(const std::string& name) {
    return peek<supervisor_state>(h.supervisor).pools.at(name);
  }

  // Asks a pool for its view the way the admin API will: by message.
  pool_view view_of(const std::string& name) {
    pool_view out;
    auto pool = pool_actor_of(name);
    // Arguments, not captures: a spawn with none trips UBSan inside CAF.
    sys.spawn(
      [](caf::event_based_actor* self, caf::actor target, pool_view* result) {
        self->request(target, caf::infinite, caf::get_atom_v)
          .then([result](const pool_view& v) { *result = v; });
      },
      pool, &out);
    sched.run();
    return out;
  }

  std::vector<pool_decision> executed() {
    return peek<dns_router_state>(h.dns).executed;
  }
};

} // namespace

TEST_CASE("members heartbeating become healthy and a silent active member fails over",
          "[actors][pool]") {
  fixture f({make_pool("a", {1, 2, 3})});
  f.run_for(3000, {1, 2, 3});
  CHECK(f.state_of(1) == member_state::healthy);
  CHECK(f.state_of(2) == member_state::healthy);
  CHECK(f.executed().empty());
  // Member 1 (the primary, active) stops; 2 and 3 keep going.
  f.run_for(11'000, {2, 3});
  CHECK(f.state_of(1) == member_state::down);
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].kind == decision_kind::failover);
  CHECK(ex[0].from == 1);
  CHECK(ex[0].to == 2);
  // The decision was stored, and the active member with it.
  auto ds = f.st->decisions("a", 10);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].decision.to == 2);
  CHECK(ds[0].status == "done");
  CHECK(f.st->active_member("a") == std::optional<member_id>{2});
}

TEST_CASE("a killed pool actor is restarted and its members are still detected",
          "[actors][supervision]") {
  fixture f({make_pool("a", {1, 2, 3}), make_pool("b", {4, 5})});
  f.run_for(3000, {1, 2, 3, 4, 5});
  auto old_a = f.pool_actor_of("a");
  auto old_b = f.pool_actor_of("b");
  caf::anon_send_exit(old_a, caf::exit_reason::kill);
  f.sched.run();
  f.tick();
  auto new_a = f.pool_actor_of("a");
  CHECK(new_a != old_a);
  CHECK(f.pool_actor_of("b") == old_b); // the other pool never noticed
  CHECK(f.metrics.actor_restarts.load() == 1);
  // Still detected after the restart: 1 goes silent and is failed over.
  f.run_for(11'000, {2, 3, 4, 5});
  CHECK(f.state_of(1) == member_state::down);
  CHECK(f.state_of(4) == member_state::healthy);
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].pool == "a");
  CHECK(ex[0].to == 2);
  // And a member that comes back is seen again by the restarted actors.
  f.run_for(2000, {1, 2, 3, 4, 5});
  CHECK(f.state_of(1) == member_state::recovering);
}

TEST_CASE("a pool actor that throws is restarted from its last state",
          "[actors][supervision]") {
  fixture f({make_pool("a", {1, 2, 3})});
  f.run_for(3000, {1, 2, 3});
  f.run_for(11'000, {2, 3});
  REQUIRE(f.executed().size() == 1); // active is now 2
  caf::anon_send(f.pool_actor_of("a"), crash_atom_v);
  f.sched.run();
  f.tick();
  CHECK(f.metrics.actor_restarts.load() == 1);
  auto& ps = f.peek<pool_actor_state>(f.pool_actor_of("a"));
  CHECK(ps.policy->active() == 2); // not back to the primary
  // Member 2 now dies: the restarted pool fails over to 3, not to 1 (down).
  f.run_for(11'000, {3});
  auto ex = f.executed();
  REQUIRE(ex.size() == 2);
  CHECK(ex[1].from == 2);
  CHECK(ex[1].to == 3);
}

TEST_CASE("a killed member actor is restarted by its pool with its state",
          "[actors][supervision]") {
  fixture f({make_pool("a", {1, 2})});
  f.run_for(3000, {1, 2});
  auto& ps = f.peek<pool_actor_state>(f.pool_actor_of("a"));
  auto pos = *ps.policy->position_of(2);
  auto old_member = (*ps.actors)[pos];
  caf::anon_send_exit(old_member, caf::exit_reason::kill);
  f.sched.run();
  auto& ps2 = f.peek<pool_actor_state>(f.pool_actor_of("a"));
  CHECK((*ps2.actors)[pos] != old_member);
  CHECK(f.metrics.actor_restarts.load() == 1);
  CHECK(f.state_of(2) == member_state::healthy);
  f.run_for(11'000, {1});
  CHECK(f.state_of(2) == member_state::down);
}

TEST_CASE("fleet-wide silence holds failover in every pool", "[actors][silence]") {
  std::vector<pool_config> pools;
  member_id next = 1;
  for (int p = 0; p < 4; ++p) {
    std::vector<member_id> ids;
    for (int i = 0; i < 3; ++i) {
      ids.push_back(next++);
    }
    pools.push_back(make_pool("p" + std::to_string(p), ids));
    // Pool-level guard out of the way: this test is about the fleet guard.
    pools.back().mass_silence_min_members = 100;
  }
  fixture f(pools, [](engine_config& c) { c.fleet_silence_min_members = 4; });
  std::vector<member_id> all;
  for (member_id id = 1; id < next; ++id) {
    all.push_back(id);
  }
  f.run_for(3000, all);
  // Every pool's primary (1, 4, 7, 10) goes silent at the same moment.
  f.run_for(12'000, {2, 3, 5, 6, 8, 9, 11, 12});
  CHECK(f.state_of(1) == member_state::down);
  CHECK(f.executed().empty());
  CHECK(f.metrics.holds.load() >= 4);
  // They come back: the hold is released, nobody moved.
  f.run_for(3000, all);
  CHECK(f.executed().empty());
}

TEST_CASE("two members reporting cPanel unlock Protection and Managed DNS",
          "[actors][features]") {
  fixture f({make_pool("a", {1, 2, 3})});
  auto cpanel = [](member_id id) {
    return R"({"hostname":"node)" + std::to_string(id) +
           R"(.example.test","agent_version":"1.0","stacks":{"cpanel":{"version":"118.0.5"},"mariadb":{}}})";
  };
  f.beat(1, cpanel(1));
  auto v = f.view_of("a");
  REQUIRE(v.members.size() == 3);
  CHECK(v.members[0].name == "node1");
  CHECK(v.members[0].hostname == "node1.example.test");
  CHECK(v.members[0].has_status);
  CHECK(v.members[0].status.cpanel.version == "118.0.5");
  CHECK(v.members[0].state == member_state::healthy);
  CHECK_FALSE(v.protection);
  CHECK_FALSE(v.managed_dns);
  f.beat(2, cpanel(2));
  v = f.view_of("a");
  CHECK(v.protection);
  CHECK(v.managed_dns);
  CHECK(v.active == 1);
  CHECK(v.members[2].state == member_state::pending);
  // Member 2 stops reporting cPanel: the tabs go away again.
  f.beat(2, R"({"hostname":"node2.example.test"})");
  CHECK_FALSE(f.view_of("a").protection);
}

TEST_CASE("an engine restarted with its active member down fails over at start",
          "[actors][restart]") {
  auto seed = [](store& st) {
    st.save_member_states({{1, member_state::down, 1, 1, 10},
                           {2, member_state::healthy, 1, 1, 10},
                           {3, member_state::healthy, 1, 1, 10}});
    st.set_active_member("a", 1);
  };
  fixture f({make_pool("a", {1, 2, 3})}, {}, seed);
  // No heartbeat and no transition needed: the pool decides on what it
  // restored.
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].from == 1);
  CHECK(ex[0].to == 2);
  CHECK(f.st->active_member("a") == std::optional<member_id>{2});
}

TEST_CASE("healthy members heartbeating are re-armed by their pool without "
          "waking their actors",
          "[actors][timers]") {
  fixture f({make_pool("a", {1, 2, 3})});
  f.run_for(3000, {1, 2, 3});
  REQUIRE(f.state_of(3) == member_state::healthy);
  auto wakes = f.metrics.member_wakes.load();
  // Ten failover delays of steady heartbeats: every deadline that comes is
  // re-armed in place (suspect_after is 5 s, so each member's timer comes
  // due about every 5 s), none wakes a member actor.
  f.run_for(100'000, {1, 2, 3});
  CHECK(f.metrics.member_wakes.load() == wakes);
  CHECK(f.metrics.deadlines_rearmed.load() >= 3 * 15);
  auto& ps = f.peek<pool_actor_state>(f.pool_actor_of("a"));
  CHECK(ps.deadlines.live() == 3); // one timer per member, never more
  CHECK(ps.deadlines.heap_size() == 3); // and no stale entries left over
  // A member that stops is still woken at its deadline and declared down.
  f.run_for(11'000, {1, 2});
  CHECK(f.state_of(3) == member_state::down);
  CHECK(f.metrics.member_wakes.load() > wakes);
}

TEST_CASE("a down member has no timer, its first heartbeat wakes it through "
          "the pool",
          "[actors][timers]") {
  fixture f({make_pool("a", {1, 2, 3})});
  f.run_for(3000, {1, 2, 3});
  f.run_for(11'000, {1, 2});
  REQUIRE(f.state_of(3) == member_state::down);
  auto& ps = f.peek<pool_actor_state>(f.pool_actor_of("a"));
  CHECK_FALSE(ps.deadlines.armed_ms(*ps.policy->position_of(3)));
  f.beat(3);
  CHECK(f.state_of(3) == member_state::recovering);
  CHECK(ps.deadlines.armed_ms(*ps.policy->position_of(3)));
}

TEST_CASE("members of a pool that ends are stopped with it",
          "[actors][supervision]") {
  fixture f({make_pool("a", {1, 2, 3})});
  f.run_for(1000, {1, 2, 3});
  REQUIRE(f.parts.pools[0]->live_members.load() == 3);
  auto& ps = f.peek<pool_actor_state>(f.pool_actor_of("a"));
  auto members = *ps.actors;
  // The supervisor restarts the pool; the old members must be gone first.
  caf::anon_send_exit(f.pool_actor_of("a"), caf::exit_reason::kill);
  f.sched.run();
  for (const auto& m : members) {
    auto ptr = caf::actor_cast<caf::abstract_actor*>(m);
    CHECK(ptr->getf(caf::abstract_actor::is_terminated_flag));
  }
  f.tick();
  CHECK(f.parts.pools[0]->live_members.load() == 3); // the new ones
}

TEST_CASE("a transition a crashed member actor never reported is caught up "
          "by its replacement",
          "[actors][supervision]") {
  fixture f({make_pool("a", {1, 2, 3})});
  f.run_for(3000, {1, 2, 3});
  // Member 1, the active member, goes silent: suspect after 5 s.
  f.run_for(6000, {2, 3});
  auto& rt = *f.parts.pools[0]->members[0];
  // Its state machine stepped to down, and its actor died before the slot
  // was updated or the pool was told.
  rt.fsm = member_fsm(f.parts.pools[0]->detection, member_state::down,
                      f.clk.now_ms());
  auto& ps = f.peek<pool_actor_state>(f.pool_actor_of("a"));
  REQUIRE(ps.policy->state_of(1) == member_state::suspect);
  REQUIRE(f.executed().empty());
  caf::anon_send_exit((*ps.actors)[0], caf::exit_reason::kill);
  f.sched.run();
  // The replacement reports what its state machine says; the pool acts.
  CHECK(f.state_of(1) == member_state::down);
  CHECK(ps.policy->state_of(1) == member_state::down);
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].kind == decision_kind::failover);
  CHECK(ex[0].to == 2);
}

TEST_CASE("a pool whose cluster lease is not confirmed decides nothing until a renewal "
          "confirms it",
          "[actors][pool][cluster]") {
  fixture f({make_pool("a", {1, 2, 3})});
  f.run_for(3000, {1, 2, 3});
  REQUIRE(f.state_of(1) == member_state::healthy);
  // The lease holds for one more second, then no renewal comes (the node
  // was paused, or Redis is out of reach).
  auto lease = [&](std::int64_t until) {
    caf::anon_send(f.h.supervisor, lease_atom_v, std::vector<std::string>{"a"},
                   std::vector<std::int64_t>{until});
    f.sched.run();
  };
  lease(f.clk.now_ms() + 1000);
  f.run_for(15'000, {2, 3});
  CHECK(f.state_of(1) == member_state::healthy); // never evaluated
  CHECK(f.executed().empty());
  CHECK(f.st->decisions("a", 10).empty());
  // Renewed: the silent member is evaluated at once and fails over, once.
  lease(f.clk.now_ms() + 1000);
  f.tick(100); // the pool looks again every 100 ms
  CHECK(f.state_of(1) == member_state::down);
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].from == 1);
  CHECK(ex[0].to == 2);
}
