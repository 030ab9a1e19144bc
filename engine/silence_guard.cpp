#include "engine/silence_guard.hpp"

#include <algorithm>
#include <cmath>

namespace balctl {

void silence_guard::on_silent(member_id m, std::int64_t onset_ms) {
  // Keep the first onset: a member reported silent again (suspect, then
  // down) has been silent since the first report, and moving its onset
  // forward would let it count as "recent" again.
  if (!silent_.emplace(m, onset_ms).second) {
    return;
  }
  ++onsets_[onset_ms];
  recent_ += onset_ms >= window_start_ ? 1 : 0;
}

void silence_guard::on_heard(member_id m) {
  auto i = silent_.find(m);
  if (i == silent_.end()) {
    return;
  }
  auto onset = i->second;
  silent_.erase(i);
  auto o = onsets_.find(onset);
  if (o != onsets_.end() && --o->second == 0) {
    onsets_.erase(o);
  }
  recent_ -= onset >= window_start_ ? 1 : 0;
}

void silence_guard::slide_window(std::int64_t ws) {
  if (ws < window_start_) {
    // Time went back (a test clock, a clock step): count afresh.
    recent_ = 0;
    for (auto i = onsets_.lower_bound(ws); i != onsets_.end(); ++i) {
      recent_ += i->second;
    }
  } else {
    auto end = onsets_.lower_bound(ws);
    for (auto i = onsets_.lower_bound(window_start_); i != end; ++i) {
      recent_ -= i->second;
    }
  }
  window_start_ = ws;
}

std::size_t silence_guard::threshold() const {
  // The small epsilon keeps floating point from rounding an exact share up:
  // 0.28 * 25 is 7.000000000000001, and ceil of that would demand 8.
  const double scaled =
    params_.share * static_cast<double>(population_) - 1e-9;
  const auto by_share =
    scaled <= 0 ? std::size_t{0} : static_cast<std::size_t>(std::ceil(scaled));
  // Never 0: a guard that trips with nobody silent would hold every failover.
  return std::max<std::size_t>({std::size_t{1}, params_.min_members, by_share});
}

bool silence_guard::update(std::int64_t now_ms) {
  const std::size_t needed = threshold();
  if (tripped_) {
    // Release on the number still silent, not on recent onsets: a long
    // outage of our own network must not turn into a mass failover once its
    // onsets age out of the window.
    if (silent_.size() >= needed) {
      below_since_ms_ = -1;
    } else if (below_since_ms_ < 0) {
      below_since_ms_ = now_ms;
    }
    if (below_since_ms_ >= 0 &&
        now_ms - below_since_ms_ >= params_.release_settle_ms) {
      tripped_ = false;
      below_since_ms_ = -1;
    }
    return tripped_;
  }
  slide_window(now_ms - params_.window_ms);
  if (recent_ >= needed) {
    tripped_ = true;
    below_since_ms_ = -1;
  }
  return tripped_;
}

std::optional<std::int64_t> silence_guard::next_deadline_ms() const {
  if (!tripped_ || below_since_ms_ < 0) {
    return std::nullopt;
  }
  return below_since_ms_ + params_.release_settle_ms;
}

} // namespace balctl
