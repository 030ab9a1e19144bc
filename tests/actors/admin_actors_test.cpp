// The admin API's messages on the real actor tree: pools and members created,
// enrolled, removed and reconfigured at run time, on CAF's deterministic test
// scheduler with a manual clock (as engine_actors_test.cpp), heartbeats
// through the real ingest path. Every answer is decoded the way the API
// decodes it (control_impl::to_failure), so the codes checked here are the
// ones operators see.

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>

#include <caf/scheduler/test_coordinator.hpp>

#include "actors/control_impl.hpp"
#include "actors/dns_router.hpp"
#include "actors/engine.hpp"
#include "actors/pool.hpp"
#include "actors/store_actor.hpp"
#include "actors/supervisor.hpp"
#include "tests/actors/actor_test_support.hpp"
#include "transport/protocol.hpp"

using namespace balctl;
using namespace balctl::test;

namespace {

const std::string local_ip = "127.0.0.1";



// What the admin API sends to create a pool: id and settings, no members.
// The pool's own mass-silence guard is out of the way (these tests silence
// members one at a time and are not about the guard).
pool_config api_pool_config(const std::string& name, int failover_delay_s = 10) {
  pool_config p;
  p.name = name;
  p.label = name + " pool";
  p.failover_delay_s = failover_delay_s;
  p.mass_silence_min_members = 100;
  return p;
}

new_member server(const std::string& hostname) {
  new_member nm;
  nm.hostname = hostname;
  nm.linux_family = "debian";
  nm.allowed_ips = {local_ip};
  return nm;
}


// A DNS executor that takes every change and never answers (a provider that
// hangs): the pool's move stays in flight until the test delivers.
struct stalled_dns_state {
  std::vector<pool_decision> asked;
  std::vector<caf::response_promise> pending;
  static inline const char* name = "stalled_dns";
};

caf::behavior stalled_dns(caf::stateful_actor<stalled_dns_state>* self,
                          std::string /*provider*/) {
  return {
    [=](execute_atom, std::int64_t, const pool_decision& d,
        const std::vector<dns_change_record>&) -> caf::result<bool> {
      self->state.asked.push_back(d);
      auto rp = self->make_response_promise();
      self->state.pending.push_back(rp);
      return rp;
    },
    // The provider answers at last (delivered from inside the actor: a
    // promise needs its actor's context).
    [=](caf::ok_atom) {
      for (auto& rp : self->state.pending) {
        rp.deliver(true);
      }
      self->state.pending.clear();
    },
  };
}

/// An answer to an admin request: the value, or the failure the API would
/// report.
template <class T>
struct reply {
  std::optional<T> value;
  api::failure failure;
  bool answered = false;
  bool ok() const { return value.has_value(); }
};

struct fixture : engine_rig {
  std::unordered_map<member_id, protocol::key> keys;

  /// stalled: the supervisor gets a DNS executor that never answers
  /// (spawned here the way spawn_engine wires the real one).
  explicit fixture(std::vector<pool_config> pools = {}, bool stalled = false)
    : engine_rig(std::move(pools), {}, {}, {}, stalled ? spawner(spawn_stalled) : spawner()) {
    for (const auto& p : ecfg.pools) {
      for (const auto& m : p.members) {
        keys[m.id] = m.key;
      }
    }
  }

  static engine_handles spawn_stalled(engine_rig& r) {
    engine_handles h;
    h.store = r.sys.spawn(store_actor, r.st, &r.metrics, store_actor_options{});
    h.dns = r.sys.spawn(stalled_dns, std::string("stalled"));
    auto deps = make_supervisor_deps(r.ecfg, r.parts, h.store, h.dns, &r.clk, &r.metrics);
    h.supervisor = r.sys.spawn(supervisor_actor, r.parts.pools, deps);
    return h;
  }

  // -- heartbeats -----------------------------------------------------------

  accept_result send_beat(member_id id, const protocol::key& k,
                          const std::string& source = local_ip) {
    std::uint8_t buf[protocol::max_datagram_size];
    protocol::header hdr;
    hdr.member = id;
    hdr.seq = ++seq[id];
    hdr.timestamp_ms = clk.now_ms();
    auto n = protocol::encode(buf, sizeof buf, hdr, {}, k);
    ip_address src;
    ip_address::parse(source, src);
    auto r = in->accept(buf, n, src, clk.now_ms());
    if (!r.ok) {
      --seq[id]; // not accepted: the next one may use this number
    }
    sched.run();
    return r;
  }

  void beat(member_id id) {
    auto r = send_beat(id, keys.at(id));
    CAPTURE(id, protocol::to_string(r.reason));
    REQUIRE(r.ok);
  }

  void run_for(std::int64_t ms, std::vector<member_id> beating) {
    const std::int64_t step = 250;
    for (std::int64_t t = 0; t < ms; t += step) {
      clk.advance(step);
      sched.advance_time(std::chrono::milliseconds(step));
      sched.run();
      if ((t / step) % 4 == 0) {
        for (auto id : beating) {
          beat(id);
        }
      }
    }
  }

