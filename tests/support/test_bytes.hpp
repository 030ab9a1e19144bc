#pragma once

// Chunk-like test data and the wall clock, shared by the object storage
// tests (tests/objstore, tests/e2e/chunk_store_e2e_test.cpp).

#include <chrono>
#include <cstdint>
#include <string>

namespace balctl::test {

/// n bytes of reproducible noise (every byte value, no pattern a store
/// could compress or a comparison could miss): a different seed, other bytes.
inline std::string pattern_bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

/// Unix time in ms from the system clock (what a real server compares
/// URLs' expiry with).
inline std::int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace balctl::test
