#pragma once

// Shared by the actor tests: the deterministic scheduler's config, members'
// test keys and config pools, and a look into an actor's state.

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/engine.hpp"
#include "adapters/store/store.hpp"
#include "config/config.hpp"
#include "engine/bootstrap.hpp"
#include "engine/clock.hpp"
#include "transport/protocol.hpp"

namespace balctl::test {

/// A member's key in these tests: its id in every byte.
inline protocol::key key_for(member_id id) {
  protocol::key k{};
  k.fill(static_cast<std::uint8_t>(id));
  return k;
}

/// A config-file pool with failover delay 10 s; member i is node<i>,
/// allowed from 127.0.0.1 with key_for(i).
inline pool_config make_pool(const std::string& name, std::vector<member_id> ids) {
  pool_config p;
  p.name = name;
  p.failover_delay_s = 10;
  for (auto id : ids) {
    member_config m;
    m.id = id;
    m.name = "node" + std::to_string(id);
    m.hostname = m.name + ".example.test";
    m.key = key_for(id);
    m.allowed_ips = {"127.0.0.1"};
    p.members.push_back(m);
  }
  return p;
}

/// The project's message types on CAF's test scheduler, logger quiet.
inline caf::actor_system_config& testing_config(caf::actor_system_config& cfg) {
  configure_actor_system(cfg);
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.file-verbosity", caf::atom("quiet"));
  return cfg;
}

/// The state of a stateful actor, read on the test scheduler's thread.
template <class State>
State& peek(const caf::actor& a) {
  auto ptr = caf::actor_cast<caf::abstract_actor*>(a);
  return dynamic_cast<caf::stateful_actor<State>*>(ptr)->state;
}

/// The whole engine (spawn_engine) on the deterministic scheduler over an
/// in-memory SQLite store, with a manual clock the test moves together with
/// the scheduler's, and heartbeats fed through the real ingest.
struct engine_rig {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  manual_clock clk;
  engine_metrics metrics;
  engine_config ecfg;
  std::shared_ptr<store> st;
  engine_parts parts;
  std::unique_ptr<ingest> in;
  engine_handles h;
  std::unordered_map<member_id, std::uint64_t> seq;

  /// Spawns the actors in place of spawn_engine (a test that wires one of
  /// them itself).
  using spawner = std::function<engine_handles(engine_rig&)>;

  /// tweak: changes the engine config; seed: state an earlier run of the
  /// engine left in the store (the pools are put first).
  explicit engine_rig(std::vector<pool_config> pools,
                      std::function<void(engine_config&)> tweak = {},
                      std::function<void(store&)> seed = {}, protection_deps protection = {},
                      spawner spawn = {})
    : sys(testing_config(cfg)),
      sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    ecfg.pools = std::move(pools);
    ecfg.snapshot_interval_s = 3600;
    if (tweak) {
      tweak(ecfg);
    }
    st = open_sqlite_store(":memory:");
    if (seed) {
      for (const auto& p : ecfg.pools) {
        st->put_pool(p);
      }
      seed(*st);
    }
    parts = bootstrap(ecfg, *st, clk.now_ms());
    in = std::make_unique<ingest>(*parts.reg, 30'000);
    h = spawn ? spawn(*this)
              : spawn_engine(sys, ecfg, parts, st, &clk, &metrics, false, {},
                             std::move(protection));
    sched.run();
  }

  ~engine_rig() {
    caf::anon_send_exit(h.supervisor, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(h.dns, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(h.store, caf::exit_reason::user_shutdown);
    sched.run();
  }
  engine_rig(const engine_rig&) = delete;
  engine_rig& operator=(const engine_rig&) = delete;

  /// One heartbeat of member id (key_for(id), from 127.0.0.1) with an
  /// optional status body, then every message it caused.
  accept_result send_beat(member_id id, const std::string& body = {}) {
    std::uint8_t buf[protocol::max_datagram_size];
    protocol::header hdr;
    hdr.member = id;
    hdr.seq = ++seq[id];
    hdr.timestamp_ms = clk.now_ms();
    auto n = protocol::encode(buf, sizeof buf, hdr, body, key_for(id));
    ip_address src;
    ip_address::parse("127.0.0.1", src);
    auto r = in->accept(buf, n, src, clk.now_ms());
    sched.run();
    return r;
  }

  /// Both clocks forward by ms, firing due timers and running every message.
  void tick(std::int64_t ms = 10) {
    clk.advance(ms);
    sched.advance_time(std::chrono::milliseconds(ms));
    sched.run();
  }
};

} // namespace balctl::test
