#include "engine/pool_policy.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace balctl {

namespace {

constexpr decision_kind all_decision_kinds[] = {
  decision_kind::failover,          decision_kind::failback,
  decision_kind::hold_no_standby,   decision_kind::hold_mass_silence,
  decision_kind::hold_fleet_silence, decision_kind::hold_released,
};

// Onset for a member that is silent since an unknown time (added or
// restored without a timestamp): it counts as silent for the latch, but
// never as a recent onset that could trip it.
constexpr std::int64_t unknown_onset_ms =
  std::numeric_limits<std::int64_t>::min();

bool is_silent(member_state s) {
  return s == member_state::suspect || s == member_state::down;
}

std::string describe(member_id m, member_state s) {
  return std::to_string(m) + " (" + to_string(s) + ")";
}

} // namespace

const char* to_string(decision_kind k) {
  switch (k) {
    case decision_kind::failover: return "failover";
    case decision_kind::failback: return "failback";
    case decision_kind::hold_no_standby: return "hold_no_standby";
    case decision_kind::hold_mass_silence: return "hold_mass_silence";
    case decision_kind::hold_fleet_silence: return "hold_fleet_silence";
    case decision_kind::hold_released: return "hold_released";
  }
  return "unknown";
}

bool from_string(const std::string& s, decision_kind& out) {
  for (auto k : all_decision_kinds) {
    if (s == to_string(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

pool_policy::pool_policy(std::string pool, const pool_params& p,
                         std::vector<member_id> members,
                         std::optional<member_id> active)
  : pool_(std::move(pool)),
    params_(p),
    members_(std::move(members)),
    entries_(members_.size()),
    index_(members_),
    guard_(p.mass_silence) {
  // A restored active member that is no longer configured cannot receive
  // traffic we are responsible for; start on the primary instead.
  if (active && index_.contains(*active)) {
    active_ = *active;
  } else {
    active_ = primary();
  }
}

void pool_policy::set_params(const pool_params& p) {
  params_ = p;
  guard_.set_params(p.mass_silence);
}

pool_policy::member_entry* pool_policy::entry(member_id m) {
  auto pos = index_.find(m);
  return pos ? &entries_[*pos] : nullptr;
}

const pool_policy::member_entry* pool_policy::entry(member_id m) const {
  auto pos = index_.find(m);
  return pos ? &entries_[*pos] : nullptr;
}

void pool_policy::add_member(member_id m, member_state s) {
  if (!index_.contains(m)) {
    members_.push_back(m);
    entries_.emplace_back();
    index_.insert(m, static_cast<member_index::position>(members_.size() - 1));
  }
  set_state(m, s);
  entry(m)->healthy_since_ms = not_healthy;
  if (is_silent(s)) {
    guard_.on_silent(m, unknown_onset_ms);
  } else {
    guard_.on_heard(m);
  }
  if (active_ == 0) {
    active_ = primary();
  }
  guard_.set_population(heard_population());
}

void pool_policy::remove_member(member_id m) {
  if (!index_.contains(m)) {
    return;
  }
  set_state(m, member_state::pending); // leaves the population
  auto pos = *index_.erase_and_shift(m);
  members_.erase(members_.begin() + pos);
  entries_.erase(entries_.begin() + pos);
  guard_.on_heard(m);
  guard_.set_population(heard_population());
  if (m == active_) {
    // Documented in the header: no decision is emitted; the caller compares
    // active() before and after.
    active_ = primary();
    for (auto candidate : members_) {
      if (state_of(candidate) == member_state::healthy) {
        active_ = candidate;
        break;
      }
    }
  }
}

void pool_policy::restore_state(member_id m, member_state s,
                                std::int64_t since_ms) {
  auto* e = entry(m);
  if (e == nullptr) {
    return;
  }
  set_state(m, s);
  e->healthy_since_ms = s == member_state::healthy ? since_ms : not_healthy;
  if (is_silent(s)) {
    guard_.on_silent(m, since_ms);
  } else {
    guard_.on_heard(m);
  }
  guard_.set_population(heard_population());
}

member_state pool_policy::state_of(member_id m) const {
  auto* e = entry(m);
  return e == nullptr ? member_state::pending : e->state;
}

void pool_policy::set_state(member_id m, member_state s) {
  auto* e = entry(m);
  if (e == nullptr) {
    return;
  }
  heard_ -= e->state != member_state::pending ? 1 : 0;
  e->state = s;
  heard_ += s != member_state::pending ? 1 : 0;
}

std::vector<pool_decision> pool_policy::on_member_state(member_id m,
                                                        member_state from,
                                                        member_state to,
                                                        std::int64_t now_ms) {
  auto* e = entry(m);
  if (e == nullptr) {
    return {};
  }
  // The recorded state is the truth for bookkeeping; `from` is what the
  // member saw, and the two only differ after a restore race.
  const member_state before = e->state;
  (void) from;
  set_state(m, to);

  if (to == member_state::healthy) {
    if (before != member_state::healthy) {
      e->healthy_since_ms = now_ms;
    }
  } else {
    // Any step away from healthy restarts the fail-back clock: a primary
    // that flaps has not been stable.
    e->healthy_since_ms = not_healthy;
  }

  if (is_silent(to)) {
    if (!is_silent(before)) {
      guard_.on_silent(m, now_ms);
    }
  } else {
    guard_.on_heard(m);
  }
  return evaluate(now_ms);
}

std::vector<pool_decision> pool_policy::on_fleet_hold(bool hold,
                                                      std::int64_t now_ms) {
  fleet_hold_ = hold;
  return evaluate(now_ms);
}

std::vector<pool_decision> pool_policy::on_tick(std::int64_t now_ms) {
  return evaluate(now_ms);
}

std::vector<pool_decision> pool_policy::request_failback(std::int64_t now_ms,
                                                         std::string* why) {
  auto refuse = [&](std::string reason) {
    if (why != nullptr) {
      *why = std::move(reason);
    }
    return std::vector<pool_decision>{};
  };
  const member_id p = primary();
  if (p == 0) {
    return refuse("pool " + pool_ + " has no members");
  }
  if (active_ == p) {
    return refuse("primary " + std::to_string(p) + " is already active");
  }
  const member_state ps = state_of(p);
  if (ps != member_state::healthy) {
    // Never cut over to a member that is not healthy, not even on request.
    return refuse("primary " + std::to_string(p) + " is " + to_string(ps) +
                  ", not healthy");
  }
  std::vector<pool_decision> out;
  if (hold_ != hold_kind::none) {
    out.push_back(make(decision_kind::hold_released, active_,
                       "hold ended: operator failed back to primary " +
                         std::to_string(p),
                       now_ms));
    hold_ = hold_kind::none;
  }
  out.push_back(make(decision_kind::failback, p,
                     "operator requested fail-back from " +
                       describe(active_, state_of(active_)) + " to primary " +
                       describe(p, ps),
                     now_ms));
  active_ = p;
  return out;
}

std::optional<std::int64_t> pool_policy::healthy_since_ms(member_id m) const {
  const auto* e = entry(m);
  if (e == nullptr || e->state != member_state::healthy ||
      e->healthy_since_ms == not_healthy) {
    return std::nullopt;
  }
  return e->healthy_since_ms;
}

std::optional<std::int64_t> pool_policy::next_deadline_ms() const {
  // A mass-silence hold that is settling before its release comes first.
  if (auto release = guard_.next_deadline_ms()) {
    return release;
  }
  if (params_.failback != failback_policy::automatic) {
    return std::nullopt;
  }
  const member_id p = primary();
  if (p == 0 || active_ == p || state_of(p) != member_state::healthy) {
    return std::nullopt;
  }
  // While fail-back is blocked by a hold, a deadline already in the past
  // would make the actor tick in a loop; the hold's release re-evaluates.
  if (hold_ != hold_kind::none || fleet_hold_ || guard_.tripped()) {
    return std::nullopt;
  }
  const auto* e = entry(p);
  if (e == nullptr || e->healthy_since_ms == not_healthy) {
    return std::nullopt;
  }
  return e->healthy_since_ms + params_.failback_stable_ms;
}

std::optional<member_id> pool_policy::pick_standby() const {
  // members_ is in configured order with the primary first.
  for (auto m : members_) {
    if (m != active_ && state_of(m) == member_state::healthy) {
      return m;
    }
  }
  return std::nullopt;
}

pool_decision pool_policy::make(decision_kind k, member_id to,
                                std::string reason, std::int64_t now_ms) const {
  pool_decision d;
  d.kind = k;
  d.pool = pool_;
  d.from = active_;
  d.to = to;
  d.reason = std::move(reason);
  d.at_ms = now_ms;
  return d;
}

std::vector<pool_decision> pool_policy::evaluate(std::int64_t now_ms) {
  std::vector<pool_decision> out;
  guard_.set_population(heard_population());
  const bool mass_silence = guard_.update(now_ms);

  // Emits a hold only when it starts (or changes kind), so an alert is
  // raised once per hold, not on every re-evaluation.
  auto hold = [&](hold_kind k, decision_kind d, std::string reason) {
    if (hold_ != k) {
      hold_ = k;
      out.push_back(make(d, active_, std::move(reason), now_ms));
    }
  };

  if (state_of(active_) == member_state::down) {
    const std::string active_down =
      "active member " + std::to_string(active_) + " is down";
    if (mass_silence) {
      // Most of the pool went quiet at once: our own network is the likelier
      // culprit, and cutting DNS over would turn its outage into theirs.
      hold(hold_kind::mass_silence, decision_kind::hold_mass_silence,
           active_down + " but " + std::to_string(guard_.silent_count()) +
             " of " + std::to_string(guard_.population()) +
             " members went silent together (threshold " +
             std::to_string(guard_.threshold()) +
             "): holding failover, the engine's network is the likelier "
             "cause");
    } else if (fleet_hold_) {
      hold(hold_kind::fleet_silence, decision_kind::hold_fleet_silence,
           active_down +
             " but the fleet-wide silence hold is in force: holding failover");
    } else if (auto standby = pick_standby()) {
      if (hold_ != hold_kind::none) {
        out.push_back(make(decision_kind::hold_released, active_,
                           "hold ended: " + active_down +
                             " and a failover is now allowed",
                           now_ms));
        hold_ = hold_kind::none;
      }
      out.push_back(make(decision_kind::failover, *standby,
                         active_down + "; failing over to " +
                           describe(*standby, state_of(*standby)),
                         now_ms));
      active_ = *standby;
    } else {
      std::string others;
      for (auto m : members_) {
        if (m != active_) {
          others += (others.empty() ? "" : ", ") + describe(m, state_of(m));
        }
      }
      hold(hold_kind::no_standby, decision_kind::hold_no_standby,
           active_down + " and no standby is healthy" +
             (others.empty() ? std::string(" (no other members)")
                             : " (" + others + ")") +
             ": keeping it active until one is");
    }
    return out;
  }

  if (hold_ != hold_kind::none) {
    out.push_back(make(decision_kind::hold_released, active_,
                       "hold ended: active member " +
                         describe(active_, state_of(active_)) +
                         " is no longer down",
                       now_ms));
    hold_ = hold_kind::none;
  }

  // Automatic fail-back. Not while a fleet hold or the pool's guard is in
  // force: moving DNS while we suspect our own network is the move the
  // guard exists to prevent, and fail-back is never urgent.
  const member_id p = primary();
  if (params_.failback == failback_policy::automatic && p != 0 &&
      active_ != p && state_of(p) == member_state::healthy && !fleet_hold_ &&
      !mass_silence) {
    const auto since = entry(p)->healthy_since_ms;
    if (since != not_healthy && now_ms - since >= params_.failback_stable_ms) {
      out.push_back(make(decision_kind::failback, p,
                         "primary " + describe(p, member_state::healthy) +
                           " has been healthy for " +
                           std::to_string(now_ms - since) +
                           " ms (fail-back after " +
                           std::to_string(params_.failback_stable_ms) +
                           " ms); failing back from " +
                           describe(active_, state_of(active_)),
                         now_ms));
      active_ = p;
    }
  }
  return out;
}

} // namespace balctl
