#pragma once

// Spawns the actor tree for a bootstrapped engine: store actor (detached),
// DNS executor, supervisor → pools → members. Used by balctld and by the
// actor tests, so both run the same wiring.

#include <memory>
#include <string>
#include <unordered_map>

#include "actors/messages.hpp"
#include "actors/supervisor.hpp"
#include "adapters/dns/dns_io.hpp"
#include "engine/bootstrap.hpp"
#include "engine/clock.hpp"
#include "engine/metrics.hpp"

namespace balctl {

struct engine_handles {
  caf::actor store;
  caf::actor dns; // the router (actors/dns_router): pools send decisions here
  caf::actor supervisor;
  std::shared_ptr<dns::dns_io> dns_io; // the executors' I/O loop
};

/// The supervisor's dependencies as the engine config sets them (tests that
/// spawn the supervisor with an executor of their own use it too).
supervisor_deps make_supervisor_deps(const engine_config& cfg,
                                     const engine_parts& parts, caf::actor store,
                                     caf::actor dns, const clock* clk,
                                     engine_metrics* metrics);

/// store_detached: false in tests that run on CAF's deterministic test
/// scheduler, which cannot drive detached actors.
/// enrollments: the open enrollments read from the store before start.
engine_handles spawn_engine(caf::actor_system& sys, const engine_config& cfg,
                            engine_parts& parts, std::shared_ptr<store> st,
                            const clock* clk, engine_metrics* metrics,
                            bool store_detached = true,
                            std::vector<enrollment_record> enrollments = {},
                            protection_deps protection = {});

/// Reads the decisions recorded but not confirmed before the last stop and
/// makes each DNS move's target the pool's active member in the store, so
/// bootstrap starts the pool where DNS is going. Call before bootstrap.
std::vector<decision_record> adopt_pending_decisions(store& st);

/// Finishes what the last run left (DESIGN.md principle 4): the journaled
/// DNS changes not yet confirmed go back to their executors (read them
/// with store::pending_dns_changes before bootstrap); decisions recorded
/// but not confirmed are marked "resumed": their pools point the failover
/// record at the active member as they start (pool.cpp), so a decision
/// whose change never reached the journal is carried out too.
void resume_pending_decisions(caf::actor_system& sys, const engine_handles& h,
                              const std::vector<decision_record>& pending,
                              const std::vector<dns_change_record>& changes = {});

void configure_actor_system(caf::actor_system_config& cfg);

/// Stops the tree in reverse start order: the supervisor and with it every
/// pool and member, then the DNS router and its executors, then the store once it has
/// written everything queued. Blocks until all are gone.
void shutdown_engine(caf::actor_system& sys, const engine_handles& h,
                     const engine_metrics& metrics);

} // namespace balctl
