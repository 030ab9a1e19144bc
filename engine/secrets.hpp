#pragma once

// Secrets the engine hands out (enrollment secrets, heartbeat keys) and
// the hashes it keeps of what it only verifies (enrollment secrets, admin
// tokens). OpenSSL's CSPRNG and SHA-256; comparisons in constant time.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace balctl::secrets {

using digest = std::array<std::uint8_t, 32>;

/// n random bytes from OpenSSL's CSPRNG, as 2n lower-case hex characters.
/// Throws std::runtime_error if the generator fails (never silently weak).
std::string random_hex(std::size_t n);
/// 32 random bytes (a heartbeat key).
std::array<std::uint8_t, 32> random_key();

digest sha256(std::string_view data);
/// HMAC-SHA256 of data under key (any length). Throws std::runtime_error
/// if OpenSSL fails.
digest hmac_sha256(std::string_view key, std::string_view data);
std::string to_hex(const std::uint8_t* data, std::size_t n);
inline std::string to_hex(const digest& d) { return to_hex(d.data(), d.size()); }

/// Constant-time equality (CRYPTO_memcmp).
bool equal(const digest& a, const digest& b);

} // namespace balctl::secrets
