#include "engine/dns_queue.hpp"

#include <algorithm>

namespace balctl {

std::string record_key(const dns::record& r) {
  return dns::canonical_name(r.name) + "/" + dns::to_string(r.type);
}

std::string job_key(const dns_job& j) {
  switch (j.op) {
    case dns_op::apply: return record_key(j.desired);
    // Each read and list stands alone (its own asker waits for it): keyed
    // by its id, it never supersedes nor is superseded.
    case dns_op::read: return "read:" + std::to_string(j.id);
    case dns_op::list: return "list:" + std::to_string(j.id);
  }
  return {};
}

void dns_queue::make_ready(const dns_job& j) {
  if (j.not_before_ms > 0) {
    waiting_.emplace(j.not_before_ms, j.id);
  } else {
    ready_.insert(order_of(j));
  }
}

std::vector<std::int64_t> dns_queue::add(dns_job j) {
  std::vector<std::int64_t> superseded;
  auto key = job_key(j);
  // Journal order decides between journaled changes of a record; reads and
  // lists (keys of their own) and unjournaled changes never enter it.
  if (j.op == dns_op::apply && j.id > 0 && j.id < unjournaled_id_base) {
    auto newest = newest_.find(key);
    if (newest != newest_.end() && newest->second > j.id) {
      superseded.push_back(j.id);
      return superseded;
    }
    newest_[key] = j.id;
  }
  if (auto q = queued_for_.find(key); q != queued_for_.end()) {
    auto& old = jobs_.at(q->second);
    ready_.erase(order_of(old));
    waiting_.erase({old.not_before_ms, old.id});
    superseded.push_back(old.id);
    // The newer change inherits the older one's urgency and place: a
    // failover record superseded by a newer failover stays first.
    j.priority = std::min(j.priority, old.priority);
    j.round = std::min(j.round, old.round);
    jobs_.erase(q->second);
    queued_for_.erase(q);
  }
  queued_for_[key] = j.id;
  auto id = j.id;
  auto& stored = jobs_.emplace(id, std::move(j)).first->second;
  if (running_.count(key) == 0) {
    make_ready(stored);
  }
  return superseded;
}

std::optional<dns_job> dns_queue::pop(std::int64_t now_ms, int max_priority) {
  while (!waiting_.empty() && waiting_.begin()->first <= now_ms) {
    auto id = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    ready_.insert(order_of(jobs_.at(id)));
  }
  if (ready_.empty() || std::get<0>(*ready_.begin()) > max_priority) {
    return std::nullopt;
  }
  auto id = std::get<2>(*ready_.begin());
  ready_.erase(ready_.begin());
  auto node = jobs_.extract(id);
  dns_job j = std::move(node.mapped());
  auto key = job_key(j);
  queued_for_.erase(key);
  running_[key] = j.id;
  return j;
}

void dns_queue::finish(const dns_job& j) {
  auto key = job_key(j);
  auto r = running_.find(key);
  if (r == running_.end() || r->second != j.id) {
    return;
  }
  running_.erase(r);
  if (auto q = queued_for_.find(key); q != queued_for_.end()) {
    make_ready(jobs_.at(q->second));
  }
}

std::optional<std::int64_t> dns_queue::retry(dns_job j) {
  auto key = job_key(j);
  auto r = running_.find(key);
  if (r == running_.end() || r->second != j.id) {
    return std::nullopt;
  }
  running_.erase(r);
  if (auto q = queued_for_.find(key); q != queued_for_.end()) {
    // A newer change of the record is waiting: it replaces this one.
    make_ready(jobs_.at(q->second));
    return j.id;
  }
  queued_for_[key] = j.id;
  auto id = j.id;
  auto& stored = jobs_.emplace(id, std::move(j)).first->second;
  make_ready(stored);
  return std::nullopt;
}

std::optional<std::int64_t> dns_queue::next_wake_ms() const {
  if (waiting_.empty()) {
    return std::nullopt;
  }
  return waiting_.begin()->first;
}

rate_window::rate_window(int limit, std::int64_t window_ms, int reserve)
  : limit_(std::max(0, limit)), window_ms_(std::max<std::int64_t>(1, window_ms)),
    margin_ms_(std::clamp<std::int64_t>(window_ms / 20, 50, 2000)),
    reserve_(std::clamp(reserve, 0, std::max(0, limit - 1))) {}

void rate_window::expire(std::int64_t now_ms) {
  while (!sent_ms_.empty() && sent_ms_.front() <= now_ms - window_ms_ - margin_ms_) {
    sent_ms_.pop_front();
  }
}

std::size_t rate_window::cap(bool urgent) const {
  return static_cast<std::size_t>(urgent ? limit_ : limit_ - reserve_);
}

std::size_t rate_window::in_window(std::int64_t now_ms) {
  expire(now_ms);
  return sent_ms_.size();
}

std::int64_t rate_window::gap_us() const {
  // The non-urgent share of a window, spread evenly over it.
  auto share = std::max(1, limit_ - reserve_);
  return (window_ms_ + margin_ms_) * 1000 / share;
}

bool rate_window::try_acquire(std::int64_t now_ms, bool urgent) {
  if (now_ms < paused_until_ms_) {
    return false;
  }
  if (limit_ == 0) {
    return true;
  }
  expire(now_ms);
  if (sent_ms_.size() >= cap(urgent)) {
    return false;
  }
  if (!urgent) {
    auto now_us = now_ms * 1000;
    if (now_us < next_paced_us_) {
      return false;
    }
    // On schedule (less than a gap late: the clock ticks in ms, the gap
    // may be a fraction of one), the next slot keeps the schedule; after a
    // pause it starts from now: no credit saved up while idle.
    next_paced_us_ = now_us - next_paced_us_ < gap_us() ? next_paced_us_ + gap_us()
                                                         : now_us + gap_us();
  }
  sent_ms_.push_back(now_ms);
  return true;
}

std::int64_t rate_window::next_free_ms(std::int64_t now_ms, bool urgent) {
  auto t = std::max(now_ms, paused_until_ms_);
  if (limit_ == 0) {
    return t;
  }
  expire(now_ms);
  if (!urgent) {
    t = std::max(t, (next_paced_us_ + 999) / 1000);
  }
  auto c = cap(urgent);
  if (sent_ms_.size() < c) {
    return t;
  }
  // The slot frees when the entry that keeps the count at the cap leaves
  // the window (it leaves once it is window_ms old).
  auto leaving = sent_ms_[sent_ms_.size() - c] + window_ms_ + margin_ms_;
  return std::max(t, leaving);
}

void rate_window::pause_until(std::int64_t until_ms) {
  paused_until_ms_ = std::max(paused_until_ms_, until_ms);
}

std::int64_t dns_retry_delay_ms(int attempts, dns::failure why,
                                std::int64_t retry_after_ms, double rnd01) {
  constexpr std::int64_t max_ms = 300'000;
  std::int64_t base = why == dns::failure::auth ? 30'000 : 1'000;
  int shift = std::clamp(attempts - 1, 0, 20);
  auto full = std::min(max_ms, base << shift);
  auto jittered = full / 2 + static_cast<std::int64_t>(
                                 static_cast<double>(full / 2) *
                                 std::clamp(rnd01, 0.0, 1.0));
  return std::max(jittered, retry_after_ms);
}

} // namespace balctl
