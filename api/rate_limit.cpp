#include "api/rate_limit.hpp"

#include <algorithm>
#include <cstring>

namespace balctl::api {

std::size_t ip_hash::operator()(const ip_address& a) const noexcept {
  std::uint64_t x, y;
  std::memcpy(&x, a.bytes.data(), 8);
  std::memcpy(&y, a.bytes.data() + 8, 8);
  return std::hash<std::uint64_t>{}(x * 0x9e3779b97f4a7c15ull ^ y);
}

std::int64_t failure_limiter::blocked_for_ms(const ip_address& source,
                                             std::int64_t now_ms) {
  std::lock_guard<std::mutex> g(mu_);
  auto i = by_source_.find(source);
  if (i == by_source_.end()) {
    return 0;
  }
  auto end = i->second.start_ms + window_ms_;
  if (now_ms >= end) {
    by_source_.erase(i);
    return 0;
  }
  return i->second.failures >= limit_ ? end - now_ms : 0;
}

void failure_limiter::record_failure(const ip_address& source,
                                     std::int64_t now_ms) {
  std::lock_guard<std::mutex> g(mu_);
  if (by_source_.size() >= max_sources_) {
    evict_expired(now_ms);
  }
  auto& w = by_source_[source];
  if (w.failures == 0 || now_ms >= w.start_ms + window_ms_) {
    w.start_ms = now_ms;
    w.failures = 0;
  }
  ++w.failures;
}

std::size_t failure_limiter::tracked() const {
  std::lock_guard<std::mutex> g(mu_);
  return by_source_.size();
}

void failure_limiter::evict_expired(std::int64_t now_ms) {
  for (auto i = by_source_.begin(); i != by_source_.end();) {
    if (now_ms >= i->second.start_ms + window_ms_) {
      i = by_source_.erase(i);
    } else {
      ++i;
    }
  }
  // Still full of live windows (a spread-out attack): forget the oldest
  // half rather than grow without bound; those sources start afresh.
  if (by_source_.size() >= max_sources_) {
    std::size_t n = by_source_.size() / 2;
    for (auto i = by_source_.begin(); i != by_source_.end() && n > 0; --n) {
      i = by_source_.erase(i);
    }
  }
}

std::int64_t token_bucket::take(std::int64_t now_ms) {
  std::lock_guard<std::mutex> g(mu_);
  if (now_ms < refilled_ms_) {
    // The wall clock stepped back: count the next token from now rather
    // than wait for the old instant to come round again.
    refilled_ms_ = now_ms;
  }
  auto due = (now_ms - refilled_ms_) / refill_ms_;
  if (due > 0) {
    tokens_ = std::min(burst_, tokens_ + due);
    refilled_ms_ += due * refill_ms_;
  }
  if (tokens_ >= burst_) {
    // Full: time spent full earns nothing, so after this take the next
    // token is a whole refill_ms away.
    refilled_ms_ = now_ms;
  }
  if (tokens_ > 0) {
    --tokens_;
    return 0;
  }
  return refilled_ms_ + refill_ms_ - now_ms;
}

} // namespace balctl::api
