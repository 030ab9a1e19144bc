#pragma once

// The lazy deadline timers of one pool's members (DESIGN.md principle 1), in
// one binary min-heap instead of one actor-system timer per member: a timer
// in CAF 0.17's clock costs about 250 bytes (a map node and a mailbox
// element), an entry here 16. The pool actor arms a single CAF timer at
// next_ms() and, when it fires, takes the due members with pop_due().
//
// Each member has at most one live deadline. Arming a member no earlier than
// its live deadline changes nothing: that one fires first and its owner
// re-arms for the remainder. Arming it earlier pushes a new entry; the old
// one goes stale and is skipped when it reaches the top. Stale entries are
// bounded: the heap is rebuilt to the live deadlines, one entry per member,
// before they would outnumber half the live ones.
//
// Plain class: no CAF, time passed in. Members are positions 0..n-1 in the
// owner's order (pool_policy::position_of).

#include <cstdint>
#include <optional>
#include <vector>

namespace balctl {

class deadline_queue {
public:
  using position = std::uint32_t;

  /// Members 0..n-1, none armed. Growing keeps what is armed; shrinking
  /// drops the members past n.
  void resize(std::size_t n);
  std::size_t size() const { return armed_ms_.size(); }

  /// Arms member i at deadline_ms unless it is armed no later already.
  /// Returns true when i's deadline changed.
  bool arm(position i, std::int64_t deadline_ms);
  /// Removes member i; members after it move down one position, as in the
  /// owner's order. O(n): for operator changes, not heartbeats.
  void erase(position i);
  /// Cancels member i's deadline, if any.
  void disarm(position i);
  /// The live deadline of member i, if armed.
  std::optional<std::int64_t> armed_ms(position i) const;

  /// The earliest live deadline, if any member is armed.
  std::optional<std::int64_t> next_ms() const;
  /// Appends every member whose deadline is <= now_ms to out, earliest
  /// first, and disarms them.
  void pop_due(std::int64_t now_ms, std::vector<position>& out);

  /// Entries in the heap, live and stale (for tests and the size bound).
  std::size_t heap_size() const { return heap_.size(); }
  std::size_t live() const { return live_; }
  std::size_t heap_capacity() const { return heap_.capacity(); }
  std::size_t rebuilds() const { return rebuilds_; }

private:
  struct entry {
    std::int64_t at_ms;
    position member;
  };
  static bool later(const entry& a, const entry& b) { return a.at_ms > b.at_ms; }
  bool is_live(const entry& e) const;
  void drop_stale_top();
  void rebuild();

  static constexpr std::int64_t none = INT64_MIN; // not armed
  std::vector<entry> heap_;
  std::vector<std::int64_t> armed_ms_;
  std::size_t live_ = 0;
  std::size_t rebuilds_ = 0;
};

} // namespace balctl
