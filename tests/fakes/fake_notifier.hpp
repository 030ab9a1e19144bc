#pragma once

// Records what ingest tells the actor layer, for tests without actors.

#include <mutex>
#include <vector>

#include "engine/registry.hpp"

namespace balctl::test {

class fake_notifier final : public member_notifier {
public:
  void heard(member_id m) override {
    std::lock_guard<std::mutex> g(mu_);
    heard_.push_back(m);
  }
  void status_changed(member_id m, member_status s) override {
    std::lock_guard<std::mutex> g(mu_);
    statuses_.emplace_back(m, std::move(s));
  }
  std::vector<member_id> heard_calls() {
    std::lock_guard<std::mutex> g(mu_);
    return heard_;
  }
  std::vector<std::pair<member_id, member_status>> status_calls() {
    std::lock_guard<std::mutex> g(mu_);
    return statuses_;
  }

private:
  std::mutex mu_;
  std::vector<member_id> heard_;
  std::vector<std::pair<member_id, member_status>> statuses_;
};

} // namespace balctl::test
