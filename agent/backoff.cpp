#include "agent/backoff.hpp"

#include <algorithm>

namespace balctl::agent {

backoff::backoff(std::int64_t base_ms, std::int64_t max_ms)
  : base_ms_(std::max<std::int64_t>(1, base_ms)),
    max_ms_(std::max(max_ms, std::max<std::int64_t>(1, base_ms))) {}

std::int64_t backoff::ceiling_ms() const {
  std::int64_t c = base_ms_;
  for (int i = 0; i < failures_ && c < max_ms_; ++i) {
    // Stop before doubling could overflow: the ceiling is max_ms_ anyway.
    if (c > max_ms_ / 2) {
      return max_ms_;
    }
    c *= 2;
  }
  return std::min(c, max_ms_);
}

std::int64_t backoff::next(const std::function<std::uint64_t(std::uint64_t)>& uniform) {
  auto c = ceiling_ms();
  if (failures_ < 62) {
    ++failures_;
  }
  // Half fixed, half random: never a burst of immediate retries (a
  // zero delay from full jitter would be a spin), still spread out. At
  // least 1 ms: with a 1 ms ceiling, c / 2 alone would allow 0.
  auto low = std::max<std::int64_t>(1, c / 2);
  auto spread = static_cast<std::uint64_t>(c - low) + 1;
  return low + static_cast<std::int64_t>(uniform(spread) % spread);
}

std::int64_t jittered(std::int64_t interval_ms,
                      const std::function<std::uint64_t(std::uint64_t)>& uniform) {
  auto spread = static_cast<std::uint64_t>(interval_ms / 5) + 1;
  return interval_ms - interval_ms / 10 +
         static_cast<std::int64_t>(uniform(spread) % spread);
}

} // namespace balctl::agent
