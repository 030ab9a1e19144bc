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
  // The store unavailable (Redis down): 1 while writes are owed.
  std::atomic<int> store_degraded{0};
  std::atomic<std::uint64_t> store_owed{0};         // writes kept to replay
  std::atomic<std::uint64_t> store_owed_dropped{0}; // beyond max_owed
  std::atomic<std::uint64_t> store_fenced{0};       // writes refused: pool taken over
  // Member deadlines the pools handled: re-armed in place for a healthy
  // member heard meanwhile, or woke the member actor to evaluate. In the
  // steady state only the first grows.
  std::atomic<std::uint64_t> deadlines_rearmed{0};
  std::atomic<std::uint64_t> member_wakes{0};
  // DNS executors (every provider credential together).
  std::atomic<std::uint64_t> dns_requests{0};          // requests sent to providers
  std::atomic<std::uint64_t> dns_transport_errors{0};  // no answer (network, timeout)
  std::atomic<std::uint64_t> dns_rate_limited{0};      // 429 / slow-down answers
  std::atomic<std::uint64_t> dns_retries{0};
  std::atomic<std::uint64_t> dns_writes{0};            // changes written and confirmed
  std::atomic<std::uint64_t> dns_writes_saved{0};      // changes already in place
  std::atomic<std::uint64_t> dns_changes_done{0};
  std::atomic<std::uint64_t> dns_changes_failed{0};
  std::atomic<std::uint64_t> dns_changes_superseded{0};
  std::atomic<std::uint64_t> account_cuts{0};          // protected accounts cut (either way)
  // Protection's replication runs, every account together.
  std::atomic<std::uint64_t> replication_runs_ok{0};      // restored on the standby
  std::atomic<std::uint64_t> replication_runs_failed{0};  // attempts that failed
  std::atomic<std::uint64_t> replication_starts_skipped{0}; // overlap, or not startable
  std::atomic<std::uint64_t> replication_chunks_stored{0};  // chunks the source reported stored
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
    return percentile(lateness_ms_, pct);
  }
  /// From a decision to the first provider request of its changes at one
  /// credential (actors/dns_executor); pool failover records (priority 0)
  /// apart from the rest.
  void record_dns_first_request(int priority, std::int64_t ms) {
    std::lock_guard<std::mutex> g(mu_);
    auto& v = priority == 0 ? dns_first_pool_ms_ : dns_first_other_ms_;
    if (v.size() < max_samples) {
      v.push_back(ms);
    }
  }
  /// Percentile of those latencies (priority 0 or the others); -1 = none.
  std::int64_t dns_first_request_percentile(bool pool_records, double pct) const {
    std::lock_guard<std::mutex> g(mu_);
    return percentile(pool_records ? dns_first_pool_ms_ : dns_first_other_ms_, pct);
  }
  std::size_t down_samples() const {
    std::lock_guard<std::mutex> g(mu_);
    return lateness_ms_.size();
  }

private:
  static std::int64_t percentile(std::vector<std::int64_t> v, double pct) {
    if (v.empty()) {
      return -1;
    }
    auto idx = static_cast<std::size_t>(pct / 100.0 * (v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + idx, v.end());
    return v[idx];
  }
  static constexpr std::size_t max_samples = 1'000'000;
  std::vector<std::int64_t> dns_first_pool_ms_;
  std::vector<std::int64_t> dns_first_other_ms_;
  mutable std::mutex mu_;
  std::vector<std::int64_t> lateness_ms_;
};

} // namespace balctl
