#pragma once

// The notifier's decisions, apart from its I/O (CONVENTIONS.md): which
// alerts are suppressed as repeats, and how long a failed delivery waits.
// Plain classes, time passed in, tested without a network.

#include <cstdint>
#include <string>
#include <unordered_map>

namespace balctl::notify {

/// Suppresses an alert whose key was accepted less than window_ms ago, and
/// counts it, so a flapping member does not flood an inbox. The next alert
/// of that key after the window learns how many were suppressed.
class dedup {
public:
  explicit dedup(std::int64_t window_ms) : window_ms_(window_ms) {}

  struct decision {
    bool suppressed = false;
    std::uint64_t earlier_suppressed = 0; // when not suppressed: since since_ms
    std::int64_t since_ms = 0;            // the last accepted alert of the key
  };
  /// Whether an alert of key at now_ms is suppressed (then counted).
  decision decide(const std::string& key, std::int64_t now_ms);
  /// The alert decide() let through was queued: its window starts now and
  /// the key's count of suppressed alerts starts again at 0.
  void accepted(const std::string& key, std::int64_t now_ms);
  std::size_t keys() const { return keys_.size(); }

private:
  struct entry {
    std::int64_t accepted_ms = 0;
    std::uint64_t suppressed = 0;
  };
  std::int64_t window_ms_;
  std::unordered_map<std::string, entry> keys_;
  std::size_t prune_at_ = 1024; // keys_ size that triggers the next sweep
};

/// The wait before retry number `retry` (1 = after the first failure):
/// initial_ms doubling per retry up to max_ms, then "equal jitter": half of
/// it fixed, half drawn from random_bits, so deliveries that failed together
/// do not all come back at once.
std::int64_t backoff_ms(int retry, std::int64_t initial_ms, std::int64_t max_ms,
                        std::uint32_t random_bits);

} // namespace balctl::notify
