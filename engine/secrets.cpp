#include "engine/secrets.hpp"

#include <stdexcept>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace balctl::secrets {

namespace {

void random_bytes(std::uint8_t* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    throw std::runtime_error("secrets: RAND_bytes failed");
  }
}

} // namespace

std::string random_hex(std::size_t n) {
  std::vector<std::uint8_t> buf(n);
  random_bytes(buf.data(), n);
  auto hex = to_hex(buf.data(), n);
  OPENSSL_cleanse(buf.data(), n);
  return hex;
}

std::array<std::uint8_t, 32> random_key() {
  std::array<std::uint8_t, 32> k{};
  random_bytes(k.data(), k.size());
  return k;
}

digest sha256(std::string_view data) {
  digest d{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(),
                 nullptr) != 1 ||
      len != d.size()) {
    throw std::runtime_error("secrets: SHA-256 failed");
  }
  return d;
}

digest hmac_sha256(std::string_view key, std::string_view data) {
  digest d{};
  unsigned int len = 0;
  // One-shot HMAC(): no context to own; an empty key still needs a pointer.
  static const unsigned char empty = 0;
  const auto* k = key.empty() ? &empty : reinterpret_cast<const unsigned char*>(key.data());
  if (HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data(),
           &len) == nullptr ||
      len != d.size()) {
    throw std::runtime_error("secrets: HMAC-SHA256 failed");
  }
  return d;
}

std::string to_hex(const std::uint8_t* data, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xf];
  }
  return out;
}

bool equal(const digest& a, const digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace balctl::secrets
