// The admin API's plain parts: token auth, the enrollment rate limiter,
// agent version order, install commands, error statuses.

#include <catch2/catch.hpp>

#include "api/admin_api.hpp"
#include "api/auth.hpp"
#include "api/rate_limit.hpp"
#include "engine/secrets.hpp"
#include "engine/views.hpp"

using namespace balctl;
using namespace balctl::api;

namespace {

admin_token token(const std::string& name, bool admin, const std::string& secret) {
  admin_token t;
  t.name = name;
  t.admin = admin;
  t.sha256 = secrets::sha256(secret);
  return t;
}

ip_address ip(const char* text) {
  ip_address a;
  REQUIRE(ip_address::parse(text, a));
  return a;
}

} // namespace

TEST_CASE("a bearer token maps to its role; anything else to none", "[api][unit]") {
  token_auth auth({token("ops", true, "ops-secret-0123456789"),
                   token("view", false, "view-secret-0123456789")});
  std::string who;
  CHECK(auth.check("Bearer ops-secret-0123456789", &who) == role::admin);
  CHECK(who == "ops");
  CHECK(auth.check("bearer view-secret-0123456789", &who) == role::read_only);
  CHECK(who == "view");
  CHECK(auth.check("Bearer  view-secret-0123456789") == role::read_only);
  CHECK(auth.check("Bearer ops-secret-012345678") == role::none);
  CHECK(auth.check("Bearer ops-secret-0123456789x") == role::none);
  CHECK(auth.check("Basic ops-secret-0123456789") == role::none);
  CHECK(auth.check("Bearer ") == role::none);
  CHECK(auth.check("") == role::none);
  CHECK(auth.check("ops-secret-0123456789") == role::none);
  token_auth none({});
  CHECK(none.check("Bearer ops-secret-0123456789") == role::none);
}

TEST_CASE("a source is refused for the rest of the minute once it failed too often",
          "[api][unit]") {
  failure_limiter lim(3, 60'000);
  auto a = ip("192.0.2.1");
  auto b = ip("192.0.2.2");
  CHECK(lim.blocked_for_ms(a, 1'000) == 0);
  lim.record_failure(a, 1'000);
  lim.record_failure(a, 2'000);
  CHECK(lim.blocked_for_ms(a, 2'500) == 0);
  lim.record_failure(a, 3'000);
  CHECK(lim.blocked_for_ms(a, 3'000) == 58'000); // window started at 1,000
  CHECK(lim.blocked_for_ms(b, 3'000) == 0);      // others unaffected
  CHECK(lim.blocked_for_ms(a, 60'999) == 1);
  CHECK(lim.blocked_for_ms(a, 61'000) == 0);     // a new window
  lim.record_failure(a, 61'000);
  CHECK(lim.blocked_for_ms(a, 61'000) == 0);
}

TEST_CASE("the limiter forgets expired sources and stays bounded under a spread attack",
          "[api][unit]") {
  failure_limiter lim(1, 60'000, 100);
  for (int i = 0; i < 1000; ++i) {
    ip_address a;
    a.bytes[15] = static_cast<std::uint8_t>(i);
    a.bytes[14] = static_cast<std::uint8_t>(i >> 8);
    lim.record_failure(a, 0);
    CHECK(lim.tracked() <= 100);
  }
  lim.record_failure(ip("192.0.2.9"), 120'000); // all the others expired
  CHECK(lim.tracked() <= 100);
}

TEST_CASE("agent versions compare numerically, part by part", "[api][unit]") {
  CHECK(version_older("1.9.2", "1.10.0"));
  CHECK_FALSE(version_older("1.10.0", "1.9.2"));
  CHECK_FALSE(version_older("1.2.0", "1.2"));
  CHECK(version_older("1.2", "1.2.1"));
  CHECK(version_older("", "1.0.0"));
  CHECK_FALSE(version_older("2.0.0-rc1", "2.0.0"));
  CHECK(version_older("garbage", "0.0.1"));
  CHECK_FALSE(version_older("99999999999999999999", "1.0"));
}

TEST_CASE("install commands pick the family's package manager and quote every value",
          "[api][unit]") {
  auto rhel = install_command("rhel", "https://api.test/agent/install-agent.sh", "abc123",
                              "node9.test", "https://api.test");
  CHECK(rhel.find("dnf install") != std::string::npos);
  CHECK(rhel.find("curl -fsSL 'https://api.test/agent/install-agent.sh' | sudo bash -s -- "
                  "--enrol ") != std::string::npos);
  CHECK(rhel.find("apt-get") == std::string::npos);
  CHECK(rhel.find("--key 'abc123' --hostname 'node9.test' --api-base 'https://api.test'") !=
        std::string::npos);
  auto deb = install_command("debian", "https://api.test/agent/install-agent.sh", "abc123",
                             "node9.test", "https://api.test");
  CHECK(deb.find("apt-get install") != std::string::npos);
  CHECK(deb.find("dnf") == std::string::npos);
  // A configured URL with a quote cannot break out of its quotes.
  auto hostile = install_command("debian", "https://x.test/a'; rm -rf /; '", "s", "h",
                                 "https://api.test");
  CHECK(hostile.find("'https://x.test/a'\\''; rm -rf /; '\\'''") != std::string::npos);
}

TEST_CASE("every API error code has its HTTP status", "[api][unit]") {
  auto [code, status] = GENERATE(table<std::string, int>({
    {"unauthorized", 401}, {"forbidden", 403}, {"pool_not_found", 404},
    {"member_not_found", 404}, {"method_not_allowed", 405}, {"invalid_json", 400},
    {"invalid_field", 422}, {"unknown_field", 422}, {"missing_field", 422},
    {"pool_exists", 409}, {"hostname_exists", 409}, {"failover_in_flight", 409},
    {"pool_managed_by_config", 409}, {"payload_too_large", 413},
    {"rate_limited", 429}, {"enrollment_invalid", 401},
    {"enrollment_hostname_mismatch", 403}, {"enrollment_source_not_allowed", 403},
    {"unavailable", 503}, {"internal", 500}, {"something_new", 500},
  }));
  CAPTURE(code);
  CHECK(status_of(code) == status);
}

TEST_CASE("secrets are random hex, hashes are SHA-256, comparison is exact",
          "[api][unit]") {
  auto a = secrets::random_hex(24);
  auto b = secrets::random_hex(24);
  CHECK(a.size() == 48);
  CHECK(a != b);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(secrets::to_hex(secrets::sha256("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(secrets::equal(secrets::sha256("x"), secrets::sha256("x")));
  CHECK_FALSE(secrets::equal(secrets::sha256("x"), secrets::sha256("y")));
  CHECK(secrets::random_key() != secrets::random_key());
}
