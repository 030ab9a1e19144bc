#include "engine/types.hpp"

namespace balctl {

const char* to_string(member_state s) {
  switch (s) {
    case member_state::pending: return "pending";
    case member_state::healthy: return "healthy";
    case member_state::suspect: return "suspect";
    case member_state::down: return "down";
    case member_state::recovering: return "recovering";
  }
  return "unknown";
}

bool from_string(const std::string& s, member_state& out) {
  for (auto v : {member_state::pending, member_state::healthy,
                 member_state::suspect, member_state::down,
                 member_state::recovering}) {
    if (s == to_string(v)) {
      out = v;
      return true;
    }
  }
  return false;
}

const char* to_string(pool_preset p) {
  return p == pool_preset::haproxy ? "haproxy" : "generic-linux";
}

bool from_string(const std::string& s, pool_preset& out) {
  if (s == "generic-linux") {
    out = pool_preset::generic_linux;
    return true;
  }
  if (s == "haproxy") {
    out = pool_preset::haproxy;
    return true;
  }
  return false;
}

const char* to_string(failback_policy p) {
  return p == failback_policy::automatic ? "automatic" : "manual";
}

bool from_string(const std::string& s, failback_policy& out) {
  if (s == "manual") {
    out = failback_policy::manual;
    return true;
  }
  if (s == "automatic") {
    out = failback_policy::automatic;
    return true;
  }
  return false;
}

const char* to_string(linux_family f) {
  switch (f) {
    case linux_family::rhel: return "rhel";
    case linux_family::debian: return "debian";
    case linux_family::none: break;
  }
  return "";
}

bool from_string(const std::string& s, linux_family& out) {
  if (s == "rhel") {
    out = linux_family::rhel;
  } else if (s == "debian") {
    out = linux_family::debian;
  } else {
    return false;
  }
  return true;
}

} // namespace balctl