  // Advances until the clock reads at least at_ms, the given members
  // heartbeating once a second.
  void run_until(std::int64_t at_ms, std::vector<member_id> beating) {
    if (at_ms > clk.now_ms()) {
      run_for(at_ms - clk.now_ms(), std::move(beating));
    }
  }

  member_state state_of(member_id id) {
    auto slot = parts.reg->find(id);
    REQUIRE(slot);
    return slot->state.load();
  }

  std::int64_t last_seen(member_id id) {
    auto slot = parts.reg->find(id);
    REQUIRE(slot);
    return slot->last_seen_ms.load();
  }

  template <class State>
  State& peek(const caf::actor& a) {
    return test::peek<State>(a);
  }

  // -- admin requests -------------------------------------------------------

  /// Sends xs to dest as a request and runs the scheduler until the answer.
  template <class T, class... Ts>
  reply<T> ask(const caf::actor& dest, Ts... xs) {
    auto out = std::make_shared<reply<T>>();
    // The target as an argument: a spawn with no argument trips UBSan
    // inside CAF (see engine_actors_test.cpp).
    sys.spawn(
      [out, xs...](caf::event_based_actor* self, caf::actor to) {
        self->request(to, caf::infinite, xs...)
          .then(
            [=](T& v) {
              out->answered = true;
              out->value = std::move(v);
            },
            [=](caf::error& e) {
              out->answered = true;
              out->failure = control_impl::to_failure(self->system(), e);
            });
      },
      dest);
    sched.run();
    REQUIRE(out->answered);
    return *out;
  }

  caf::actor pool_actor(const std::string& name) {
    auto r = ask<caf::actor>(h.supervisor, pool_atom_v, name);
    REQUIRE(r.ok());
    return *r.value;
  }

  reply<pool_summary> create_pool(pool_config pc) {
    return ask<pool_summary>(h.supervisor, create_pool_atom_v, std::move(pc));
  }

  reply<enrollment_ticket> add_member(const std::string& pool,
                                      const new_member& nm) {
    return ask<enrollment_ticket>(h.supervisor, add_member_atom_v, pool, nm);
  }

  reply<enrollment_grant> enroll(const std::string& hostname,
                                 const std::string& secret,
                                 const std::string& source = local_ip) {
    return ask<enrollment_grant>(h.supervisor, enroll_atom_v, hostname, secret,
                                 source);
  }

  reply<bool> remove_member(const std::string& pool, member_id m,
                            bool force = false) {
    return ask<bool>(h.supervisor, remove_member_atom_v, pool, m, force);
  }

  reply<bool> delete_pool(const std::string& pool, bool force) {
    return ask<bool>(h.supervisor, delete_pool_atom_v, pool, force);
  }

  reply<pool_summary> settings(const std::string& pool, const std::string& patch) {
    return ask<pool_summary>(pool_actor(pool), settings_atom_v, patch);
  }

  pool_summary summary(const std::string& pool) {
    auto r = ask<pool_summary>(pool_actor(pool), summary_atom_v);
    REQUIRE(r.ok());
    return *r.value;
  }

  member_info info(const std::string& pool, member_id m) {
    auto r = ask<member_info>(pool_actor(pool), member_atom_v, m);
    REQUIRE(r.ok());
    return *r.value;
  }

  std::vector<caf::actor> pools() {
    auto r = ask<std::vector<caf::actor>>(h.supervisor, pools_atom_v);
    REQUIRE(r.ok());
    return *r.value;
  }

  /// Stores the key a grant carries as the member's heartbeat key.
  protocol::key take_key(const enrollment_grant& g) {
    protocol::key k{};
    REQUIRE(protocol::key_from_hex(g.key_hex, k));
    keys[g.member] = k;
    return k;
  }

  /// Adds a server to pool and enrols its agent; returns its id.
  member_id add_enrolled(const std::string& pool, const std::string& hostname) {
    auto t = add_member(pool, server(hostname));
    CAPTURE(t.failure.code, t.failure.message);
    REQUIRE(t.ok());
    auto g = enroll(hostname, t.value->secret);
    CAPTURE(g.failure.code, g.failure.message);
    REQUIRE(g.ok());
    take_key(*g.value);
    return g.value->member;
  }

  /// A pool created through the API with n enrolled servers, all heard
  /// and healthy; the first one added is the active member.
  std::vector<member_id> api_pool(const std::string& name, int n,
                                  int failover_delay_s = 10) {
    auto c = create_pool(api_pool_config(name, failover_delay_s));
    CAPTURE(c.failure.code, c.failure.message);
    REQUIRE(c.ok());
    std::vector<member_id> ids;
    for (int i = 1; i <= n; ++i) {
      ids.push_back(add_enrolled(name, "srv" + std::to_string(i) + "." + name +
                                         ".example.test"));
    }
    run_for(3000, ids);
    for (auto id : ids) {
      REQUIRE(state_of(id) == member_state::healthy);
    }
    return ids;
  }

