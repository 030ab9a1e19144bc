#pragma once

// What a pool or member actor must not lose when it crashes. The supervisor
// owns one pool_runtime per pool; a restarted pool (or member) actor picks up
// from it, so "restarted from its last state" needs no store round trip.
// Each object is written only by the actor that currently owns it.

#include <memory>
#include <vector>

#include "config/config.hpp"
#include "engine/member_fsm.hpp"
#include "engine/pool_policy.hpp"
#include "engine/registry.hpp"

namespace balctl {

struct member_runtime {
  member_runtime(std::shared_ptr<member_slot> s, member_fsm f)
    : slot(std::move(s)), fsm(std::move(f)) {}
  std::shared_ptr<member_slot> slot;
  member_fsm fsm;
  // Latest status body (stacks, metrics), when the agent sent one.
  bool has_status = false;
  member_status status;
};

struct pool_runtime {
  pool_config config;
  detection_params detection;
  pool_params policy;
  member_id active = 0; // 0 until decided: the primary
  // members[i] belongs to config.members[i].
  std::vector<std::shared_ptr<member_runtime>> members;
};

/// Detection and policy parameters of one pool, from the engine config.
detection_params make_detection_params(const engine_config& e,
                                       const pool_config& p);
pool_params make_pool_params(const pool_config& p);

} // namespace balctl
