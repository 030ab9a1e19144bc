#pragma once

// The pool's failover policy: which member is active, when to fail over, to
// whom, when to hold, when to fail back. Plain class: no CAF, no I/O, time
// passed in. The pool actor (actors/pool) feeds it member transitions and
// executes the decisions it returns: each decision is stored before it is
// acted on.
//
// Rules (DESIGN.md principle 5):
// - The active member going down triggers a failover to a healthy standby:
//   the primary if healthy, else the first healthy member in configured order.
//   Only members in state healthy qualify (a damped member is never healthy:
//   member_fsm keeps it recovering).
// - No healthy standby: keep the active member, raise an alert (decision
//   hold_no_standby), and fail over as soon as one becomes healthy.
// - Mass silence in the pool, or a fleet-wide hold from the supervisor:
//   no failover, alert (hold_mass_silence / hold_fleet_silence); when the
//   hold is released and the active member is still down, fail over then.
// - Fail-back (active != primary, primary healthy again): manual by default
//   (request_failback), automatic after failback_stable_ms of primary health
//   when enabled.
// - Only a down active member triggers a failover; a suspect one does not.
//   Holds are emitted once when they start (or change kind), not on every
//   evaluation; hold_released precedes the failover a release allows.
// - Automatic fail-back waits while a fleet hold or the pool's mass-silence
//   guard is in force (moving DNS while we suspect our own network is what
//   the guard prevents); a primary leaving healthy restarts its clock.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/member_index.hpp"
#include "engine/silence_guard.hpp"
#include "engine/types.hpp"

namespace balctl {

enum class decision_kind : std::uint8_t {
  failover,           // active member down → to
  failback,           // back to the primary
  hold_no_standby,    // active down, nobody healthy to take over (alert)
  hold_mass_silence,  // pool went silent at once (alert)
  hold_fleet_silence, // fleet-wide hold from the supervisor (alert)
  hold_released,      // a hold ended (info)
};
const char* to_string(decision_kind k);
bool from_string(const std::string& s, decision_kind& out);

/// True for decisions that move the failover record.
inline bool moves_dns(decision_kind k) {
  return k == decision_kind::failover || k == decision_kind::failback;
}

struct pool_decision {
  decision_kind kind;
  std::string pool;
  member_id from = 0; // active member before
  member_id to = 0;   // active member after (== from for holds)
  std::string reason; // human sentence for logs and the activity log
  std::int64_t at_ms = 0;
};

struct pool_params {
  failback_policy failback = failback_policy::manual;
  std::int64_t failback_stable_ms = 300'000;
  silence_params mass_silence;
};

class pool_policy {
public:
  /// members: in configured order; the first is the primary. active: the
  /// restored active member, or nullopt to start on the primary.
  pool_policy(std::string pool, const pool_params& p,
              std::vector<member_id> members,
              std::optional<member_id> active = std::nullopt);

  void set_params(const pool_params& p);
  /// Appends m in configured order (a known member only has its state set).
  /// A suspect/down member added here counts as silent for the guard, with
  /// an onset old enough never to trip it by itself.
  void add_member(member_id m, member_state s);
  /// Removing the active member emits no decision: active() silently becomes
  /// the first healthy member in configured order, else the (new) primary.
  /// The caller must compare active() before and after and move DNS.
  void remove_member(member_id m);

  /// Restores a member's state without deciding anything (start-up). A
  /// healthy member counts as healthy since since_ms (fail-back clock); a
  /// suspect/down one as silent since since_ms (mass-silence guard).
  void restore_state(member_id m, member_state s, std::int64_t since_ms);

  /// Records a member transition (from member_fsm), feeds the pool's
  /// mass-silence guard and re-evaluates. Unknown members are ignored.
  std::vector<pool_decision> on_member_state(member_id m, member_state from,
                                             member_state to,
                                             std::int64_t now_ms);
  std::vector<pool_decision> on_fleet_hold(bool hold, std::int64_t now_ms);
  /// Re-evaluates time-based rules (automatic fail-back).
  std::vector<pool_decision> on_tick(std::int64_t now_ms);
  /// Operator-requested fail-back to the primary; empty when it is not
  /// possible (then *why says why): the primary is already active, or it is
  /// not healthy. An operator's request is honoured during a hold (the
  /// primary is heard, so it is alive); the hold is released first.
  std::vector<pool_decision> request_failback(std::int64_t now_ms,
                                              std::string* why);

  /// When on_tick must run next, if ever: healthy_since(primary) +
  /// failback_stable_ms while an automatic fail-back is pending and not
  /// blocked by a hold.
  std::optional<std::int64_t> next_deadline_ms() const;

  member_id active() const { return active_; }
  /// The active member as the caller moved it outside the rules (the pool
  /// actor, after an operator removed the active member with nobody
  /// healthy to take over, points DNS at the first member that turns
  /// healthy). m must be a member.
  void set_active(member_id m) {
    if (index_.contains(m)) {
      active_ = m;
    }
  }
  member_id primary() const { return members_.empty() ? 0 : members_.front(); }
  bool holding() const { return hold_ != hold_kind::none; }
  /// Whether DNS moves are held now for reasons of the network (the pool's
  /// mass-silence guard or a fleet hold), whatever the active member does:
  /// protected accounts' cuts wait while this is true.
  bool network_hold() const { return fleet_hold_ || guard_.tripped(); }
  const pool_params& params() const { return params_; }
  /// Since when m has been healthy; nullopt when it is not healthy.
  std::optional<std::int64_t> healthy_since_ms(member_id m) const;
  const std::string& name() const { return pool_; }
  /// pending for members the pool does not know.
  member_state state_of(member_id m) const;
  const std::vector<member_id>& members() const { return members_; }
  /// m's position in members() (configured order), if the pool has m. The
  /// pool actor keeps its per-member vectors in the same order and looks
  /// members up here rather than in an index of its own.
  std::optional<member_index::position> position_of(member_id m) const {
    return index_.find(m);
  }
  const silence_guard& guard() const { return guard_; }
  /// Members heard at least once (not pending): the guard's population.
  std::size_t heard_population() const { return heard_; }

private:
  enum class hold_kind { none, no_standby, mass_silence, fleet_silence };

  std::vector<pool_decision> evaluate(std::int64_t now_ms);
  std::optional<member_id> pick_standby() const;
  // Every write to states_ goes through here, so heard_ stays exact without
  // a scan of the pool on each transition.
  void set_state(member_id m, member_state s);
  pool_decision make(decision_kind k, member_id to, std::string reason,
                     std::int64_t now_ms) const;

  // What the policy keeps of one member, parallel to members_. A pool can
  // hold a large share of a node's million members: 16 bytes here and 16 in
  // index_, where two hash maps cost about 100.
  struct member_entry {
    member_state state = member_state::pending;
    std::int64_t healthy_since_ms = not_healthy; // fail-back clock
  };
  static constexpr std::int64_t not_healthy = INT64_MIN;
  member_entry* entry(member_id m);
  const member_entry* entry(member_id m) const;

  std::string pool_;
  pool_params params_;
  std::vector<member_id> members_;
  std::vector<member_entry> entries_;
  member_index index_;
  std::size_t heard_ = 0;
  member_id active_ = 0;
  silence_guard guard_;
  bool fleet_hold_ = false;
  hold_kind hold_ = hold_kind::none;
};

} // namespace balctl