  std::vector<pool_decision> executed() {
    return peek<dns_router_state>(h.dns).executed;
  }
};

bool contains(const std::vector<caf::actor>& xs, const caf::actor& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

} // namespace

// -- pools and members created at run time -------------------------------------

TEST_CASE("a member added to a pool created at run time is pending and "
          "unverified until its agent enrols, then detected as usual",
          "[admin][actors]") {
  fixture f;
  auto created = f.create_pool(api_pool_config("web"));
  REQUIRE(created.ok());
  CHECK(created.value->id == "web");
  CHECK(created.value->name == "web pool");
  CHECK(created.value->from_api);
  CHECK(created.value->members == 0);
  CHECK(created.value->failover_delay_s == 10);
  CHECK(f.create_pool(api_pool_config("web")).failure.code == "pool_exists");

  auto t = f.add_member("web", server("web1.example.test"));
  REQUIRE(t.ok());
  const auto id = t.value->member.id;
  CHECK(id != 0);
  CHECK(t.value->pool == "web");
  CHECK(t.value->secret.size() == 48);
  CHECK(t.value->member.state == member_state::pending);
  CHECK_FALSE(t.value->member.enrolled);
  CHECK(t.value->member.hostname == "web1.example.test");
  CHECK(t.value->member.linux_family == "debian");
  CHECK(t.value->member.allowed_ips == std::vector<std::string>{local_ip});
  CHECK(f.summary("web").members == 1);
  CHECK(f.add_member("web", server("web1.example.test")).failure.code ==
        "hostname_exists");
  CHECK(f.add_member("nope", server("x.example.test")).failure.code ==
        "pool_not_found");

  // Nobody holds the member's key yet: no heartbeat verifies, whatever the
  // agent signs with, and the member stays pending.
  CHECK(f.send_beat(id, key_for(id)).reason == protocol::reject_reason::bad_tag);
  CHECK(f.send_beat(id, protocol::key{}).reason == protocol::reject_reason::bad_tag);
  f.run_for(15'000, {});
  CHECK(f.state_of(id) == member_state::pending);
  CHECK_FALSE(f.info("web", id).enrolled);

  auto g = f.enroll("web1.example.test", t.value->secret);
  REQUIRE(g.ok());
  CHECK(g.value->member == id);
  CHECK(g.value->pool == "web");
  auto key = f.take_key(*g.value);
  CHECK(f.info("web", id).enrolled);
  CHECK(f.state_of(id) == member_state::pending); // enrolled, not yet heard
  // The agent's first heartbeat with its key: heard, healthy.
  f.beat(id);
  CHECK(f.state_of(id) == member_state::healthy);
  CHECK(f.info("web", id).active); // the pool's first member is its active one
  // The store holds the member with the key it was granted.
  auto stored = f.st->load_pools();
  auto p = std::find_if(stored.begin(), stored.end(),
                        [](const pool_config& c) { return c.name == "web"; });
  REQUIRE(p != stored.end());
  REQUIRE(p->members.size() == 1);
  CHECK(p->members[0].id == id);
  CHECK(p->members[0].enrolled);
  CHECK(p->members[0].key == key);

  // A second server, added and enrolled the same way; the first goes silent
  // and is failed over to it after the failover delay.
  auto id2 = f.add_enrolled("web", "web2.example.test");
  f.run_for(3000, {id, id2});
  REQUIRE(f.state_of(id2) == member_state::healthy);
  f.run_for(6000, {id2});
  CHECK(f.state_of(id) == member_state::suspect);
  CHECK(f.executed().empty());
  f.run_for(5000, {id2});
  CHECK(f.state_of(id) == member_state::down);
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].pool == "web");
  CHECK(ex[0].kind == decision_kind::failover);
  CHECK(ex[0].from == id);
  CHECK(ex[0].to == id2);
  CHECK(f.st->active_member("web") == std::optional<member_id>{id2});
}

// -- enrollment ---------------------------------------------------------------

