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

/// Which pool tabs a pool shows. Overview, Monitoring and Settings always.
/// generic_linux: Protection and Managed DNS when cpanel_members >= 2 (the
/// seed's tab visibility table). haproxy: never. An HAProxy pool fails over
/// through its own Balancer failover on Settings (systemd health of HAProxy
/// drives it), not through per-account cPanel replication and DNS cut-over,
/// so offering Protection / Managed DNS there would put a second, competing
/// failover path on the same traffic.
pool_features compute_features(pool_preset preset, std::size_t cpanel_members);

} // namespace balctl
