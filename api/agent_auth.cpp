#include "api/agent_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <charconv>

namespace balctl::api {

namespace {

constexpr std::int64_t max_skew_ms = 300'000;

std::string hex(const unsigned char* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  return out;
}

} // namespace

protocol::key agent_api_key(const protocol::key& heartbeat_key) {
  static const std::string label = "balctl agent api v1";
  protocol::key out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), heartbeat_key.data(), static_cast<int>(heartbeat_key.size()),
       reinterpret_cast<const unsigned char*>(label.data()), label.size(), out.data(), &len);
  return out;
}

std::string agent_signature(const protocol::key& api_key, const std::string& method,
                            const std::string& target, const std::string& timestamp,
                            const std::string& body) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  auto text = method + "\n" + target + "\n" + timestamp + "\n" + hex(digest, sizeof digest);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), api_key.data(), static_cast<int>(api_key.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  return hex(mac, len);
}

agent_auth_result check_agent_signature(const std::optional<protocol::key>& heartbeat_key,
                                        const std::string& method, const std::string& target,
                                        const std::string& timestamp,
                                        const std::string& signature, const std::string& body,
                                        std::int64_t now_ms) {
  std::int64_t ts = 0;
  auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (ec != std::errc() || end != timestamp.data() + timestamp.size() || timestamp.empty() ||
      signature.size() != 64) {
    return agent_auth_result::malformed;
  }
  if (!heartbeat_key) {
    return agent_auth_result::unknown;
  }
  auto want = agent_signature(agent_api_key(*heartbeat_key), method, target, timestamp, body);
  if (CRYPTO_memcmp(want.data(), signature.data(), want.size()) != 0) {
    return agent_auth_result::invalid;
  }
  if (ts < now_ms - max_skew_ms || ts > now_ms + max_skew_ms) {
    return agent_auth_result::stale;
  }
  return agent_auth_result::ok;
}

} // namespace balctl::api
