#pragma once

// Pool features follow from what agents report, computed here and nowhere
// else (DESIGN.md principle 7; the seed's pool tab visibility table).

#include <cstddef>

#include "engine/types.hpp"

namespace balctl {

struct pool_features {
  bool overview = true;
  bool monitoring = true;
  bool settings = true;
  bool protection = false;  // 2+ members report cPanel (generic-linux)
  bool managed_dns = false; // same rule as protection on generic pools
};

pool_features compute_features(pool_preset preset, std::size_t cpanel_members);

} // namespace balctl
