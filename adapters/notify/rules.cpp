#include "adapters/notify/rules.hpp"

#include <algorithm>

namespace balctl::notify {

dedup::decision dedup::decide(const std::string& key, std::int64_t now_ms) {
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    return {};
  }
  auto& e = it->second;
  if (now_ms - e.accepted_ms < window_ms_) {
    ++e.suppressed;
    return {true, 0, e.accepted_ms};
  }
  return {false, e.suppressed, e.accepted_ms};
}

void dedup::accepted(const std::string& key, std::int64_t now_ms) {
  if (window_ms_ <= 0) {
    return; // nothing is ever suppressed: nothing to remember
  }
  keys_[key] = entry{now_ms, 0};
  if (keys_.size() < prune_at_) {
    return;
  }
  // Forget keys whose window has passed with nothing suppressed: the next
  // alert of such a key goes out the same with or without its entry. Keys
  // with a count stay until their next alert reports it.
  for (auto it = keys_.begin(); it != keys_.end();) {
    if (it->second.suppressed == 0 && now_ms - it->second.accepted_ms >= window_ms_) {
      it = keys_.erase(it);
    } else {
      ++it;
    }
  }
  prune_at_ = std::max<std::size_t>(1024, keys_.size() * 2);
}

std::int64_t backoff_ms(int retry, std::int64_t initial_ms, std::int64_t max_ms,
                        std::uint32_t random_bits) {
  std::int64_t base = std::max<std::int64_t>(1, initial_ms);
  for (int i = 1; i < retry && base < max_ms; ++i) {
    base *= 2;
  }
  base = std::min(base, std::max<std::int64_t>(1, max_ms));
  std::int64_t half = base / 2;
  return base - half + static_cast<std::int64_t>(random_bits % static_cast<std::uint64_t>(half + 1));
}

} // namespace balctl::notify
