#pragma once

// Retry spacing for the agent: exponential back-off with full jitter
// (AWS Architecture Blog, "Exponential Backoff And Jitter"), so a fleet
// that lost its engine at once does not reconnect in lockstep, and an agent
// that cannot reach the engine never spins. Pure: the random source is
// passed in, so tests pin every delay.

#include <cstdint>
#include <functional>

namespace balctl::agent {

class backoff {
public:
  /// base_ms: the first ceiling; max_ms: the largest ceiling.
  backoff(std::int64_t base_ms, std::int64_t max_ms);
  /// The next delay, uniformly in [ceiling/2, ceiling], where the ceiling
  /// doubles per failure up to max_ms. uniform(n) must return [0, n).
  std::int64_t next(const std::function<std::uint64_t(std::uint64_t)>& uniform);
  /// After a success: the next failure starts from base again.
  void reset() { failures_ = 0; }
  int failures() const { return failures_; }
  std::int64_t ceiling_ms() const;

private:
  std::int64_t base_ms_;
  std::int64_t max_ms_;
  int failures_ = 0;
};

/// The delay to the next heartbeat: interval_ms ± 10 %, uniformly, so a
/// fleet restarted together drifts apart instead of beating in lockstep.
std::int64_t jittered(std::int64_t interval_ms,
                      const std::function<std::uint64_t(std::uint64_t)>& uniform);

} // namespace balctl::agent
