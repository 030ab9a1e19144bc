#pragma once

// Records the alerts posted to it, for tests of what raises alerts (the
// actors) without SMTP or HTTP. Counts posted only; nothing is
// de-duplicated, queued or sent.

#include <mutex>
#include <vector>

#include "adapters/notify/notifier.hpp"

namespace balctl::test {

class fake_notify_service final : public notify::notify_service {
public:
  bool post(notify::alert a) override {
    std::lock_guard<std::mutex> g(mu_);
    ++counters_.posted;
    posted_.push_back(std::move(a));
    return true;
  }
  notify::notify_counters counters() const override {
    std::lock_guard<std::mutex> g(mu_);
    return counters_;
  }
  void stop() override {}
  std::vector<notify::alert> posted() const {
    std::lock_guard<std::mutex> g(mu_);
    return posted_;
  }

private:
  mutable std::mutex mu_;
  notify::notify_counters counters_;
  std::vector<notify::alert> posted_;
};

} // namespace balctl::test
