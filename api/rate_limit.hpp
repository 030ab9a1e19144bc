#pragma once

// Limits for unauthenticated callers. failure_limiter: enrollment failures
// per source address (DESIGN.md, Security: brute force gets nowhere). A
// source that failed `limit` times within the current fixed one-minute
// window is refused until the window ends, before its secret is even
// looked at. Time is passed in; thread-safe (failures are
// recorded from engine threads, checks made on the HTTP loop).

#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "engine/registry.hpp" // ip_address

namespace balctl::api {

struct ip_hash {
  std::size_t operator()(const ip_address& a) const noexcept;
};

class failure_limiter {
public:
  failure_limiter(int limit, std::int64_t window_ms = 60'000,
                  std::size_t max_sources = 100'000)
    : limit_(limit), window_ms_(window_ms), max_sources_(max_sources) {}

  /// 0 when source may try now, else the milliseconds until it may.
  std::int64_t blocked_for_ms(const ip_address& source, std::int64_t now_ms);
  void record_failure(const ip_address& source, std::int64_t now_ms);
  /// A success does not wipe earlier failures: a brute-forcer that also
  /// holds one valid secret gains nothing from it.
  std::size_t tracked() const;

private:
  struct window {
    std::int64_t start_ms = 0;
    int failures = 0;
  };
  void evict_expired(std::int64_t now_ms);

  int limit_;
  std::int64_t window_ms_;
  std::size_t max_sources_;
  mutable std::mutex mu_;
  std::unordered_map<ip_address, window, ip_hash> by_source_;
};

/// A token bucket shared by every caller: it holds at most `burst` tokens
/// and gains one every `refill_ms`; a full bucket banks no time. Time is
/// passed in; thread-safe.
class token_bucket {
public:
  token_bucket(int burst, std::int64_t refill_ms)
    : burst_(burst), refill_ms_(refill_ms), tokens_(burst) {}

  /// Takes a token: 0 when there was one, else the milliseconds until the
  /// next one arrives (and nothing is taken).
  std::int64_t take(std::int64_t now_ms);

private:
  std::int64_t burst_;
  std::int64_t refill_ms_;
  std::mutex mu_;
  std::int64_t tokens_;
  std::int64_t refilled_ms_ = 0; // when the last token was added
};

} // namespace balctl::api
