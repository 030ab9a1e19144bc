#include <catch2/catch.hpp>

#include <string>

#include "transport/agent_auth.hpp"

using namespace balctl;
using namespace balctl::agent_auth;

namespace {

// docs/protocol.md, "The agent API", worked example: key bytes 00 01 … 1f.
protocol::key example_key() {
  protocol::key k{};
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::uint8_t>(i);
  }
  return k;
}

std::string hex(const api_key& k) {
  static const char d[] = "0123456789abcdef";
  std::string s;
  for (auto b : k) {
    s += d[b >> 4];
    s += d[b & 15];
  }
  return s;
}

constexpr std::int64_t example_ts = 1700000000000;

} // namespace

TEST_CASE("the agent API key and signatures match the protocol's worked example",
          "[agent][auth][unit]") {
  auto key = example_key();
  CHECK(hex(derive_api_key(key)) ==
        "434ef2f3e086217d57a32ec7c986af5d6059b089a649c8c7176d21091d2e7ada");
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sign(derive_api_key(key), "GET", "/v1/agent/jobs", "1700000000000", "") ==
        "9fa4eb26ffaf2ecc69d6a5df13c21b7cf0ddbfbe359552c40170aaa69cf41928");
  CHECK(sha256_hex(R"({"status":"running"})") ==
        "409443a6ee5aa296dccd6c0d193e214568daa0053b66155fba8adca995b7823d");
  CHECK(sign(derive_api_key(key), "POST", "/v1/agent/jobs/j-17", "1700000000000",
             R"({"status":"running"})") ==
        "d59a386d3c1524842d893c2e61ce949b4869262fd483576ecfdd49a497529153");
}

TEST_CASE("the engine's verifier accepts the agent's signature and names what is wrong",
          "[agent][auth][unit]") {
  auto key = example_key();
  const std::string body = R"({"status":"succeeded","exit_code":0})";
  auto sig = sign(derive_api_key(key), "POST", "/v1/agent/jobs/j-1", "1700000000000", body);
  CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000000", body, sig, example_ts) ==
        verdict::ok);
  // Inside the 300 s window either way.
  CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000000", body, sig,
               example_ts + max_skew_ms) == verdict::ok);
  CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000000", body, sig,
               example_ts - max_skew_ms) == verdict::ok);

  SECTION("anything signed that changed breaks the signature") {
    CHECK(verify(key, "PUT", "/v1/agent/jobs/j-1", "1700000000000", body, sig, example_ts) ==
          verdict::signature_invalid);
    CHECK(verify(key, "POST", "/v1/agent/jobs/j-2", "1700000000000", body, sig, example_ts) ==
          verdict::signature_invalid);
    CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000001", body, sig, example_ts) ==
          verdict::signature_invalid);
    CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000000", body + " ", sig,
                 example_ts) == verdict::signature_invalid);
    auto other = key;
    other[0] ^= 1;
    CHECK(verify(other, "POST", "/v1/agent/jobs/j-1", "1700000000000", body, sig, example_ts) ==
          verdict::signature_invalid);
  }
  SECTION("a malformed signature is invalid, uppercase included") {
    CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000000", body, "", example_ts) ==
          verdict::signature_invalid);
    CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000000", body, sig.substr(1),
                 example_ts) == verdict::signature_invalid);
    std::string upper = sig;
    for (auto& c : upper) {
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    if (upper != sig) {
      CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000000", body, upper,
                   example_ts) == verdict::signature_invalid);
    }
  }
  SECTION("a correct signature on an old or future timestamp is stale") {
    CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000000", body, sig,
                 example_ts + max_skew_ms + 1) == verdict::signature_stale);
    CHECK(verify(key, "POST", "/v1/agent/jobs/j-1", "1700000000000", body, sig,
                 example_ts - max_skew_ms - 1) == verdict::signature_stale);
    CHECK(std::string(to_code(verdict::signature_stale)) == "agent_signature_stale");
    CHECK(std::string(to_code(verdict::signature_invalid)) == "agent_signature_invalid");
  }
  SECTION("a signed timestamp that is not decimal milliseconds is stale") {
    auto s2 = sign(derive_api_key(key), "GET", "/v1/agent/jobs", "soon", "");
    CHECK(verify(key, "GET", "/v1/agent/jobs", "soon", "", s2, example_ts) ==
          verdict::signature_stale);
  }
}
