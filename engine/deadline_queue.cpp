#include "engine/deadline_queue.hpp"

#include <algorithm>

namespace balctl {

void deadline_queue::resize(std::size_t n) {
  if (n < armed_ms_.size()) {
    for (std::size_t i = n; i < armed_ms_.size(); ++i) {
      live_ -= armed_ms_[i] != none ? 1 : 0;
    }
    armed_ms_.resize(n);
    rebuild();
    return;
  }
  armed_ms_.resize(n, none);
  // Room for every member's live entry plus the stale ones the bound below
  // allows, so the heap never grows by doubling past that.
  heap_.reserve(n + n / 2 + 64);
}

bool deadline_queue::is_live(const entry& e) const {
  return e.member < armed_ms_.size() && armed_ms_[e.member] == e.at_ms;
}

bool deadline_queue::arm(position i, std::int64_t deadline_ms) {
  if (i >= armed_ms_.size() || deadline_ms == none) {
    return false;
  }
  auto& armed = armed_ms_[i];
  if (armed != none && armed <= deadline_ms) {
    return false;
  }
  live_ += armed == none ? 1 : 0;
  armed = deadline_ms;
  // Each re-arm earlier than the live deadline leaves one stale entry
  // behind. Dropping them once they would outnumber half the live ones
  // keeps the heap within 1.5 times the armed members, checked before the
  // push so the vector never outgrows what resize() reserved. Amortised
  // O(log n) a re-arm: a rebuild costs O(heap log heap) and clears at least
  // live/2 + 64 stale entries, each of which cost one arm.
  if (heap_.size() + 1 > live_ + live_ / 2 + 64) {
    rebuild();
  }
  heap_.push_back(entry{deadline_ms, i});
  std::push_heap(heap_.begin(), heap_.end(), later);
  return true;
}

void deadline_queue::erase(position i) {
  if (i >= armed_ms_.size()) {
    return;
  }
  live_ -= armed_ms_[i] != none ? 1 : 0;
  armed_ms_.erase(armed_ms_.begin() + i);
  heap_.erase(std::remove_if(heap_.begin(), heap_.end(),
                             [&](const entry& e) { return e.member == i; }),
              heap_.end());
  for (auto& e : heap_) {
    e.member -= e.member > i ? 1 : 0;
  }
  rebuild();
}

void deadline_queue::disarm(position i) {
  if (i >= armed_ms_.size() || armed_ms_[i] == none) {
    return;
  }
  armed_ms_[i] = none;
  --live_;
  drop_stale_top();
}

std::optional<std::int64_t> deadline_queue::armed_ms(position i) const {
  if (i >= armed_ms_.size() || armed_ms_[i] == none) {
    return std::nullopt;
  }
  return armed_ms_[i];
}

std::optional<std::int64_t> deadline_queue::next_ms() const {
  // The top is kept live by every operation that could make it stale.
  if (heap_.empty()) {
    return std::nullopt;
  }
  return heap_.front().at_ms;
}

void deadline_queue::pop_due(std::int64_t now_ms, std::vector<position>& out) {
  while (!heap_.empty() && heap_.front().at_ms <= now_ms) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const entry e = heap_.back();
    heap_.pop_back();
    if (is_live(e)) {
      armed_ms_[e.member] = none;
      --live_;
      out.push_back(e.member);
    }
  }
  drop_stale_top();
}

void deadline_queue::drop_stale_top() {
  while (!heap_.empty() && !is_live(heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
  }
}

void deadline_queue::rebuild() {
  // Filters the heap itself, not every position: a large pool with few
  // armed members must not pay for the unarmed ones. A stale entry looks
  // live again when its member is re-armed at exactly its time, so live
  // entries are also made unique per member: after a rebuild the heap holds
  // exactly the live deadlines, which is what makes the bound amortise.
  heap_.erase(std::remove_if(heap_.begin(), heap_.end(),
                             [&](const entry& e) { return !is_live(e); }),
              heap_.end());
  std::sort(heap_.begin(), heap_.end(),
            [](const entry& a, const entry& b) { return a.member < b.member; });
  heap_.erase(std::unique(heap_.begin(), heap_.end(),
                          [](const entry& a, const entry& b) {
                            return a.member == b.member;
                          }),
              heap_.end());
  std::make_heap(heap_.begin(), heap_.end(), later);
  ++rebuilds_;
}

} // namespace balctl
