#pragma once

// Failure detection for one member. Plain class: no CAF, no I/O, time passed
// in. The member actor (actors/member) wraps it and re-arms one lazy timer at
// next_deadline_ms().
//
//              first heartbeat
//   pending ────────────────────▶ healthy ◀──────────────┐
//                                  │   ▲                  │ stable for
//            silent >= suspect_after│   │ heard again      │ recovery_stable
//                                  ▼   │                  │ (flap_hold when
//                                 suspect                 │  damped)
//                                  │                      │
//          silent >= failover_delay│                  recovering
//                                  ▼                      ▲   │ silent >=
//                                 down ───────────────────┘   │ suspect_after
//                                  ▲        heard again       │
//                                  └──────── suspect ◀────────┘
//
// "Silent" is measured from the last accepted heartbeat: silence = now -
// last_seen. Boundaries are inclusive: a member is suspect at exactly
// last_seen + suspect_after_ms and down at exactly last_seen +
// failover_delay_ms; "heard again" means silence < suspect_after_ms.
// No member is declared down before grace_until_ms (restart grace, DESIGN.md
// principle 4): it stays suspect until then.

#include <cstdint>
#include <memory>
#include <vector>
#include <optional>

#include "engine/types.hpp"

namespace balctl {

struct detection_params {
  std::int64_t failover_delay_ms = 30'000; // silent this long → down
  std::int64_t suspect_after_ms = 15'000;  // silent this long → suspect
  std::int64_t recovery_stable_ms = 10'000; // recovering → healthy
  // Flap damping: a member that went down flap_threshold times within
  // flap_window_ms is damped and needs flap_hold_ms of stability instead of
  // recovery_stable_ms before it is healthy (and eligible as standby) again.
  int flap_threshold = 3;
  std::int64_t flap_window_ms = 600'000;
  std::int64_t flap_hold_ms = 300'000;
};

struct member_transition {
  member_state from;
  member_state to;
  std::int64_t at_ms;
};

class member_fsm {
public:
  member_fsm(const detection_params& p, member_state initial,
             std::int64_t state_since_ms, std::int64_t grace_until_ms = 0);
  /// Shares the pool's parameters: every member of a pool has the same, and
  /// a node holds a million of these (16 bytes instead of 56).
  member_fsm(std::shared_ptr<const detection_params> p, member_state initial,
             std::int64_t state_since_ms, std::int64_t grace_until_ms = 0);

  /// Re-evaluates the state given the last accepted heartbeat time
  /// (0 = never heard). Returns the transition taken, if any. Call it on
  /// every timer expiry and whenever ingest reports the member was heard.
  /// One call follows the rules to the state they settle in and reports a
  /// single transition from the old state to that final state: a healthy
  /// member found silent past the failover delay reports healthy → down
  /// (and the down counts for flap damping). A timer that fires early
  /// because a newer heartbeat moved last_seen_ms returns nullopt.
  /// A non-pending member with last_seen_ms == 0 counts as silent forever.
  std::optional<member_transition> evaluate(std::int64_t last_seen_ms,
                                            std::int64_t now_ms);

  /// When evaluate must run next for a timely transition, given the same
  /// last_seen_ms; nullopt when only a heartbeat can change the state
  /// (pending, down). healthy: last_seen + suspect_after; suspect:
  /// max(last_seen + failover_delay, grace_until); recovering: the earlier
  /// of last_seen + suspect_after (a gap) and the time it has been stable
  /// long enough (flap_hold while damped, recovery_stable once damping
  /// lapses). The actor arms one timer here and re-arms after each evaluate.
  std::optional<std::int64_t> next_deadline_ms(std::int64_t last_seen_ms) const;

  /// next_deadline_ms() of a healthy member: before this time no evaluate
  /// can change its state. Lets the pool re-arm the timer of a healthy
  /// member that was heard meanwhile without waking its actor.
  static std::int64_t healthy_until_ms(const detection_params& p,
                                       std::int64_t last_seen_ms) {
    return last_seen_ms + p.suspect_after_ms;
  }

  member_state state() const { return state_; }
  std::int64_t state_since_ms() const { return since_ms_; }
  /// True while the member has flapped past the threshold: at least
  /// flap_threshold downs within [now - flap_window_ms, now]. A threshold
  /// <= 0 disables damping.
  bool damped(std::int64_t now_ms) const;
  void set_params(std::shared_ptr<const detection_params> p) {
    params_ = std::move(p);
  }
  const detection_params& params() const { return *params_; }

private:
  member_state step(std::int64_t last_seen_ms, std::int64_t now_ms) const;
  std::int64_t required_stable_ms(std::int64_t now_ms) const;

  std::shared_ptr<const detection_params> params_;
  member_state state_;
  std::int64_t since_ms_;
  std::int64_t grace_until_ms_;
  // Recent down transitions, at most flap_threshold. A vector, not a deque:
  // an empty deque allocates, and a node holds a million of these.
  std::vector<std::int64_t> downs_ms_;
};

} // namespace balctl
