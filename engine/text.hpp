#pragma once

// ASCII text helpers shared by the engine and the agent (header-only: the
// agent builds without the engine's libraries). Locale-free on purpose:
// HTTP header names and MySQL status names are ASCII.

#include <string_view>

namespace balctl {

inline char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

/// ASCII case-insensitive equality.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) {
      return false;
    }
  }
  return true;
}

} // namespace balctl
