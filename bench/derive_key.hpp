#pragma once

// Heartbeat keys for synthetic members (benchmarks only): key(id) =
// SHA-256(seed bytes || id as 8 bytes big-endian). balctl-loadgen
// --derive-keys SEED and balctld --bench-seed SEED derive the same keys, so
// a million members need no config file.

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
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
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, seed.data(), seed.size()) == 1 &&
            EVP_DigestUpdate(ctx, id_be, sizeof id_be) == 1 &&
            EVP_DigestFinal_ex(ctx, k.data(), &len) == 1 && len == k.size();
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    // A silent all-zero key would show up as every heartbeat failing its
    // tag; SHA-256 failing means a broken OpenSSL, so stop loudly instead.
    std::fputs("derive_member_key: OpenSSL SHA-256 failed\n", stderr);
    std::abort();
  }
  return k;
}

} // namespace balctl::bench
