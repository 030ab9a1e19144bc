#pragma once

// What a pool or member actor must not lose when it crashes. The supervisor
// owns one pool_runtime per pool; a restarted pool (or member) actor picks up
// from it, so "restarted from its last state" needs no store round trip.
// Each object is written only by the actor that currently owns it.

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "engine/accounts.hpp"
#include "engine/member_fsm.hpp"
#include "engine/pool_policy.hpp"
#include "engine/registry.hpp"

namespace balctl {

// Kept small on purpose: a node holds up to a million of these.
struct member_runtime {
  /// n: the friendly name, or empty when it is the hostname.
  member_runtime(member_slot* s, const std::string& n, member_fsm f)
    : slot(s),
      name(n.empty() ? nullptr : std::make_unique<const std::string>(n)),
      fsm(std::move(f)) {}
  // The slot lives in the same allocation as this runtime (make_member), so
  // a plain pointer is exactly as long-lived as the runtime.
  member_slot* slot;
  // The friendly name when it differs from the hostname: most members have
  // none, and a pointer costs 8 bytes where a std::string costs 32.
  std::unique_ptr<const std::string> name;
  member_fsm fsm;
  // Latest status body (stacks, metrics); null until the agent sends one.
  // Written and read by the pool actor only.
  std::unique_ptr<member_status> status;
  // Published by the member actor for readers on other threads (fsm itself
  // belongs to the member actor alone).
  std::atomic<bool> damped{false};
  // Admin facts, read and written by the pool actor only (they fit in the
  // padding after damped).
  linux_family family = linux_family::none;
  bool enrolled = true; // false until the agent trades its secret for a key

  const std::string& display_name() const {
    return name ? *name : slot->hostname;
  }

  /// Publishes what fsm says (state, since when, damped) in the slot and
  /// here, for ingest and readers on other threads. Called by whoever owns
  /// fsm: bootstrap before any actor runs, then the member actor.
  void publish_state(std::int64_t now_ms);
};

/// A member's slot (shared with the registry and ingest) and runtime
/// (shared with its actors), in one allocation: two aliasing pointers into
/// one block instead of two blocks, two control blocks and a pointer
/// between them.
struct member_handles {
  std::shared_ptr<member_slot> slot;
  std::shared_ptr<member_runtime> rt;
};
/// The slot gets id and hostname; the caller fills in the rest before the
/// slot is shared. The friendly name is kept only when it is set and
/// differs from the hostname.
member_handles make_member(member_id id, const std::string& hostname,
                           const std::string& name, member_fsm fsm);
/// The same from a member's stored form, with its key, allowed source IPs
/// (unparsable ones skipped), Linux family and enrolment filled in.
member_handles make_member(const member_config& mc, member_fsm fsm);

struct pool_runtime {
  // The pool's settings. config.members is emptied after start-up: each
  // member's facts live in its slot and runtime, not twice.
  pool_config config;
  /// config.name, one copy shared by every member slot of the pool.
  const std::shared_ptr<const std::string>& shared_name() {
    if (!shared_name_ || *shared_name_ != config.name) {
      shared_name_ = std::make_shared<const std::string>(config.name);
    }
    return shared_name_;
  }
  std::shared_ptr<const std::string> shared_name_;
  // Shared by every member_fsm of the pool.
  std::shared_ptr<const detection_params> detection;
  pool_params policy;
  member_id active = 0; // 0 until decided: the primary
  // The active member an operator removed (forced) with nobody healthy to
  // take over: DNS still points at it until a member turns healthy. Kept
  // here (and as the stored active member) so a restart keeps waiting.
  member_id dns_orphaned_by = 0;
  // Member actors alive for this pool. After a pool crash the supervisor
  // waits for it to reach 0 before restarting the pool, so an old and a new
  // member actor never share one member_runtime.
  std::atomic<int> live_members{0};
  // The node's count of member actors (engine_metrics::live_members), kept
  // with this one: shutdown waits on it, pools created at run time included.
  std::atomic<int>* node_live_members = nullptr;
  // Cluster: until when (engine clock, ms) this node's lease on the pool is
  // known to hold, as its last renewal confirmed. Past it the lease may be
  // another node's (this node was paused, or cannot reach Redis): the pool
  // evaluates no member until a renewal moves it on, or the pool is given
  // up. Not clustered: never.
  std::atomic<std::int64_t> lease_until_ms{INT64_MAX};
  // Read the detection parameters through these: the pool actor replaces
  // them when an operator changes the settings while member actors read.
  std::shared_ptr<const detection_params> load_detection() const {
    return std::atomic_load(&detection);
  }
  void store_detection(std::shared_ptr<const detection_params> d) {
    std::atomic_store(&detection, std::move(d));
  }
  std::vector<std::shared_ptr<member_runtime>> members; // config order
  // Members' explicit public addresses (member_config::public_ipv4/6),
  // only for the few that have one: the failover record of the others
  // takes their first allowed IP (the slot has it). Pool actor only.
  std::unordered_map<member_id, std::string> public_ipv4;
  std::unordered_map<member_id, std::string> public_ipv6;
  // Protected accounts' DNS side (engine/accounts) and the pool's own DNS
  // provider credentials (the admin API's, secrets blanked: the router and
  // executors hold them). Pool actor only.
  account_book accounts;
  std::vector<dns_provider_config> providers;
};

/// Detection and policy parameters of one pool, from the engine config.
detection_params make_detection_params(const engine_config& e,
                                       const pool_config& p);
pool_params make_pool_params(const engine_config& e, const pool_config& p);

} // namespace balctl
