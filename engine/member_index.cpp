#include "engine/member_index.hpp"

#include <algorithm>

namespace balctl {

namespace {

bool id_less(const std::pair<member_id, member_index::position>& e,
             member_id m) {
  return e.first < m;
}

} // namespace

member_index::member_index(const std::vector<member_id>& ids) {
  entries_.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    entries_.emplace_back(ids[i], static_cast<position>(i));
  }
  // Stable, so the first of two equal ids keeps its place and wins.
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  entries_.erase(std::unique(entries_.begin(), entries_.end(),
                             [](const auto& a, const auto& b) {
                               return a.first == b.first;
                             }),
                 entries_.end());
  entries_.shrink_to_fit();
}

std::optional<member_index::position> member_index::find(member_id m) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), m, id_less);
  if (it == entries_.end() || it->first != m) {
    return std::nullopt;
  }
  return it->second;
}

void member_index::insert(member_id m, position pos) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), m, id_less);
  if (it != entries_.end() && it->first == m) {
    it->second = pos;
    return;
  }
  entries_.insert(it, {m, pos});
}

std::optional<member_index::position> member_index::erase_and_shift(member_id m) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), m, id_less);
  if (it == entries_.end() || it->first != m) {
    return std::nullopt;
  }
  const position gone = it->second;
  entries_.erase(it);
  for (auto& e : entries_) {
    if (e.second > gone) {
      --e.second;
    }
  }
  return gone;
}

} // namespace balctl
