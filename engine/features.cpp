#include "engine/features.hpp"

namespace balctl {

pool_features compute_features(pool_preset preset, std::size_t cpanel_members) {
  pool_features f; // overview, monitoring and settings are always shown
  switch (preset) {
    case pool_preset::generic_linux:
      // Account replication needs a source and a target: two cPanel hosts.
      f.protection = cpanel_members >= 2;
      f.managed_dns = f.protection;
      break;
    case pool_preset::haproxy:
      // The HAProxy preset fails over through its own Balancer settings;
      // see the header.
      break;
  }
  return f;
}

} // namespace balctl
