#pragma once

// Heartbeat keys for synthetic members (benchmarks only): key(id) =
// SHA-256(seed bytes || id as 8 bytes big-endian). balctl-loadgen
// --derive-keys SEED and balctld --bench-seed SEED derive the same keys, so
// a million members need no config file.

#include <openssl/evp.h>

#include <string_view>

#include "engine/types.hpp"
#include "transport/protocol.hpp"

namespace balctl::bench {

inline protocol::key derive_member_key(std::string_view seed, member_id id) {
  unsigned char id_be[8];
  for (int i = 7; i >= 0; --i) {
    id_be[i] = static_cast<unsigned char>(id & 0xff);
    id >>= 8;
  }
  protocol::key k{};
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
      EVP_DigestUpdate(ctx, seed.data(), seed.size()) == 1 &&
      EVP_DigestUpdate(ctx, id_be, sizeof id_be) == 1) {
    EVP_DigestFinal_ex(ctx, k.data(), &len);
  }
  EVP_MD_CTX_free(ctx);
  return k;
}

} // namespace balctl::bench
