#include "engine/member_fsm.hpp"

#include <algorithm>
#include <limits>

namespace balctl {

namespace {

constexpr std::int64_t unbounded_silence_ms =
  std::numeric_limits<std::int64_t>::max();

// Silence since the last accepted heartbeat. A member never heard from
// (last_seen_ms == 0) in a state other than pending is an inconsistent restore;
// treating it as silent forever is the fail-safe reading: it never qualifies
// as a standby, and restart grace still keeps it from going down early.
std::int64_t silence_ms(std::int64_t last_seen_ms, std::int64_t now_ms) {
  if (last_seen_ms == 0) {
    return unbounded_silence_ms;
  }
  return now_ms - last_seen_ms;
}

// Earliest time t >= since_ms at which a member recovering since since_ms has
// been stable long enough: t - since_ms >= (damped(t) ? hold : stable).
// No new down can be recorded while recovering, so damped(t) only turns from
// true to false, at undamped_at = (threshold-th most recent down) + window + 1.
std::int64_t stable_at_ms(const std::vector<std::int64_t>& downs_ms,
                          const detection_params& p, std::int64_t since_ms) {
  const std::int64_t normal = since_ms + p.recovery_stable_ms;
  if (p.flap_threshold <= 0 ||
      downs_ms.size() < static_cast<std::size_t>(p.flap_threshold)) {
    return normal;
  }
  const std::int64_t kth_down =
    downs_ms[downs_ms.size() - static_cast<std::size_t>(p.flap_threshold)];
  const std::int64_t undamped_at = kth_down + p.flap_window_ms + 1;
  const std::int64_t held = since_ms + p.flap_hold_ms;
  // Healthy while still damped once the hold has passed...
  if (held < undamped_at) {
    return held;
  }
  // ...or, once damping has lapsed, after the ordinary stability period.
  return std::max(undamped_at, normal);
}

} // namespace

member_fsm::member_fsm(const detection_params& p, member_state initial,
                       std::int64_t state_since_ms, std::int64_t grace_until_ms)
  : member_fsm(std::make_shared<const detection_params>(p), initial,
               state_since_ms, grace_until_ms) {
}

member_fsm::member_fsm(std::shared_ptr<const detection_params> p,
                       member_state initial, std::int64_t state_since_ms,
                       std::int64_t grace_until_ms)
  : params_(std::move(p)),
    state_(initial),
    since_ms_(state_since_ms),
    grace_until_ms_(grace_until_ms) {
}

bool member_fsm::damped(std::int64_t now_ms) const {
  // A threshold of zero or less disables damping rather than damping every
  // member forever.
  if (params_->flap_threshold <= 0) {
    return false;
  }
  const auto recent = std::count_if(
    downs_ms_.begin(), downs_ms_.end(), [&](std::int64_t d) {
      return d >= now_ms - params_->flap_window_ms && d <= now_ms;
    });
  return recent >= params_->flap_threshold;
}

std::int64_t member_fsm::required_stable_ms(std::int64_t now_ms) const {
  return damped(now_ms) ? params_->flap_hold_ms : params_->recovery_stable_ms;
}

member_state member_fsm::step(std::int64_t last_seen_ms,
                              std::int64_t now_ms) const {
  const std::int64_t silence = silence_ms(last_seen_ms, now_ms);
  const bool heard = silence < params_->suspect_after_ms;
  switch (state_) {
    case member_state::pending:
      // Pending never times out: a member that was never heard from has
      // nothing to fail over from.
      if (last_seen_ms > 0) {
        return member_state::healthy;
      }
      return state_;
    case member_state::healthy:
      if (!heard) {
        return member_state::suspect;
      }
      return state_;
    case member_state::suspect:
      // Restart grace: after an engine restart nobody heard the members for
      // a while, which says nothing about them; hold at suspect until the
      // grace ends.
      if (silence >= params_->failover_delay_ms && now_ms >= grace_until_ms_) {
        return member_state::down;
      }
      if (heard) {
        return member_state::healthy;
      }
      return state_;
    case member_state::down:
      if (heard) {
        return member_state::recovering;
      }
      return state_;
    case member_state::recovering:
      // A gap while recovering restarts the story: the member is silent
      // again, so it is suspect, not "almost healthy".
      if (!heard) {
        return member_state::suspect;
      }
      if (now_ms - since_ms_ >= required_stable_ms(now_ms)) {
        return member_state::healthy;
      }
      return state_;
  }
  return state_;
}

std::optional<member_transition>
member_fsm::evaluate(std::int64_t last_seen_ms, std::int64_t now_ms) {
  const member_state from = state_;
  // Follow the rules to the state they settle in, so one call reports one
  // transition to the final state (healthy → down when the whole failover
  // delay passed unobserved). Stopping half-way would show the pool a
  // member as healthy or suspect that is in fact down. Every path through
  // the diagram settles within four steps; the bound guards against
  // inconsistent parameters.
  for (int i = 0; i < 4; ++i) {
    const member_state next = step(last_seen_ms, now_ms);
    if (next == state_) {
      break;
    }
    state_ = next;
    since_ms_ = now_ms;
    if (next == member_state::down && params_->flap_threshold > 0) {
      downs_ms_.push_back(now_ms);
      while (downs_ms_.size() > static_cast<std::size_t>(params_->flap_threshold)) {
        downs_ms_.erase(downs_ms_.begin());
      }
      while (!downs_ms_.empty() &&
             downs_ms_.front() < now_ms - params_->flap_window_ms) {
        downs_ms_.erase(downs_ms_.begin());
      }
    }
  }
  if (state_ == from) {
    return std::nullopt;
  }
  return member_transition{from, state_, now_ms};
}

std::optional<std::int64_t>
member_fsm::next_deadline_ms(std::int64_t last_seen_ms) const {
  // Never heard from but not pending: evaluate is already due (silence is
  // unbounded), so any time up to now will do; since_ms_ is one.
  const bool never_heard = last_seen_ms == 0;
  switch (state_) {
    case member_state::pending:
    case member_state::down:
      return std::nullopt;
    case member_state::healthy:
      if (never_heard) {
        return since_ms_;
      }
      return healthy_until_ms(*params_, last_seen_ms);
    case member_state::suspect:
      if (never_heard) {
        return std::max(since_ms_, grace_until_ms_);
      }
      return std::max(last_seen_ms + params_->failover_delay_ms,
                      grace_until_ms_);
    case member_state::recovering:
      if (never_heard) {
        return since_ms_;
      }
      return std::min(last_seen_ms + params_->suspect_after_ms,
                      stable_at_ms(downs_ms_, *params_, since_ms_));
  }
  return std::nullopt;
}

} // namespace balctl