TEST_CASE("an enrollment secret is checked against hostname and source, "
          "and works once",
          "[admin][actors]") {
  fixture f;
  REQUIRE(f.create_pool(api_pool_config("web")).ok());
  auto t = f.add_member("web", server("web1.example.test"));
  REQUIRE(t.ok());
  const auto secret = t.value->secret;

  auto wrong_host = f.enroll("web9.example.test", secret);
  CHECK(wrong_host.failure.code == "enrollment_hostname_mismatch");
  CHECK(wrong_host.failure.field == "hostname");
  auto wrong_source = f.enroll("web1.example.test", secret, "192.0.2.7");
  CHECK(wrong_source.failure.code == "enrollment_source_not_allowed");
  auto bad_source = f.enroll("web1.example.test", secret, "not-an-ip");
  CHECK(bad_source.failure.code == "enrollment_source_not_allowed");
  auto unknown = f.enroll("web1.example.test", std::string(48, '0'));
  CHECK(unknown.failure.code == "enrollment_invalid");
  CHECK(unknown.failure.field == "secret");

  // Refusals did not use the secret up.
  auto g = f.enroll("web1.example.test", secret);
  REQUIRE(g.ok());
  CHECK(g.value->key_hex.size() == 64);
  f.take_key(*g.value);

  // Asked again by the same source within two minutes (an agent whose
  // answer was lost): the same key, never a second one.
  auto again = f.enroll("web1.example.test", secret);
  REQUIRE(again.ok());
  CHECK(again.value->key_hex == g.value->key_hex);
  // After that the secret is spent for good.
  f.clk.advance(121'000);
  auto late = f.enroll("web1.example.test", secret);
  CHECK(late.failure.code == "enrollment_invalid");
  CHECK(late.failure.field == "secret");
}

TEST_CASE("re-enrolment replaces the member's key: the old key stops "
          "verifying and the new one verifies",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("web", 2);
  const auto id = ids[1];
  const auto old_key = f.keys.at(id);
  const std::string host = "srv2.web.example.test";

  auto r1 = f.ask<enrollment_ticket>(f.h.supervisor, reenrol_atom_v,
                                     std::string("web"), id);
  REQUIRE(r1.ok());
  CHECK(r1.value->member.id == id);
  CHECK(r1.value->member.enrolled);
  // A second re-enrolment replaces the first one's unused secret.
  auto r2 = f.ask<enrollment_ticket>(f.h.supervisor, reenrol_atom_v,
                                     std::string("web"), id);
  REQUIRE(r2.ok());
  CHECK(r2.value->secret != r1.value->secret);
  CHECK(f.enroll(host, r1.value->secret).failure.code == "enrollment_invalid");

  auto g = f.enroll(host, r2.value->secret);
  REQUIRE(g.ok());
  CHECK(g.value->member == id);
  auto new_key = f.take_key(*g.value);
  CHECK(new_key != old_key);
  CHECK(f.send_beat(id, old_key).reason == protocol::reject_reason::bad_tag);
  CHECK(f.send_beat(id, new_key).ok);
  // Heartbeats with the new key keep it healthy past the failover delay.
  f.run_for(15'000, ids);
  CHECK(f.state_of(id) == member_state::healthy);
  f.clk.advance(121'000);
  CHECK(f.enroll(host, r2.value->secret).failure.code == "enrollment_invalid");
  // An unknown member cannot be re-enrolled.
  CHECK(f.ask<enrollment_ticket>(f.h.supervisor, reenrol_atom_v,
                                 std::string("web"), member_id{999})
          .failure.code == "member_not_found");
}

// -- removing members ---------------------------------------------------------

TEST_CASE("removing the active member moves the pool's active member to a "
          "healthy one and records the failover",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("a", 3);
  auto [m1, m2, m3] = std::tie(ids[0], ids[1], ids[2]);
  REQUIRE(f.summary("a").active == m1);
  auto rt = f.peek<supervisor_state>(f.h.supervisor).runtimes.at("a");
  REQUIRE(rt->live_members.load() == 3);

  REQUIRE(f.remove_member("a", m1).ok());
  CHECK(f.summary("a").active == m2);
  CHECK(f.summary("a").members == 2);
  CHECK(f.info("a", m2).active);
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].kind == decision_kind::failover);
  CHECK(ex[0].from == m1);
  CHECK(ex[0].to == m2);
  auto ds = f.st->decisions("a", 10);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].decision.from == m1);
  CHECK(ds[0].decision.to == m2);
  CHECK(ds[0].status == "done");
  CHECK(f.st->active_member("a") == std::optional<member_id>{m2});

  // The removed member is gone: actor, registry slot, heartbeats.
  CHECK(rt->live_members.load() == 2);
  CHECK_FALSE(f.parts.reg->find(m1));
  CHECK(f.send_beat(m1, f.keys.at(m1)).reason ==
        protocol::reject_reason::unknown_member);
  CHECK(f.ask<member_info>(f.pool_actor("a"), member_atom_v, m1).failure.code ==
        "member_not_found");
  CHECK(f.remove_member("a", m1).failure.code == "member_not_found");

  // The new active member going silent fails over to the last one left.
  f.run_for(11'000, {m3});
  CHECK(f.state_of(m2) == member_state::down);
  ex = f.executed();
  REQUIRE(ex.size() == 2);
  CHECK(ex[1].from == m2);
  CHECK(ex[1].to == m3);
}

