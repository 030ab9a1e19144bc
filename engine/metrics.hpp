#pragma once

// Engine-wide counters the actors update and balctld reports (metrics file
// now; /metrics with the admin API issue).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace balctl {

class engine_metrics {
public:
  std::atomic<std::uint64_t> decisions{0};
  std::atomic<std::uint64_t> failovers{0};
  std::atomic<std::uint64_t> holds{0};
  std::atomic<std::uint64_t> actor_restarts{0};
  std::atomic<std::uint64_t> store_errors{0};
  // Member deadlines the pools handled: re-armed in place for a healthy
  // member heard meanwhile, or woke the member actor to evaluate. In the
  // steady state only the first grows.
  std::atomic<std::uint64_t> deadlines_rearmed{0};
  std::atomic<std::uint64_t> member_wakes{0};
  std::atomic<int> live_pools{0}; // pool actors running (shutdown waits on it)
  std::atomic<int> live_members{0}; // member actors alive, every pool

  /// How late a down transition was after its deadline (last_seen + delay).
  void record_down_lateness(std::int64_t ms) {
    std::lock_guard<std::mutex> g(mu_);
    if (lateness_ms_.size() < max_samples) {
      lateness_ms_.push_back(ms);
    }
  }
  /// Percentile (0..100) of recorded lateness; -1 when none.
  std::int64_t down_lateness_percentile(double pct) const {
    std::lock_guard<std::mutex> g(mu_);
    if (lateness_ms_.empty()) {
      return -1;
    }
    auto v = lateness_ms_;
    auto idx = static_cast<std::size_t>(pct / 100.0 * (v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + idx, v.end());
    return v[idx];
  }
  std::size_t down_samples() const {
    std::lock_guard<std::mutex> g(mu_);
    return lateness_ms_.size();
  }

private:
  static constexpr std::size_t max_samples = 1'000'000;
  mutable std::mutex mu_;
  std::vector<std::int64_t> lateness_ms_;
};

} // namespace balctl
