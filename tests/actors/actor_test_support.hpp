#pragma once

// Shared by the actor tests: the deterministic scheduler's config, members'
// test keys and config pools, and a look into an actor's state.

#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/engine.hpp"
#include "config/config.hpp"
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

} // namespace balctl::test