TEST_CASE("removing a standby leaves the active member alone, and the members "
          "after it are still detected",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("a", 4);
  auto [m1, m2, m3, m4] = std::tie(ids[0], ids[1], ids[2], ids[3]);

  REQUIRE(f.remove_member("a", m2).ok());
  CHECK(f.summary("a").active == m1);
  CHECK(f.executed().empty());
  CHECK(f.st->decisions("a", 10).empty());
  CHECK(f.send_beat(m2, f.keys.at(m2)).reason ==
        protocol::reject_reason::unknown_member);
  auto& ps = f.peek<pool_actor_state>(f.pool_actor("a"));
  CHECK(ps.policy->position_of(m3) == std::optional<std::uint32_t>{1});
  CHECK(ps.policy->position_of(m4) == std::optional<std::uint32_t>{2});
  CHECK(ps.deadlines.size() == 3);

  // The last member (shifted from position 3 to 2) goes silent: down, and
  // only it.
  f.run_for(11'000, {m1, m3});
  CHECK(f.state_of(m4) == member_state::down);
  CHECK(f.state_of(m1) == member_state::healthy);
  CHECK(f.state_of(m3) == member_state::healthy);
  CHECK(f.executed().empty()); // a standby, not the active member

  SECTION("removing the down member takes it out of the fleet guard") {
    auto& sup = f.peek<supervisor_state>(f.h.supervisor);
    REQUIRE(sup.fleet->silent_count() == 1);
    REQUIRE(sup.fleet->population() == 3);
    REQUIRE(f.remove_member("a", m4).ok());
    CHECK(sup.fleet->silent_count() == 0);
    CHECK(sup.fleet->population() == 2);
    CHECK(f.executed().empty());
  }

  SECTION("the active member going silent is failed over to m3, now second "
          "in order") {
    f.run_for(11'000, {m3});
    CHECK(f.state_of(m1) == member_state::down);
    auto ex = f.executed();
    REQUIRE(ex.size() == 1);
    CHECK(ex[0].from == m1);
    CHECK(ex[0].to == m3);
  }
}

TEST_CASE("the active member with no healthy standby is removed only by "
          "force, and DNS follows the first member to become healthy",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("a", 2);
  auto [m1, m2] = std::tie(ids[0], ids[1]);
  f.run_for(11'000, {m1});
  REQUIRE(f.state_of(m2) == member_state::down);
  REQUIRE(f.executed().empty());

  auto refused = f.remove_member("a", m1);
  CHECK(refused.failure.code == "active_member_no_standby");
  CHECK(refused.failure.field == "force");
  CHECK(f.summary("a").members == 2);
  CHECK(f.parts.reg->find(m1));

  REQUIRE(f.remove_member("a", m1, true).ok());
  CHECK(f.executed().empty()); // nobody healthy to move DNS to
  CHECK_FALSE(f.parts.reg->find(m1));
  // m2 comes back and is healthy after recovery_stable_s: DNS, still on
  // the removed m1, must now move to it.
  f.run_for(12'000, {m2});
  REQUIRE(f.state_of(m2) == member_state::healthy);
  CHECK(f.summary("a").active == m2);
  auto ex = f.executed();
  CHECK(ex.size() == 1);
  CHECK(std::any_of(ex.begin(), ex.end(), [&](const pool_decision& d) {
    return moves_dns(d.kind) && d.to == m2;
  }));
  CHECK(f.st->active_member("a") == std::optional<member_id>{m2});
}

TEST_CASE("a removed member's open enrollment no longer works",
          "[admin][actors]") {
  fixture f;
  f.api_pool("web", 1);
  auto t = f.add_member("web", server("web2.example.test"));
  REQUIRE(t.ok());
  auto removed = f.remove_member("web", t.value->member.id);
  CAPTURE(removed.failure.code, removed.failure.message);
  REQUIRE(removed.ok());
  CHECK(f.enroll("web2.example.test", t.value->secret).failure.code ==
        "enrollment_invalid");
  CHECK_FALSE(f.parts.reg->find(t.value->member.id));
}

// -- settings -----------------------------------------------------------------

TEST_CASE("a shorter failover delay applies without restart",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("s", 3, 60);
  const auto m3 = ids[2]; // a standby: no failover noise
  // m3 goes silent; the others keep heartbeating.
  f.run_for(1000, {ids[0], ids[1]});
  const auto silent_since = f.last_seen(m3);

  SECTION("under the old delay of 60 s, 20.5 s of silence is not down") {
    f.run_until(silent_since + 20'500, {ids[0], ids[1]});
    CHECK(f.state_of(m3) == member_state::healthy);
  }

  SECTION("changed to 20 s while silent for 15 s: suspect at once, down at "
          "20 s") {
    f.run_until(silent_since + 15'000, {ids[0], ids[1]});
    REQUIRE(f.state_of(m3) == member_state::healthy);
    auto s = f.settings("s", R"({"failover_delay_s": 20})");
    CAPTURE(s.failure.code, s.failure.field, s.failure.message);
    REQUIRE(s.ok());
    CHECK(s.value->failover_delay_s == 20);
    CHECK(f.summary("s").failover_delay_s == 20);
    // Evaluated at once under the new rules: suspect after 50 % of 20 s.
    CHECK(f.state_of(m3) == member_state::suspect);
    f.run_until(silent_since + 19'500, {ids[0], ids[1]});
    CHECK(f.state_of(m3) == member_state::suspect);
    f.run_until(silent_since + 20'500, {ids[0], ids[1]});
    CHECK(f.state_of(m3) == member_state::down);
    // The store keeps the new delay for the next start.
    auto stored = f.st->load_pools();
    auto p = std::find_if(stored.begin(), stored.end(),
                          [](const pool_config& c) { return c.name == "s"; });
    REQUIRE(p != stored.end());
    CHECK(p->failover_delay_s == 20);
  }

  SECTION("changed to 20 s, a member that goes silent afterwards is down "
          "20 s later") {
    f.run_for(1000, ids); // m3 back
    REQUIRE(f.state_of(m3) == member_state::healthy);
    REQUIRE(f.settings("s", R"({"failover_delay_s": 20})").ok());
    f.run_for(1000, ids);
    auto since = f.last_seen(ids[1]);
    f.run_until(since + 19'500, {ids[0], ids[2]});
    CHECK(f.state_of(ids[1]) == member_state::suspect);
    f.run_until(since + 20'500, {ids[0], ids[2]});
    CHECK(f.state_of(ids[1]) == member_state::down);
  }
}

TEST_CASE("an invalid settings patch is refused with its field and changes "
          "nothing",
          "[admin][actors]") {
  std::string patch, code, field;
  std::tie(patch, code, field) =
    GENERATE(table<std::string, std::string, std::string>({
      {R"({"failover_delay_s": 5})", "invalid_field", "failover_delay_s"},
      {R"({"failover_delay_s": "20"})", "invalid_field", "failover_delay_s"},
      {R"({"failover_delay_s": 20, "colour": "red"})", "unknown_field", "colour"},
      {R"({"failover_delay_s": 20, "failback": "sometimes"})", "invalid_field",
       "failback"},
      {R"(not json)", "invalid_field", ""},
    }));
  CAPTURE(patch);
  fixture f;
  auto ids = f.api_pool("s", 3, 60);
  auto r = f.settings("s", patch);
  CHECK_FALSE(r.ok());
  CHECK(r.failure.code == code);
  CHECK(r.failure.field == field);
  auto s = f.summary("s");
  CHECK(s.failover_delay_s == 60);
  CHECK(s.failback == "manual");
  // Detection unchanged too: 20.5 s of silence is nothing under 60 s.
  f.run_for(1000, {ids[0], ids[1]});
  auto since = f.last_seen(ids[2]);
  f.run_until(since + 20'500, {ids[0], ids[1]});
  CHECK(f.state_of(ids[2]) == member_state::healthy);
}

// -- deleting pools -----------------------------------------------------------

TEST_CASE("deleting a pool waits for its DNS changes in flight unless forced",
          "[admin][actors]") {
  fixture f({}, true);
  auto ids = f.api_pool("a", 2);
  auto other = f.api_pool("b", 1);
  // An unenrolled server too: its enrollment must go with the pool.
  auto pending = f.add_member("a", server("late.a.example.test"));
  REQUIRE(pending.ok());
  auto old_pool = f.pool_actor("a");
  auto rt = f.peek<supervisor_state>(f.h.supervisor).runtimes.at("a");

  // The active member goes silent: the failover goes to a DNS executor that
  // does not answer.
  f.run_for(11'000, {ids[1], other[0]});
  auto& dns = f.peek<stalled_dns_state>(f.h.dns);
  REQUIRE(dns.asked.size() == 1);
  REQUIRE(dns.asked[0].to == ids[1]);
  CHECK(f.peek<pool_actor_state>(old_pool).in_flight == 1);

  auto refused = f.delete_pool("a", false);
  CHECK(refused.failure.code == "failover_in_flight");
  CHECK(refused.failure.field == "force");
  CHECK(contains(f.pools(), old_pool));
  CHECK(f.parts.reg->find(ids[0]));

  SECTION("forced") {
    auto deleted = f.delete_pool("a", true);
    CAPTURE(deleted.failure.code, deleted.failure.message);
    REQUIRE(deleted.ok());
  }
  SECTION("after the DNS executor answers") {
    caf::anon_send(f.h.dns, caf::ok_atom_v);
    f.sched.run();
    CHECK(f.peek<pool_actor_state>(old_pool).in_flight == 0);
    auto deleted = f.delete_pool("a", false);
    CAPTURE(deleted.failure.code, deleted.failure.message);
    REQUIRE(deleted.ok());
  }
  auto ps = f.pools();
  CHECK_FALSE(contains(ps, old_pool));
  CHECK(contains(ps, f.pool_actor("b")));
  CHECK(ps.size() == 1);
  CHECK(f.ask<caf::actor>(f.h.supervisor, pool_atom_v, std::string("a"))
          .failure.code == "pool_not_found");
  CHECK(f.delete_pool("a", true).failure.code == "pool_not_found");
  // Its members left the registry, their actors stopped, their heartbeats
  // and enrollments are refused.
  for (auto id : ids) {
    CHECK_FALSE(f.parts.reg->find(id));
    CHECK(f.send_beat(id, f.keys.at(id)).reason ==
          protocol::reject_reason::unknown_member);
  }
  CHECK_FALSE(f.parts.reg->find(pending.value->member.id));
  CHECK(rt->live_members.load() == 0);
  // The fleet guard forgot the pool's members (ids[0] was down).
  auto& sup = f.peek<supervisor_state>(f.h.supervisor);
  CHECK(sup.fleet->silent_count() == 0);
  CHECK(sup.fleet->population() == 1);
  CHECK(f.enroll("late.a.example.test", pending.value->secret).failure.code ==
        "enrollment_invalid");
  auto stored = f.st->load_pools();
  CHECK(std::none_of(stored.begin(), stored.end(),
                     [](const pool_config& c) { return c.name == "a"; }));
  // The other pool never noticed.
  f.run_for(2000, other);
  CHECK(f.state_of(other[0]) == member_state::healthy);
  // The id is free again: a new, empty pool of that name.
  auto again = f.create_pool(api_pool_config("a"));
  REQUIRE(again.ok());
  CHECK(again.value->members == 0);
}

TEST_CASE("a pool declared in the config file refuses delete, rename, "
          "settings and member changes",
          "[admin][actors]") {
  fixture f({make_pool("cfg", {1, 2})});
  f.run_for(3000, {1, 2});
  auto pool = f.pool_actor("cfg");
  auto before = f.summary("cfg");
  CHECK_FALSE(before.from_api);

  CHECK(f.delete_pool("cfg", false).failure.code == "pool_managed_by_config");
  CHECK(f.delete_pool("cfg", true).failure.code == "pool_managed_by_config");
  CHECK(f.ask<pool_summary>(pool, rename_atom_v, std::string("Renamed"))
          .failure.code == "pool_managed_by_config");
  CHECK(f.settings("cfg", R"({"failover_delay_s": 20})").failure.code ==
        "pool_managed_by_config");
  CHECK(f.add_member("cfg", server("node3.example.test")).failure.code ==
        "pool_managed_by_config");
  CHECK(f.remove_member("cfg", 2).failure.code == "pool_managed_by_config");
  CHECK(f.ask<enrollment_ticket>(f.h.supervisor, reenrol_atom_v,
                                 std::string("cfg"), member_id{1})
          .failure.code == "pool_managed_by_config");

  auto after = f.summary("cfg");
  CHECK(after.name == before.name);
  CHECK(after.members == 2);
  CHECK(after.failover_delay_s == 10);
  CHECK(f.pool_actor("cfg") == pool);
  CHECK(contains(f.pools(), pool));
  // Still detecting under its configured delay.
  f.run_for(11'000, {1});
  CHECK(f.state_of(2) == member_state::down);
}

TEST_CASE("a pool deleted by force with a DNS change in flight leaves the "
          "store startable",
          "[admin][actors]") {
  fixture f({}, true);
  auto ids = f.api_pool("a", 2);
  f.run_for(11'000, {ids[1]});
  REQUIRE(f.peek<stalled_dns_state>(f.h.dns).asked.size() == 1);
  REQUIRE(f.delete_pool("a", true).ok());
  // What balctld does at its next start, before bootstrap: adopt the
  // decisions recorded but never confirmed. The pool they belong to is gone.
  auto pending = f.st->pending_decisions();
  CHECK(std::none_of(pending.begin(), pending.end(), [](const decision_record& r) {
    return r.decision.pool == "a";
  }));
  CHECK_NOTHROW(adopt_pending_decisions(*f.st));
  engine_config restart_cfg;
  CHECK_NOTHROW(bootstrap(restart_cfg, *f.st, f.clk.now_ms()));
}

TEST_CASE("a pool restarted after members were added and removed at run time "
          "keeps its members and detects them",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("a", 3);
  REQUIRE(f.remove_member("a", ids[1]).ok());
  auto old_pool = f.pool_actor("a");
  caf::anon_send_exit(old_pool, caf::exit_reason::kill);
  f.sched.run();
  f.run_for(1000, {ids[0], ids[2]});
  auto new_pool = f.pool_actor("a");
  CHECK(new_pool != old_pool);
  CHECK(f.metrics.actor_restarts.load() == 1);
  auto s = f.summary("a");
  CHECK(s.members == 2);
  CHECK(s.active == ids[0]);
  CHECK(f.info("a", ids[2]).enrolled);
  CHECK(f.ask<member_info>(new_pool, member_atom_v, ids[1]).failure.code ==
        "member_not_found");
  // Still detected: the active member goes silent and is failed over.
  f.run_for(11'000, {ids[2]});
  CHECK(f.state_of(ids[0]) == member_state::down);
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].to == ids[2]);
}

namespace {
template <class T, class... Ts>
std::shared_ptr<reply<T>> ask_async(fixture& f, const caf::actor& dest, Ts... xs) {
  auto out = std::make_shared<reply<T>>();
  f.sys.spawn(
    [out, xs...](caf::event_based_actor* self, caf::actor to) {
      self->request(to, caf::infinite, xs...)
        .then([=](T& v) { out->answered = true; out->value = std::move(v); },
              [=](caf::error& e) {
                out->answered = true;
                out->failure = control_impl::to_failure(self->system(), e);
              });
    },
    dest);
  return out;
}
} // namespace


TEST_CASE("a forced removal of the active member with two down standbys moves DNS once",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("a", 3);
  auto [m1, m2, m3] = std::tie(ids[0], ids[1], ids[2]);
  f.run_for(11'000, {m1});
  REQUIRE(f.state_of(m2) == member_state::down);
  REQUIRE(f.state_of(m3) == member_state::down);
  REQUIRE(f.executed().empty());
  REQUIRE(f.remove_member("a", m1, true).ok());
  f.run_for(12'000, {m3});
  REQUIRE(f.state_of(m3) == member_state::healthy);
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].from == m1); // from where DNS really pointed
  CHECK(ex[0].to == m3);
}

TEST_CASE("DNS left on a removed active member still moves after the pool restarts",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("a", 2);
  auto [m1, m2] = std::tie(ids[0], ids[1]);
  f.run_for(11'000, {m1});
  REQUIRE(f.state_of(m2) == member_state::down);
  REQUIRE(f.remove_member("a", m1, true).ok());
  f.sched.run();
  CHECK(f.st->active_member("a").value_or(0) == m1);
  caf::anon_send_exit(f.pool_actor("a"), caf::exit_reason::kill);
  f.sched.run();
  f.run_for(12'000, {m2});
  REQUIRE(f.state_of(m2) == member_state::healthy);
  auto ex = f.executed();
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].from == m1);
  CHECK(ex[0].to == m2);
}

TEST_CASE("two removals at once cannot each count the other as the standby",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("a", 2);
  auto [m1, m2] = std::tie(ids[0], ids[1]);
  REQUIRE(f.summary("a").active == m1);
  auto r2 = ask_async<bool>(f, f.h.supervisor, remove_member_atom_v, std::string("a"), m2, false);
  auto r1 = ask_async<bool>(f, f.h.supervisor, remove_member_atom_v, std::string("a"), m1, false);
  f.sched.run();
  REQUIRE(r1->answered);
  REQUIRE(r2->answered);
  CHECK(r2->ok());
  CHECK(r1->failure.code == "pool_busy");
  CHECK(f.summary("a").active == m1);
}

TEST_CASE("a pool delete waits until its pending store writes are answered",
          "[admin][actors]") {
  fixture f;
  auto ids = f.api_pool("a", 2);
  auto add = ask_async<enrollment_ticket>(f, f.h.supervisor, add_member_atom_v,
                                          std::string("a"), server("new.a.example.test"));
  auto rm = ask_async<bool>(f, f.h.supervisor, remove_member_atom_v, std::string("a"),
                            ids[1], false);
  auto ren = ask_async<pool_summary>(f, f.pool_actor("a"), rename_atom_v, std::string("New"));
  auto del = ask_async<bool>(f, f.h.supervisor, delete_pool_atom_v, std::string("a"), true);
  f.sched.run();
  // Every request is answered; the delete either came after them or was
  // refused as busy (then a retry deletes).
  CHECK(add->answered);
  CHECK(rm->answered);
  CHECK(ren->answered);
  REQUIRE(del->answered);
  if (!del->ok()) {
    CHECK(del->failure.code == "pool_busy");
    CHECK(f.delete_pool("a", true).ok());
  }
}

TEST_CASE("an agent asking again while its enrollment is being stored gets the same key",
          "[admin][actors]") {
  fixture f;
  REQUIRE(f.create_pool(api_pool_config("a")).ok());
  auto t = f.add_member("a", server("x.a.example.test"));
  REQUIRE(t.ok());
  auto e1 = ask_async<enrollment_grant>(f, f.h.supervisor, enroll_atom_v,
                                        std::string("x.a.example.test"), t.value->secret, local_ip);
  auto e2 = ask_async<enrollment_grant>(f, f.h.supervisor, enroll_atom_v,
                                        std::string("x.a.example.test"), t.value->secret, local_ip);
  f.sched.run();
  REQUIRE(e1->ok());
  REQUIRE(e2->ok());
  CHECK(e2->value->key_hex == e1->value->key_hex);
  // From another source it is refused, not answered with the key.
  auto other = f.enroll("x.a.example.test", t.value->secret, "192.0.2.99");
  CHECK_FALSE(other.ok());
}
