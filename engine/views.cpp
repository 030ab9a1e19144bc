#include "engine/views.hpp"

namespace balctl {

namespace {

// "1.10.0-rc1" -> {1, 10, 0}; stops at the first part that is not a number.
std::vector<unsigned long> version_parts(const std::string& v) {
  std::vector<unsigned long> out;
  std::size_t i = 0;
  while (i < v.size() && out.size() < 8) {
    if (v[i] < '0' || v[i] > '9') {
      break;
    }
    unsigned long n = 0;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') {
      n = n * 10 + static_cast<unsigned long>(v[i] - '0');
      if (n > 1'000'000'000ul) {
        n = 1'000'000'000ul;
      }
      ++i;
    }
    out.push_back(n);
    if (i < v.size() && v[i] == '.') {
      ++i;
    } else {
      break;
    }
  }
  return out;
}

} // namespace

bool version_older(const std::string& have, const std::string& latest) {
  auto a = version_parts(have);
  auto b = version_parts(latest);
  auto n = std::max(a.size(), b.size());
  a.resize(n, 0);
  b.resize(n, 0);
  return a < b;
}

} // namespace balctl
