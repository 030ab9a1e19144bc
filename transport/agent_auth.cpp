#include "transport/agent_auth.hpp"

#include <charconv>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace balctl::agent_auth {

namespace {

std::string to_hex(const unsigned char* p, std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 0x0f];
  }
  return out;
}

void hmac_sha256(const std::uint8_t* key, std::size_t key_len, std::string_view msg,
                 unsigned char out[32]) {
  unsigned int len = 32;
  HMAC(EVP_sha256(), key, static_cast<int>(key_len),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
}

} // namespace

api_key derive_api_key(const protocol::key& heartbeat_key) {
  api_key k{};
  hmac_sha256(heartbeat_key.data(), heartbeat_key.size(), "balctl agent api v1", k.data());
  return k;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 32;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return to_hex(md, 32);
}

std::string sign(const api_key& key, std::string_view method, std::string_view target,
                 std::string_view timestamp, std::string_view body) {
  std::string msg;
  msg.reserve(method.size() + target.size() + timestamp.size() + 67);
  msg.append(method).append("\n").append(target).append("\n").append(timestamp).append("\n");
  msg += sha256_hex(body);
  unsigned char mac[32];
  hmac_sha256(key.data(), key.size(), msg, mac);
  return to_hex(mac, 32);
}

verdict verify(const protocol::key& heartbeat_key, std::string_view method,
               std::string_view target, std::string_view timestamp, std::string_view body,
               std::string_view signature, std::int64_t now_ms) {
  if (signature.size() != 64) {
    return verdict::signature_invalid;
  }
  auto expected = sign(derive_api_key(heartbeat_key), method, target, timestamp, body);
  // Lowercase only (the spec says so): an uppercase signature differs here.
  if (CRYPTO_memcmp(expected.data(), signature.data(), 64) != 0) {
    return verdict::signature_invalid;
  }
  std::int64_t ts = 0;
  auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (ec != std::errc() || end != timestamp.data() + timestamp.size() || timestamp.empty()) {
    return verdict::signature_stale;
  }
  auto skew = ts > now_ms ? ts - now_ms : now_ms - ts;
  if (skew > max_skew_ms) {
    return verdict::signature_stale;
  }
  return verdict::ok;
}

const char* to_code(verdict v) {
  switch (v) {
    case verdict::ok:
      return "ok";
    case verdict::signature_invalid:
      return "agent_signature_invalid";
    case verdict::signature_stale:
      return "agent_signature_stale";
  }
  return "agent_signature_invalid";
}

} // namespace balctl::agent_auth
