// The admin API's plain parts: token auth, the enrollment rate limiter,
// agent version order, install commands, error statuses.

#include <stdlib.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "api/admin_api.hpp"
#include "api/auth.hpp"
#include "api/rate_limit.hpp"
#include "engine/secrets.hpp"
#include "engine/views.hpp"
#include "tests/support/temp_dir.hpp"

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

namespace fs = std::filesystem;

using test::temp_dir;

void write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  REQUIRE(out.good());
}

std::string header(const http::response& r, const std::string& name) {
  for (const auto& h : r.headers) {
    if (h.first == name) {
      return h.second;
    }
  }
  return {};
}

} // namespace

TEST_CASE("a bearer token maps to its role, anything else to none", "[api][unit]") {
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

TEST_CASE("with an agent_binary_url the install command passes it quoted as --binary",
          "[api][unit]") {
  auto cmd = install_command("debian", "https://api.test/agent/install-agent.sh", "abc123",
                             "node9.test", "https://api.test",
                             "https://cdn.test/balctl-agent");
  CHECK(cmd.find("--api-base 'https://api.test' --binary 'https://cdn.test/balctl-agent'") !=
        std::string::npos);
  // Unset: the script's own default, <api-base>/agent/balctl-agent.
  auto plain = install_command("debian", "https://api.test/agent/install-agent.sh", "abc123",
                               "node9.test", "https://api.test", "");
  CHECK(plain.find("--binary") == std::string::npos);
  auto hostile = install_command("rhel", "https://api.test/i.sh", "s", "h", "https://api.test",
                                 "https://x.test/a'; rm -rf /; '");
  CHECK(hostile.find("--binary 'https://x.test/a'\\''; rm -rf /; '\\'''") !=
        std::string::npos);
}

TEST_CASE("the download bucket allows a burst, then one per refill interval",
          "[api][unit]") {
  token_bucket b(10, 2'000);
  const std::int64_t t0 = 1'700'000'000'000;
  for (int i = 0; i < 10; ++i) {
    CAPTURE(i);
    CHECK(b.take(t0) == 0);
  }
  CHECK(b.take(t0) == 2'000);         // empty: the next token in 2 s
  CHECK(b.take(t0 + 1'500) == 500);
  CHECK(b.take(t0 + 2'000) == 0);     // one token back
  CHECK(b.take(t0 + 2'000) == 2'000);
  CHECK(b.take(t0 + 5'000) == 0);     // refilled at 4 s; the next one at 6 s
  CHECK(b.take(t0 + 5'000) == 1'000);
  // A long pause fills the bucket to its burst, no further.
  const std::int64_t t1 = t0 + 3'600'000;
  for (int i = 0; i < 10; ++i) {
    CHECK(b.take(t1) == 0);
  }
  CHECK(b.take(t1) == 2'000);
  // A wall clock stepped back does not stretch the wait beyond one refill.
  CHECK(b.take(t1 - 60'000) == 2'000);
  // A full bucket banks no time: however long it sat full, the token after
  // its burst comes a whole refill interval after the first take.
  token_bucket full(2, 2'000);
  CHECK(full.take(t0 + 9'000) == 0);
  CHECK(full.take(t0 + 9'500) == 0);
  CHECK(full.take(t0 + 9'500) == 1'500);
  CHECK(full.take(t0 + 11'000) == 0);
}

TEST_CASE("agent files are served from memory, re-read only when they change",
          "[api][unit]") {
  temp_dir dir;
  manual_clock clk;
  const std::string elf("\x7f" "ELF\0v1", 7);
  write(dir.file("install-agent.sh"), "#!/bin/sh\necho v1\n");
  write(dir.file("balctl-agent"), elf);
  agent_files files(dir.path(), clk);

  auto script = files.get("install-agent.sh");
  CHECK(script.status == 200);
  CHECK(script.content_type == "text/x-shellscript");
  CHECK(script.body == "#!/bin/sh\necho v1\n");
  auto bin = files.get("balctl-agent");
  CHECK(bin.status == 200);
  CHECK(bin.content_type == "application/octet-stream");
  CHECK(bin.body == elf);

  SECTION("a replaced file is served at once") {
    write(dir.file("balctl-agent"), "a new build, longer than the old one");
    CHECK(files.get("balctl-agent").body == "a new build, longer than the old one");
    // Renamed into place (a new inode), as install tools do.
    write(dir.file("next"), "renamed");
    fs::rename(dir.file("next"), dir.file("balctl-agent"));
    CHECK(files.get("balctl-agent").body == "renamed");
  }
  SECTION("an empty file is an empty 200, not a 404") {
    write(dir.file("install-agent.sh"), "");
    auto r = files.get("install-agent.sh");
    CHECK(r.status == 200);
    CHECK(r.body.empty());
  }
  SECTION("a removed file is a 404, and served again once it is back") {
    fs::remove(dir.file("install-agent.sh"));
    auto gone = files.get("install-agent.sh");
    CHECK(gone.status == 404);
    CHECK(gone.body.find("install-agent.sh is not available") != std::string::npos);
    write(dir.file("install-agent.sh"), "back");
    CHECK(files.get("install-agent.sh").body == "back");
  }
  SECTION("only the two names exist") {
    write(dir.file("state.json"), "{}");
    CHECK(files.get("state.json").status == 404);
    CHECK(files.get("../balctl-agent").status == 404);
    CHECK(files.get("").status == 404);
  }
}

TEST_CASE("binary downloads beyond the burst get 429 with Retry-After until a token "
          "refills, the script is not limited",
          "[api][unit]") {
  temp_dir dir;
  manual_clock clk;
  write(dir.file("install-agent.sh"), "#!/bin/sh\n");
  write(dir.file("balctl-agent"), "binary");
  agent_files files(dir.path(), clk);
  for (int i = 0; i < agent_binary_burst; ++i) {
    CAPTURE(i);
    REQUIRE(files.get("balctl-agent").status == 200);
  }
  auto limited = files.get("balctl-agent");
  CHECK(limited.status == 429);
  CHECK(limited.body.find("\"code\":\"rate_limited\"") != std::string::npos);
  CHECK(limited.body.find("agent_binary_url") != std::string::npos);
  CHECK(header(limited, "Retry-After") == "2");
  for (int i = 0; i < 20; ++i) {
    CHECK(files.get("install-agent.sh").status == 200);
  }
  clk.advance(1'001);
  auto still = files.get("balctl-agent");
  CHECK(still.status == 429);
  CHECK(header(still, "Retry-After") == "1"); // 999 ms, rounded up
  clk.advance(999);
  CHECK(files.get("balctl-agent").status == 200);
  CHECK(files.get("balctl-agent").status == 429);
  // Refused requests took no token: one more refill interval, one more 200.
  clk.advance(agent_binary_refill_ms);
  CHECK(files.get("balctl-agent").status == 200);
  CHECK(files.get("balctl-agent").status == 429);
}

TEST_CASE("a missing binary is a 404 and takes no download token", "[api][unit]") {
  temp_dir dir;
  manual_clock clk;
  agent_files files(dir.path(), clk, 1, 2'000);
  CHECK(files.get("balctl-agent").status == 404);
  CHECK(files.get("balctl-agent").status == 404);
  write(dir.file("balctl-agent"), "binary");
  CHECK(files.get("balctl-agent").status == 200);
  CHECK(files.get("balctl-agent").status == 429);
  agent_files none("", clk);
  auto r = none.get("balctl-agent");
  CHECK(r.status == 404);
  CHECK(r.body.find("agent_dist_dir") != std::string::npos);
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
