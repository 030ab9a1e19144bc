#pragma once

// Mass-silence guard (DESIGN.md principle 5): when a large share of a
// population goes silent within one window, the engine's own network is the
// likelier culprit, so failover is held. Used per pool and for the fleet.
//
// Trips when the members whose silence began within the last window_ms
// (onset >= now - window_ms) reach the threshold
// max(1, min_members, ceil(share * population)). Stays tripped until the number
// of members still silent (whenever they went silent) drops below that
// threshold: a long outage of our own network must not turn into a mass
// failover once its onsets age out of the window.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>

#include "engine/types.hpp"

namespace balctl {

struct silence_params {
  double share = 0.5;          // 0 < share <= 1
  std::size_t min_members = 3; // never trips below this many silent members
  std::int64_t window_ms = 30'000;
  // The silent count must stay below the threshold this long before the
  // guard releases. When our network heals, members come back one beat at a
  // time; without settling, the first returns would release the hold and
  // fail over pools whose active member is a heartbeat away from returning.
  std::int64_t release_settle_ms = 5'000;
};

class silence_guard {
public:
  explicit silence_guard(const silence_params& p) : params_(p) {}

  void set_params(const silence_params& p) { params_ = p; }
  /// Members that count for the share (those that have ever been heard).
  void set_population(std::size_t n) { population_ = n; }
  std::size_t population() const { return population_; }

  /// A member went silent (became suspect) at onset_ms. A member already
  /// silent keeps its first onset.
  void on_silent(member_id m, std::int64_t onset_ms);
  /// A member was heard again, or left the population.
  void on_heard(member_id m);

  /// Re-evaluates the latch at now_ms; returns the new tripped state.
  bool update(std::int64_t now_ms);
  bool tripped() const { return tripped_; }
  /// When update() must run again for a pending release; nullopt if none.
  std::optional<std::int64_t> next_deadline_ms() const;
  std::size_t silent_count() const { return silent_.size(); }
  std::size_t threshold() const;

private:
  // Moves the window's start to ws and keeps recent_ in step: amortised
  // O(1) a call while time moves forward. Counting recent onsets from
  // scratch on every update cost O(silent) per member going silent, O(n²)
  // when a whole fleet of a million goes quiet at once: exactly when this
  // guard must answer fast.
  void slide_window(std::int64_t ws);

  silence_params params_;
  std::size_t population_ = 0;
  std::unordered_map<member_id, std::int64_t> silent_; // member → onset
  std::map<std::int64_t, std::size_t> onsets_;         // onset → silent members
  std::int64_t window_start_ = std::numeric_limits<std::int64_t>::min();
  std::size_t recent_ = 0; // silent members with onset >= window_start_
  bool tripped_ = false;
  std::int64_t below_since_ms_ = -1; // tripped, silent count below threshold since
};

} // namespace balctl
