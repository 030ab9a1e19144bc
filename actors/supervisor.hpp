#pragma once

// Supervisor: root of the actor tree. Spawns one pool actor per pool,
// monitored (never linked: see supervisor.cpp): a crashed pool is logged and restarted from its
// pool_runtime; other pools never notice. Also owns the fleet-wide
// mass-silence guard and the periodic member-state checkpoint.

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/messages.hpp"
#include "actors/protection.hpp"
#include "engine/clock.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"
#include "engine/silence_guard.hpp"

namespace balctl {

struct supervisor_deps {
  std::shared_ptr<registry> reg;
  caf::actor store;
  caf::actor dns;
  const clock* clk = nullptr;
  engine_metrics* metrics = nullptr;
  silence_params fleet_silence;
  std::int64_t checkpoint_interval_ms = 30'000; // 0 = no checkpoints
  std::shared_ptr<const engine_config> engine;  // without pools
  std::vector<enrollment_record> enrollments;   // open at start-up
  // Cluster (several nodes, one Redis): no pool runs here until the
  // cluster actor hands it over (own_atom) with its lease; what this node
  // hears of other nodes' pools is forwarded to their owners.
  bool cluster = false;
  std::int64_t forward_interval_ms = 250;
  std::int64_t takeover_grace_ms = 0; // 0 = each pool's failover delay
  // What each pool's protection actor gets (jobs, replication).
  std::shared_ptr<const protection_deps> protection;
};

struct recent_grant {
  enrollment_grant grant;
  std::string source; // only the source that enrolled may ask again
  std::int64_t until_ms = 0;
};

/// An enrollment being stored, and agents that asked again meanwhile.
struct enrolling_now {
  std::string source;
  std::vector<caf::response_promise> waiting;
};

struct supervisor_state {
  supervisor_deps deps;
  std::unordered_map<std::string, std::shared_ptr<pool_runtime>> runtimes;
  std::unordered_map<std::string, caf::actor> pools;
  std::unordered_map<caf::actor_addr, std::string> pool_by_addr;
  std::unordered_map<std::string, std::size_t> population;
  std::unique_ptr<silence_guard> fleet;
  std::int64_t armed_ms = 0; // pending fleet-guard timer, 0 = none
  // Open enrollments by the hex SHA-256 of their secret, and which one each
  // member has. Enrolment goes through this actor only, so a secret is
  // used once even when two agents present it at the same time.
  std::unordered_map<std::string, enrollment_record> enrollments;
  std::unordered_map<member_id, std::string> enrollment_of;
  std::unordered_set<std::string> creating; // pool ids being created
  // Grants of the last minutes by secret hash: an agent that lost the
  // answer may ask again with the same secret and gets the same key.
  std::unordered_map<std::string, recent_grant> recent_grants;
  std::unordered_map<member_id, std::string> grant_of; // member → its grant's hash
  std::size_t grants_sweep_at = 64;
  std::unordered_map<std::string, enrolling_now> enrolling; // by secret hash
  // Cluster: the pools this node owns (their leases' tokens), those being
  // restored, and the owners' supervisors of the others.
  std::unordered_map<std::string, std::int64_t> owned;
  std::unordered_set<std::string> restoring;
  std::unordered_map<std::string, caf::actor> owner_of;
  std::int64_t forwarded_until_ms = 0; // start: nothing before it to forward
  // Per pool another node owns: heard after it, not yet forwarded (kept
  // while the pool is between owners, so its next owner hears all of it).
  std::unordered_map<std::string, std::int64_t> forwarded_until;
  static inline const char* name = "supervisor";
};

caf::behavior supervisor_actor(caf::stateful_actor<supervisor_state>* self,
                               std::vector<std::shared_ptr<pool_runtime>> pools,
                               supervisor_deps deps);

/// Checkpoint of every member's runtime state, read from the slots.
std::vector<member_state_record> snapshot_member_states(const registry& reg);

} // namespace balctl
