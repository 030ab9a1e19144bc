#pragma once

// Member id → position in a pool's configured order, as a sorted vector of
// (id, position) pairs: 16 bytes a member, where a std::unordered_map node
// costs about 48 plus its bucket, and a node holds up to a million members.
// Lookups are binary searches; insertions and removals shift the vector, which
// is fine for what they are: start-up and operator changes, not heartbeats.

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "engine/types.hpp"

namespace balctl {

class member_index {
public:
  using position = std::uint32_t;

  /// Builds the index of ids[0..n): id i is at position i. Duplicate ids
  /// keep their first position.
  explicit member_index(const std::vector<member_id>& ids = {});

  std::optional<position> find(member_id m) const;
  bool contains(member_id m) const { return find(m).has_value(); }
  std::size_t size() const { return entries_.size(); }

  /// Adds m at pos, or moves it there when it is known already.
  void insert(member_id m, position pos);
  /// Removes m; every position after m's shifts down by one, as it does in
  /// the vector the index describes. Returns m's position, if m was known.
  std::optional<position> erase_and_shift(member_id m);

private:
  std::vector<std::pair<member_id, position>> entries_; // sorted by id
};

} // namespace balctl
