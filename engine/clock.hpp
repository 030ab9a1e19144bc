#pragma once

// Time is injected (DESIGN.md, principle 3): every rule that depends on time
// reads one of these, so tests drive it instead of sleeping.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace balctl {

/// Wall-clock milliseconds since the Unix epoch.
class clock {
public:
  virtual ~clock() = default;
  virtual std::int64_t now_ms() const = 0;
};

class system_clock_impl final : public clock {
public:
  std::int64_t now_ms() const override {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
      .count();
  }
};

/// A clock a test sets by hand; safe to read from other threads.
class manual_clock final : public clock {
public:
  explicit manual_clock(std::int64_t start_ms = 1'700'000'000'000)
    : now_(start_ms) {}
  std::int64_t now_ms() const override { return now_.load(); }
  void set(std::int64_t ms) { now_.store(ms); }
  void advance(std::int64_t ms) { now_.fetch_add(ms); }

private:
  std::atomic<std::int64_t> now_;
};

} // namespace balctl
